"""Per-joint input features of the beat networks (``beat_net``, ``tcn_beat``).

The paper feeds the beat network first-order differences (velocities) of the 2D keypoints. Here each
joint of each frame gets ``FEATURE_CHANNELS = 5`` channels, in this order:

=====  ======================================================================================
0, 1   velocity ``(vx, vy)``: ``p[t] - p[t-1]`` of the normalised keypoints, times
       ``VELOCITY_SCALE`` (= the model rate, 30 fps), i.e. body units (torso lengths) per second,
       so the values are O(1); clipped to +-``VELOCITY_CLIP``. 0 at the first frame and wherever the
       joint is unseen (confidence 0) in frame t or t-1.
2, 3   position ``(x, y)``: the normalised keypoint itself (clip-level or slow running centre and
       scale, see ``skeleton``), clipped to +-``POSITION_CLIP``; 0 where unseen. Velocities alone
       lose posture (a knee bend's depth, an arm raised on the downbeat) and whole-body offset from
       the slow centre (the bounce): the graph convolution can read both from positions.
4      confidence in [0, 1] as given (0 = unseen; gap-filled frames carry the halved value that
       ``keypoints.fill_gaps`` gives them), so the network can discount unreliable joints.
=====  ======================================================================================

Input keypoints must already be normalised and at the model rate (``keypoints.prepare_for_model``
then ``skeleton.normalize_clip`` offline, ``skeleton.RunningBodyFrame`` live).

The live path is the same maths one frame at a time: :class:`BeatFeatureStream` keeps the previous
frame (positions and confidences, :class:`BeatFeatureState`) and differences against it, so
``process_online`` frame by frame equals ``process_offline`` (= :func:`beat_input_features`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rhythmicnet.models.keypoints import MODEL_FPS
from rhythmicnet.models.skeleton import NUM_JOINTS

__all__ = [
    "FEATURE_CHANNELS",
    "check_feature_batch",
    "FEATURE_NAMES",
    "POSITION_CLIP",
    "VELOCITY_CLIP",
    "VELOCITY_SCALE",
    "BeatFeatureState",
    "BeatFeatureStream",
    "beat_input_features",
]

FEATURE_NAMES: tuple[str, ...] = ("vx", "vy", "x", "y", "confidence")
FEATURE_CHANNELS = len(FEATURE_NAMES)
#: Velocities are per second at the model rate: (p[t] - p[t-1]) * VELOCITY_SCALE.
VELOCITY_SCALE = MODEL_FPS
#: Body units per second; a keypoint glitch (a joint jumping across the image) saturates here.
VELOCITY_CLIP = 30.0
#: Body units from the slow centre (the hips); a torso is 1.
POSITION_CLIP = 5.0


def _check(keypoints: np.ndarray, confidence: np.ndarray) -> None:
    if keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"keypoints must have shape (T, {NUM_JOINTS}, 2), got {keypoints.shape}")
    if confidence.shape != keypoints.shape[:2]:
        raise ValueError(f"confidence must have shape {keypoints.shape[:2]}, got {confidence.shape}")


def _features(
    keypoints: np.ndarray, confidence: np.ndarray, prev_keypoints: np.ndarray, prev_confidence: np.ndarray
) -> np.ndarray:
    """Features of frames whose previous frames are given. Shapes: 4 x (N, 17, 2 | -) -> (N, 17, 5)."""
    seen = confidence > 0  # (N, 17)
    both = seen & (prev_confidence > 0)  # (N, 17)
    vel = (keypoints.astype(np.float64) - prev_keypoints) * VELOCITY_SCALE  # (N, 17, 2)
    vel = np.where(both[..., None], np.clip(vel, -VELOCITY_CLIP, VELOCITY_CLIP), 0.0)
    pos = np.where(seen[..., None], np.clip(keypoints, -POSITION_CLIP, POSITION_CLIP), 0.0)  # (N, 17, 2)
    conf = np.clip(confidence, 0.0, 1.0)[..., None]  # (N, 17, 1)
    return np.concatenate([vel, pos, conf], axis=-1).astype(np.float32)  # (N, 17, 5)


def beat_input_features(keypoints_norm: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Velocity, position and confidence per joint (see the module docstring for the channels).

    Shape: keypoints_norm (T, 17, 2), confidence (T, 17) -> (T, 17, 5) float32.
    """
    kp = np.asarray(keypoints_norm, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    _check(kp, conf)
    if kp.shape[0] == 0:
        return np.zeros((0, NUM_JOINTS, FEATURE_CHANNELS), np.float32)
    prev_kp = np.concatenate([np.zeros_like(kp[:1]), kp[:-1]])  # (T, 17, 2); frame 0 has no predecessor
    prev_conf = np.concatenate([np.zeros_like(conf[:1]), conf[:-1]])  # (T, 17)
    return _features(kp, conf, prev_kp, prev_conf)


@dataclass(frozen=True)
class BeatFeatureState:
    """The previous frame. Shapes: keypoints (17, 2) float64, confidence (17,) (all 0 after ``reset``)."""

    keypoints: np.ndarray
    confidence: np.ndarray

    @classmethod
    def initial(cls) -> BeatFeatureState:
        return cls(np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS))


