"""Directogram and kinematic offsets (paper Eq. (1); Davis & Agrawala's visual rhythm).

Pure numpy. Input keypoints are normalised body units (see ``skeleton.normalize_clip``) so that
thresholds do not depend on the camera distance; any uniform scale works since angles are kept.

Decision — Eq. (1)'s bins overlap: a joint velocity with angle phi counts in every bin theta whose
centre is within 2*pi/N of phi (circular distance, inclusive), exactly as the equation is written,
so with N = 12 each vector lands in the two nearest bins (three when it sits exactly on a centre).
This doubles every magnitude and smooths the directogram across angles; it does not change where
the kinematic offsets peak. Bin centres are theta_k = 2*pi*k/N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 12


def joint_velocity(keypoints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First-order difference of positions and where it is valid (joint seen in both frames).

    Shapes: (T, J, 2), (T, J) -> velocity (T-1, J, 2) aligned to frames 1..T-1, valid (T-1, J).
    """
    vel = np.diff(keypoints.astype(np.float64), axis=0)
    valid = (confidence[1:] > 0) & (confidence[:-1] > 0)
    return vel, valid


def directogram(velocity: np.ndarray, valid: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """D(t, theta) = sum_j |F(j, t)| * 1_theta(angle F(j, t)) with Eq. (1)'s overlapping bins.

    Shapes: velocity (T, J, 2), valid (T, J) -> (T, n_bins).
    """
    mag = np.linalg.norm(velocity, axis=-1) * valid  # (T, J)
    ang = np.arctan2(velocity[..., 1], velocity[..., 0])  # (T, J)
    centres = 2 * np.pi * np.arange(n_bins) / n_bins  # (N,)
    diff = np.angle(np.exp(1j * (ang[..., None] - centres)))  # (T, J, N) wrapped to (-pi, pi]
    member = np.abs(diff) <= 2 * np.pi / n_bins + 1e-9  # (T, J, N)
    return np.einsum("tj,tjn->tn", mag, member)  # (T, N)


def kinematic_offsets(keypoints: np.ndarray, confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Mean positive acceleration of the directogram over angles, one value per frame.

    ko[t] = mean_theta max(D(t, theta) - D(t-1, theta), 0); the first two frames (no acceleration
    yet) are 0, so the output stays aligned with the input frames.

    Shapes: (T, J, 2), (T, J) -> (T,).
    """
    t = keypoints.shape[0]
    out = np.zeros(t, dtype=np.float64)
    if t < 3:
        return out
    vel, valid = joint_velocity(keypoints, confidence)
    d = directogram(vel, valid, n_bins)  # (T-1, N), row i is frame i+1
    acc = np.diff(d, axis=0)  # (T-2, N), row i is frame i+2
    out[2:] = np.maximum(acc, 0.0).mean(axis=1)
    return out


@dataclass(frozen=True)
class KinematicOffsetState:
    """The previous frame (keypoints (J, 2), confidence (J,)) and the previous directogram row (n_bins,)."""

    prev_kp: np.ndarray | None = None
    prev_conf: np.ndarray | None = None
    prev_dir: np.ndarray | None = None


class KinematicOffsetStream:
    """Causal frame-by-frame kinematic offsets; equals ``kinematic_offsets`` on the same frames.

    Streaming contract: ``reset()``, ``process_online(kp (N, J, 2), conf (N, J)) -> (N,)``,
    ``process_offline(kp, conf) -> (T,)``, and the pure :meth:`advance` on a :class:`KinematicOffsetState`
    (``step`` is its stateful form).
    """

    def __init__(self, n_bins: int = N_BINS) -> None:
        self.n_bins = n_bins
        self._prev_kp: np.ndarray | None = None
        self._prev_conf: np.ndarray | None = None
        self._prev_dir: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_kp = None
        self._prev_conf = None
        self._prev_dir = None

    def advance(self, state: KinematicOffsetState, keypoints: np.ndarray, confidence: np.ndarray
                ) -> tuple[float, KinematicOffsetState]:
        """Pure: one frame (J, 2), (J,) -> ko for this frame and the new state."""
        value = 0.0
        prev_dir = state.prev_dir
        if state.prev_kp is not None and state.prev_conf is not None:
            vel = (keypoints.astype(np.float64) - state.prev_kp)[None]
            valid = ((confidence > 0) & (state.prev_conf > 0))[None]
            d = directogram(vel, valid, self.n_bins)[0]
            if prev_dir is not None:
                value = float(np.maximum(d - prev_dir, 0.0).mean())
            prev_dir = d
        return value, KinematicOffsetState(keypoints.astype(np.float64).copy(), np.array(confidence, copy=True),
                                           prev_dir)

    def step(self, keypoints: np.ndarray, confidence: np.ndarray) -> float:
        """One frame: (J, 2), (J,) -> ko for this frame (the kept state moves on)."""
        value, new = self.advance(KinematicOffsetState(self._prev_kp, self._prev_conf, self._prev_dir),
                                  keypoints, confidence)
        self._prev_kp, self._prev_conf, self._prev_dir = new.prev_kp, new.prev_conf, new.prev_dir
        return value

    def process_online(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return np.array([self.step(k, c) for k, c in zip(keypoints, confidence, strict=True)])

    def process_offline(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return kinematic_offsets(keypoints, confidence, self.n_bins)
