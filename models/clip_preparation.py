"""A beat-labelled clip as the beat network sees it: model-rate features plus per-frame targets.

:func:`prepare_clip` takes any clip with keypoints and beat labels (a synthetic dancer, a real labelled
clip: anything shaped like :class:`LabelledDance`), gap-fills and resamples it to the model rate
(``MODEL_FPS``, :func:`~.keypoints.prepare_for_model`), normalises it with one clip-level centre and scale
(or, for the causal model, with the live running estimate, ``skeleton.normalize_running``, tau 3 s),
turns it into the network's input features (:func:`~.beat_features.beat_input_features`) and the labels
into per-frame targets (:func:`beat_targets`). Training, validation and evaluation all prepare clips this
one way, so a model is scored on what it will see. Pure functions; numpy in and out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rhythmicnet.models.beat_features import beat_input_features
from rhythmicnet.models.keypoints import MODEL_FPS, KeypointSequence, prepare_for_model
from rhythmicnet.models.skeleton import normalize_clip, normalize_running

__all__ = ["LabelledDance", "PreparedClip", "beat_targets", "prepare_clip"]


class LabelledDance(Protocol):
    """What :func:`prepare_clip` reads: keypoints at any rate, beats (B,) and downbeats (D,) in seconds."""

    @property
    def sequence(self) -> KeypointSequence: ...

    @property
    def beats(self) -> np.ndarray: ...

    @property
    def downbeats(self) -> np.ndarray: ...


@dataclass(frozen=True)
class PreparedClip:
    """A clip at the model rate: features (T, 17, C) float32, beat/downbeat targets (T,) float32, and the
    labels beats (B,) / downbeats (D,) in seconds."""

    features: np.ndarray
    beat_target: np.ndarray
    downbeat_target: np.ndarray
    beats: np.ndarray
    downbeats: np.ndarray


def beat_targets(times: np.ndarray, beats: np.ndarray, downbeats: np.ndarray, widen: int = 1) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    """Per-frame float targets for the beat and downbeat heads at frame ``times`` (e.g. the 30 fps model rate).

    Shape of a target: 1.0 at the frame nearest each labelled time, 0.5 at the ``widen`` frames on either
    side (0 elsewhere; overlapping labels keep the maximum). Labels more than half a frame period outside
    ``times`` are ignored. Shapes: times (T,), beats (B,), downbeats (D,) -> (T,), (T,) float32.
    """
    times = np.asarray(times, np.float64)
    t_len = len(times)
    half = 0.5 * (float(np.median(np.diff(times))) if t_len > 1 else 1.0 / MODEL_FPS)

    def one(labels: np.ndarray) -> np.ndarray:
        y = np.zeros(t_len, np.float32)
        labels = np.asarray(labels, np.float64)
        labels = labels[(labels >= times[0] - half) & (labels <= times[-1] + half)] if t_len else labels[:0]
        if len(labels) == 0:
            return y
        i = np.clip(np.searchsorted(times, labels), 1, max(t_len - 1, 1))
        i = np.where(np.abs(times[i - 1] - labels) <= np.abs(times[np.minimum(i, t_len - 1)] - labels), i - 1, i)
        i = np.clip(i, 0, t_len - 1)
        for d in range(1, widen + 1):
            for j in (i - d, i + d):
                ok = (j >= 0) & (j < t_len)
                y[j[ok]] = np.maximum(y[j[ok]], 0.5)
        y[i] = 1.0
        return y

    return one(beats), one(downbeats)


def prepare_clip(dance: LabelledDance, running: bool = False) -> PreparedClip:
    """Features and targets of a clip; ``running``: the live (causal) normalisation instead of the
    clip-level one — the causal model trains and is scored on what it will see live.

    ``dance.sequence`` (T0 frames at any rate) -> features (T, 17, C) at ``MODEL_FPS``, targets (T,).
    """
    seq = prepare_for_model(dance.sequence)
    kp = (normalize_running(seq.keypoints, seq.confidence, MODEL_FPS) if running
          else normalize_clip(seq.keypoints, seq.confidence))
    feats = beat_input_features(kp, seq.confidence).astype(np.float32)
    bt, dt = beat_targets(seq.times, dance.beats, dance.downbeats)
    return PreparedClip(feats, bt, dt, np.asarray(dance.beats), np.asarray(dance.downbeats))