class BeatFeatureStream:
    """Causal :func:`beat_input_features`, one frame or a chunk at a time.

    Streaming contract: ``reset()``, ``process_online(kp (17, 2) | (N, 17, 2), conf (17,) | (N, 17)) ->
    (N, 17, 5)``, ``process_offline(kp (T, 17, 2), conf (T, 17)) -> (T, 17, 5)``.
    """

    def __init__(self) -> None:
        self.state = BeatFeatureState.initial()

    def reset(self) -> None:
        self.state = BeatFeatureState.initial()

    @staticmethod
    def step(
        state: BeatFeatureState, keypoints: np.ndarray, confidence: np.ndarray
    ) -> tuple[np.ndarray, BeatFeatureState]:
        """Pure update. Shapes: (N, 17, 2), (N, 17) -> features (N, 17, 5), the new state."""
        kp = np.asarray(keypoints, dtype=np.float64)
        conf = np.asarray(confidence, dtype=np.float64)
        _check(kp, conf)
        if kp.shape[0] == 0:
            return np.zeros((0, NUM_JOINTS, FEATURE_CHANNELS), np.float32), state
        prev_kp = np.concatenate([state.keypoints[None], kp[:-1]])  # (N, 17, 2)
        prev_conf = np.concatenate([state.confidence[None], conf[:-1]])  # (N, 17)
        feats = _features(kp, conf, prev_kp, prev_conf)
        return feats, BeatFeatureState(kp[-1].copy(), conf[-1].copy())

    def process_online(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        kp = np.asarray(keypoints)
        conf = np.asarray(confidence)
        if kp.ndim == 2:
            kp, conf = kp[None], conf[None]
        feats, self.state = self.step(self.state, kp, conf)
        return feats

    def process_offline(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return beat_input_features(keypoints, confidence)


def check_feature_batch(x: Any, mask: Any, in_channels: int) -> tuple[int, int]:
    """Validate a model input batch: x (B, T, 17, C) with T >= 1, mask None or (B, T). Returns (B, T)."""
    if x.dim() != 4 or tuple(x.shape[2:]) != (NUM_JOINTS, in_channels):
        raise ValueError(f"x must be (batch, frames, {NUM_JOINTS}, {in_channels}), got {tuple(x.shape)}")
    b, t = x.shape[0], x.shape[1]  # not int(): a symbolic length stays symbolic when exported (dynamic frames)
    if t == 0:
        raise ValueError("x has no frames")
    if mask is not None and tuple(mask.shape) != (b, t):
        raise ValueError(f"mask must be (batch, frames) = {(b, t)}, got {tuple(mask.shape)}")
    return b, t
