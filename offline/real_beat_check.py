"""A small real check of the beat models: hand-annotated movement beats of the two real example clips.

The held-out set of ``offline/eval_beat.py`` is synthetic. Real movers lead, lag and pause, so the
two real clips in ``shared/data/example_video/`` carry hand annotations (``tests/data/real_beats/``):

* ``jumping_jacks.json`` — ``sports2d_jumping_jacks/sports2d_demo.mp4`` (30 fps): every landing of
  the two jumping-jack cycles, tagged ``apart`` (feet land wide) or ``together`` (feet land closed);
* ``squats.json`` — ``tfjs_pose_squats/pose_squats.mp4`` (5 fps): the bottom (lowest hip) of each of
  the three squats.

Each file holds ``video`` (relative to ``shared/data/example_video``), ``fps``, ``method``,
``annotator_note``, ``beats`` (s, frame index / fps), ``tags``, ``frames``, ``uncertainty_frames``
and ``span_frames`` — the rhythmic part of the clip (the jumping jacks stop after 2.7 s; what follows
is standing, walking, a backflip and a cut, where no movement beat is annotated).

:func:`evaluate_real_clips` extracts the keypoints of each clip (mediapipe, cached), computes each
row's activation exactly as ``rhythmicnet eval beat`` does (onset baseline, or a trained network from
``beat_<row>.pt/.json``; rows without weights are skipped with a note), decodes beats with the DBN
(Viterbi; the streaming trackers for ``full_causal_streaming`` and ``full_causal_filter``) and
scores them with mir_eval.

Scoring differs from the synthetic table in one way: the clips are short (7.7 s and 13 s) and all the
jumping-jack landings fall before 2.5 s, so mir_eval's default trimming of the first 5 s would leave
nothing. Here nothing is trimmed (``min_beat_time=0``). Estimated beats are scored inside the
annotated span (``scope: span``); the F-measure over all estimated beats of the whole clip is given too
(``f_measure_clip``). Other settings are mir_eval's defaults (F window 70 ms, Cemgil sigma 40 ms,
continuity tolerance 0.175). Tempo: 60 / median inter-beat interval, in BPM. These are 2-4 annotated
beats per reference, so each figure is coarse (one beat moves the F-measure by 20-50 points); the
squats' tempo (~12 per minute) is below the DBN's 60 BPM floor, so no row can match it there.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mir_eval
import numpy as np
import torch

from rhythmicnet.errors import InputError
from rhythmicnet.fileio import write_text_atomic
from rhythmicnet.models.beat_features import beat_input_features
from rhythmicnet.models.beat_hmm import tempo_from_beats
from rhythmicnet.models.beat_model import is_causal, output_delay
from rhythmicnet.models.keypoints import MODEL_FPS, prepare_for_model
from rhythmicnet.models.onset_activation import onset_activation
from rhythmicnet.models.skeleton import normalize_clip, normalize_running
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline.eval_beat import (
    LEARNED_ROWS,
    ROW_LABELS,
    STREAMING_ROWS,
    base_model,
    decode_row,
    load_beat_model,
)
from rhythmicnet.offline.pose_estimation import load_or_extract
from rhythmicnet.offline.train_beat import clip_activations

#: The annotation files (in the source tree, beside the tests that check them).
ANNOTATIONS_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "real_beats"
CLIPS = ("jumping_jacks", "squats")
ROWS = ("onset", *LEARNED_ROWS, *STREAMING_ROWS)
#: No trimming: the clips are too short for mir_eval's default of 5 s.
MIN_BEAT_TIME = 0.0


@dataclass(frozen=True)
class RealBeatAnnotation:
    """Hand-annotated movement beats of one real clip (see the module docstring for the file format)."""

    name: str
    video: str
    fps: float
    method: str
    annotator_note: str
    beats: np.ndarray
    tags: tuple[str, ...]
    frames: tuple[int, ...]
    uncertainty_frames: float
    span: tuple[float, float]

    def beats_tagged(self, *tags: str) -> np.ndarray:
        """The annotated beats whose tag is one of ``tags``."""
        keep = np.array([t in tags for t in self.tags], dtype=bool)
        return self.beats[keep]

    def reference_sets(self) -> dict[str, np.ndarray]:
        """Reference beat sets to score against: ``all`` and, with several tags, each tag alone."""
        refs = {"all": self.beats}
        if len(set(self.tags)) > 1:
            for tag in sorted(set(self.tags)):
                refs[tag] = self.beats_tagged(tag)
        return refs


def load_annotation(path: str | os.PathLike[str]) -> RealBeatAnnotation:
    """Read and check one annotation file.

    Raises:
        InputError: the file is missing, not JSON, or inconsistent (lengths differ, beats not
            increasing, beats not at ``frames / fps``).
    """
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError as e:
        raise InputError(f"{p}: file not found") from e
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{p}: cannot read annotation ({e})") from e
    try:
        fps = float(d["fps"])
        beats = np.asarray(d["beats"], dtype=np.float64)
        tags = tuple(str(t) for t in d["tags"])
        frames = tuple(int(f) for f in d["frames"])
        span_frames = d.get("span_frames")
        ann = RealBeatAnnotation(
            name=p.stem, video=str(d["video"]), fps=fps, method=str(d["method"]),
            annotator_note=str(d["annotator_note"]), beats=beats, tags=tags, frames=frames,
            uncertainty_frames=float(d.get("uncertainty_frames", 1)),
            span=((span_frames[0] / fps, span_frames[1] / fps) if span_frames else (0.0, float("inf"))),
        )
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise InputError(f"{p}: malformed annotation ({e!r})") from e
    if not (fps > 0 and beats.ndim == 1 and len(beats) == len(tags) == len(frames)):
        raise InputError(f"{p}: fps must be > 0 and beats, tags and frames must have the same length")
    if len(beats) > 1 and np.any(np.diff(beats) <= 0):
        raise InputError(f"{p}: beats must be strictly increasing")
    if not np.allclose(beats, np.asarray(frames) / fps, atol=1e-3):
        raise InputError(f"{p}: beats must equal frames / fps")
    return ann


def load_annotations(annotations_dir: str | os.PathLike[str] = ANNOTATIONS_DIR) -> list[RealBeatAnnotation]:
    return [load_annotation(Path(annotations_dir) / f"{name}.json") for name in CLIPS]


def default_keypoint_cache() -> Path:
    """``$XDG_CACHE_HOME/rhythmicnet/real_clips`` (or ``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rhythmicnet" / "real_clips"


def _video_path(shared_dir: Path, rel: str) -> Path:
    for base in (shared_dir / "data" / "example_video", shared_dir / "example_video", shared_dir):
        if (base / rel).is_file():
            return base / rel
    raise InputError(f"{rel}: not found under {shared_dir} (expected data/example_video/{rel})")


def _score(ref: np.ndarray, est: np.ndarray) -> dict[str, float]:
    """mir_eval beat metrics without trimming (min_beat_time = 0), as %; tempo in BPM."""
    r = mir_eval.beat.trim_beats(np.asarray(ref, float), min_beat_time=MIN_BEAT_TIME)
    e = mir_eval.beat.trim_beats(np.asarray(est, float), min_beat_time=MIN_BEAT_TIME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Estimated beats are empty" etc.: n_est says so
        f = mir_eval.beat.f_measure(r, e)
        cem, _ = mir_eval.beat.cemgil(r, e)
        cmlc, cmlt, amlc, amlt = mir_eval.beat.continuity(r, e)
    return {"f_measure": 100 * f, "cemgil": 100 * cem, "cmlc": 100 * cmlc, "cmlt": 100 * cmlt,
            "amlc": 100 * amlc, "amlt": 100 * amlt}


def _f_only(ref: np.ndarray, est: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return 100 * float(mir_eval.beat.f_measure(np.asarray(ref, float), np.asarray(est, float)))


def evaluate_real_clips(
    shared_dir: str | os.PathLike[str],
    rows: Iterable[str] = ("onset",),
    weights_dir: str | os.PathLike[str] = WEIGHTS_DIR,
    *,
    annotations_dir: str | os.PathLike[str] = ANNOTATIONS_DIR,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score beat rows on the annotated real clips (untrimmed mir_eval, ``min_beat_time=0``).

    Args:
        shared_dir: the shared data folder (holding ``data/example_video/``), or the example_video
            folder itself.
        rows: ``onset`` and/or learned rows of ``rhythmicnet eval beat`` (``tcn``, ..., ``full``,
            ``full_causal``, ``full_causal_streaming``, ``full_causal_filter``); a learned row is
            scored only when ``beat_<row>.pt/.json`` is in ``weights_dir`` (the streaming rows use
            ``full_causal``).
        weights_dir: folder with the trained weights.
        annotations_dir: folder with ``jumping_jacks.json`` and ``squats.json``.
        cache_dir: keypoint cache (``<clip>.npz``, checked against the video and the extractor);
            default :func:`default_keypoint_cache`.
        progress: show the pose extraction's progress bar.

    Returns:
        One record per clip x reference set x row: ``clip``, ``reference`` (``all``, or a tag such as
        ``together``/``apart``), ``model``, ``label``, ``scope`` (``span``), ``trimmed`` (False),
        ``min_beat_time`` (0.0), ``span`` (s), ``f_measure``, ``cemgil``, ``cmlc``, ``cmlt``, ``amlc``,
        ``amlt`` (%, estimated beats inside the span), ``f_measure_clip`` (%, all estimated beats of
        the clip), ``tempo_ref_bpm``, ``tempo_est_bpm`` (inside the span), ``n_ref``, ``n_est``,
        ``n_est_clip``, ``est_beats`` (s, the whole clip). A row without weights gives one record per
        clip with ``missing: True`` and a ``note``.
    """
    rows = list(rows)
    for row in rows:
        if row not in ROWS:
            raise ValueError(f"unknown row {row!r}; choose from {', '.join(ROWS)}")
    shared = Path(shared_dir)
    wdir = Path(weights_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_keypoint_cache()
    models: dict[str, torch.nn.Module] = {}
    missing: dict[str, str] = {}
    for row in rows:
        base = base_model(row)
        if base == "onset" or base in models:
            continue
        if (wdir / f"beat_{base}.json").is_file() and (wdir / f"beat_{base}.pt").is_file():
            models[base] = load_beat_model(base, wdir)
        else:
            missing[row] = f"no weights beat_{base}.pt/.json in {wdir}; not scored"

    out: list[dict[str, Any]] = []
    for ann in load_annotations(annotations_dir):
        video = _video_path(shared, ann.video)
        seq = prepare_for_model(load_or_extract(video, cache / f"{ann.name}.npz", progress=progress))
        kp = normalize_clip(seq.keypoints, seq.confidence)
        feats: np.ndarray | None = None
        acts: dict[str, np.ndarray] = {}
        for row in rows:
            if row in missing:
                out.append({"clip": ann.name, "model": row, "label": ROW_LABELS.get(row, row), "missing": True,
                            "note": missing[row]})
                continue
            base = base_model(row)
            if base not in acts:
                if base == "onset":
                    acts[base] = onset_activation(kp, seq.confidence)
                else:
                    if is_causal(models[base]):  # the live normalisation, as in training
                        live = normalize_running(seq.keypoints, seq.confidence, MODEL_FPS)
                        acts[base], _ = clip_activations(models[base], beat_input_features(live, seq.confidence)
                                                         .astype(np.float32))
                    else:
                        if feats is None:
                            feats = beat_input_features(kp, seq.confidence).astype(np.float32)
                        acts[base], _ = clip_activations(models[base], feats)
            est = decode_row(acts[base], row, output_delay(models.get(base)))
            lo, hi = ann.span
            est_span = est[(est >= lo) & (est <= hi)]
            for ref_name, ref in ann.reference_sets().items():
                out.append({
                    "clip": ann.name, "reference": ref_name, "model": row, "label": ROW_LABELS.get(row, row),
                    "scope": "span", "trimmed": False, "min_beat_time": MIN_BEAT_TIME,
                    "span": [round(lo, 4), round(min(hi, float(seq.times[-1])), 4)],
                    **_score(ref, est_span),
                    "f_measure_clip": _f_only(ref, est),
                    "tempo_ref_bpm": tempo_from_beats(ref), "tempo_est_bpm": tempo_from_beats(est_span),
                    "n_ref": len(ref), "n_est": len(est_span), "n_est_clip": len(est),
                    "est_beats": [round(float(b), 4) for b in est],
                })
    return out


def format_real_table(records: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`evaluate_real_clips` records."""
    head = (f"{'clip':<14}{'ref':<9}{'model':<34}" + "".join(f"{c:>7}" for c in ("F", "Cem", "CMLc", "CMLt", "AMLc",
                                                                                    "AMLt", "Fclip"))
            + f"{'BPMref':>8}{'BPMest':>8}{'nref':>5}{'nest':>5}")
    lines = ["Real clips, hand-annotated movement beats — untrimmed mir_eval (min_beat_time=0), estimates scored "
             "inside the annotated span (Fclip: all estimates of the clip)", head]
    for r in records:
        if r.get("missing"):
            lines.append(f"{r['clip']:<14}{'':<9}{r['label']:<34}  ({r['note']})")
            continue
        lines.append(f"{r['clip']:<14}{r['reference']:<9}{r['label']:<34}"
                     + "".join(f"{r[k]:>7.1f}" for k in ("f_measure", "cemgil", "cmlc", "cmlt", "amlc", "amlt",
                                                         "f_measure_clip"))
                     + f"{r['tempo_ref_bpm']:>8.1f}{r['tempo_est_bpm']:>8.1f}{r['n_ref']:>5}{r['n_est']:>5}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Score beat rows on the hand-annotated real example clips.")
    p.add_argument("--shared-dir", required=True, help="the shared data folder (holds data/example_video)")
    p.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    p.add_argument("--json", help="also write the records to this file")
    a = p.parse_args(argv)
    records = evaluate_real_clips(a.shared_dir, a.rows, a.weights_dir, progress=True)
    print(format_real_table(records))
    if a.json:
        write_text_atomic(a.json, json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
