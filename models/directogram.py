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


class KinematicOffsetStream:
    """Causal frame-by-frame kinematic offsets; equals ``kinematic_offsets`` on the same frames.

    Streaming contract: ``reset()``, ``process_online(kp (N, J, 2), conf (N, J)) -> (N,)``,
    ``process_offline(kp, conf) -> (T,)``. State: the previous frame and the previous directogram row.
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

    def step(self, keypoints: np.ndarray, confidence: np.ndarray) -> float:
        """One frame: (J, 2), (J,) -> ko for this frame."""
        value = 0.0
        if self._prev_kp is not None and self._prev_conf is not None:
            vel = (keypoints.astype(np.float64) - self._prev_kp)[None]
            valid = ((confidence > 0) & (self._prev_conf > 0))[None]
            d = directogram(vel, valid, self.n_bins)[0]
            if self._prev_dir is not None:
                value = float(np.maximum(d - self._prev_dir, 0.0).mean())
            self._prev_dir = d
        self._prev_kp = keypoints.astype(np.float64).copy()
        self._prev_conf = confidence.copy()
        return value

    def process_online(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return np.array([self.step(k, c) for k, c in zip(keypoints, confidence, strict=True)])

    def process_offline(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return kinematic_offsets(keypoints, confidence, self.n_bins)
