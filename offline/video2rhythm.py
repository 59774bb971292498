"""Video2Rhythm on a whole clip (offline): keypoints -> beat activation -> DBN beats, style -> rhythm.

``analyse(sequence)`` is the offline stage used by the ``rhythm`` command (and later ``render``):
the sequence is gap-filled and resampled to the model rate, normalised with one clip-level centre and
scale, turned into a beat activation (``--beat-model net``, the default when its weights are installed:
the trained offline beat network, whose downbeat head also places bar 1; ``onset``: the motion onset
envelope, the baseline), decoded by the
DBN (Viterbi), and combined with the paper's style stream on the beat-following 16th grid.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rhythmicnet.errors import InputError, NoPersonError
from rhythmicnet.models.beat_hmm import BeatTrackerConfig, decode_beats_and_tempo
from rhythmicnet.models.beat_model import LearnedBeatModel, downbeats_from, has_beat_model
from rhythmicnet.models.graphs import GraphFactory
from rhythmicnet.models.keypoints import MODEL_FPS, KeypointSequence, prepare_for_model
from rhythmicnet.models.onset_activation import onset_activation
from rhythmicnet.models.rhythm_grid import Rhythm, compose_rhythm
from rhythmicnet.models.skeleton import normalize_clip
from rhythmicnet.models.style_stream import StyleConfig, StyleResult, extract_style
from rhythmicnet.models.weights import WEIGHTS_DIR

BEAT_MODELS = ("net", "onset")


def default_beat_model(weights_dir: str | os.PathLike[str] = WEIGHTS_DIR) -> str:
    """The beat model used when none is asked for (``--beat-model`` of ``rhythm`` and ``render``, and
    :class:`Video2RhythmConfig`): ``net`` when the offline beat network's weights are in ``weights_dir``,
    else the ``onset`` baseline."""
    return "net" if has_beat_model("full", weights_dir) else "onset"


@dataclass(frozen=True)
class Video2RhythmConfig:
    """Settings of :func:`analyse`. ``beat_model``: ``net`` or ``onset``; left out (None) it becomes
    :func:`default_beat_model` of ``weights_dir``, the command line's default."""

    beat_model: str | None = None
    weights_dir: Path = WEIGHTS_DIR
    min_bpm: float = 60.0
    max_bpm: float = 180.0
    style: StyleConfig = field(default_factory=StyleConfig)

    def __post_init__(self) -> None:
        if self.beat_model is None:
            object.__setattr__(self, "beat_model", default_beat_model(self.weights_dir))
        if self.beat_model not in BEAT_MODELS:
            raise ValueError(f"beat_model must be one of {', '.join(BEAT_MODELS)}; got {self.beat_model!r}")
        if not 0 < self.min_bpm < self.max_bpm:
            raise ValueError(f"tempo range must satisfy 0 < min < max, got {self.min_bpm}-{self.max_bpm} BPM")

    def beat_tracker(self) -> BeatTrackerConfig:
        return BeatTrackerConfig(fps=MODEL_FPS, min_bpm=self.min_bpm, max_bpm=self.max_bpm)


@dataclass(frozen=True)
class RhythmAnalysis:
    """Everything the rhythm stage found in a clip, at the model rate (30 fps).

    sequence: the resampled keypoints (T frames); keypoints_norm (T, 17, 2); speed (T,) mean joint
    speed in body units per second; activation (T,) beat activation in [0, 1]; beats (B,) seconds;
    tempo_bpm: the beat tracker's tempo (median interval of its Viterbi path, inside the tempo range);
    style: the paper's style stream; rhythm: beats ∪ style on the 16th grid.
    """

    sequence: KeypointSequence
    keypoints_norm: np.ndarray
    speed: np.ndarray
    activation: np.ndarray
    beats: np.ndarray
    tempo_bpm: float
    style: StyleResult
    rhythm: Rhythm
    config: Video2RhythmConfig
    stage_seconds: dict[str, float]


def joint_speed(keypoints: np.ndarray, confidence: np.ndarray, fps: float) -> np.ndarray:
    """Mean speed of the seen joints per frame (units per second). Shapes: (T, 17, 2), (T, 17) -> (T,)."""
    if len(keypoints) < 2:
        return np.zeros(len(keypoints))
    v = np.linalg.norm(np.diff(keypoints, axis=0), axis=-1) * fps  # (T-1, 17)
    ok = (confidence[1:] > 0) & (confidence[:-1] > 0)
    s = np.where(ok.any(axis=1), (v * ok).sum(axis=1) / np.maximum(ok.sum(axis=1), 1), 0.0)
    return np.concatenate([[0.0], s])


def analyse(sequence: KeypointSequence, config: Video2RhythmConfig | None = None,
            source: str = "input", graphs: GraphFactory | None = None, *,
            beat_net: LearnedBeatModel | None = None) -> RhythmAnalysis:
    """Run Video2Rhythm on a whole clip. ``config``: ``Video2RhythmConfig()`` when left out (the beat
    network when its weights are installed, as on the command line). ``source`` names the input in error
    messages; ``graphs`` is the backend of the beat network (torch by default; ``export.backends.graph_factory``).
    ``beat_net``: the beat network already loaded (a batch worker loads it once for all its clips); left
    out, it is loaded from ``config.weights_dir``."""
    config = config or Video2RhythmConfig()
    stage: dict[str, float] = {}
    t0 = time.perf_counter()
    if sequence.num_frames == 0 or sequence.person_fraction() == 0.0:
        raise NoPersonError(f"{source}: no person found in any frame")
    seq = prepare_for_model(sequence, MODEL_FPS)
    if seq.num_frames < int(2 * MODEL_FPS):
        raise InputError(f"{source}: too short for rhythm analysis ({seq.duration:.2f} s; need at least 2 s)")
    kp = normalize_clip(seq.keypoints, seq.confidence)
    stage["prepare"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    downbeat_act = None
    if config.beat_model == "net":
        if beat_net is None:
            beat_net = LearnedBeatModel.load("full", config.weights_dir, graphs)
        activation, downbeat_act = beat_net.activation(kp, seq.confidence)
    else:
        activation = onset_activation(kp, seq.confidence)
    stage["beat_activation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    beats, tempo = decode_beats_and_tempo(activation, config.beat_tracker())
    stage["beat_decoding"] = time.perf_counter() - t0
    if len(beats) < 2:
        raise InputError(f"{source}: found no steady beat in the movement (fewer than two beats)")
    first_downbeat = None
    if downbeat_act is not None:
        down = downbeats_from(beats, downbeat_act, MODEL_FPS)
        first_downbeat = float(down[0]) if len(down) else None

    t0 = time.perf_counter()
    style = extract_style(kp, seq.confidence, seq.times, config.style)
    stage["style"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    duration = float(seq.times[-1] + 1.0 / MODEL_FPS)
    rhythm = compose_rhythm(beats, style.times, duration, first_downbeat=first_downbeat)
    stage["rhythm"] = time.perf_counter() - t0
    return RhythmAnalysis(
        sequence=seq,
        keypoints_norm=kp,
        speed=joint_speed(kp, seq.confidence, MODEL_FPS),
        activation=activation,
        beats=beats,
        tempo_bpm=tempo,  # the beat tracker's (inside its tempo range), not the beats' median interval
        style=style,
        rhythm=rhythm,
        config=config,
        stage_seconds=stage,
    )
