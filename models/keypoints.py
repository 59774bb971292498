"""A keypoint sequence (the one interchange format) and its time handling: gaps and resampling.

Schema (the design notes): ``keypoints`` float32 (T, 17, 2) pixels, ``confidence`` float32 (T, 17)
in [0, 1] (0 = unseen), ``times`` float64 (T,) seconds from the first frame, optional
``image_size`` (width, height). Any frame rate in; the models run at ``MODEL_FPS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rhythmicnet.models.skeleton import NUM_JOINTS

MODEL_FPS = 30.0
#: Gaps (no person / a joint unseen) up to this long are interpolated; longer ones stay at 0 confidence.
MAX_GAP_S = 0.5


@dataclass(frozen=True)
class KeypointSequence:
    """Body keypoints over time. Shapes: keypoints (T, 17, 2) px, confidence (T, 17), times (T,)."""

    keypoints: np.ndarray
    confidence: np.ndarray
    times: np.ndarray
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        kp, conf, t = self.keypoints, self.confidence, self.times
        if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
            raise ValueError(f"keypoints must have shape (T, {NUM_JOINTS}, 2), got {kp.shape}")
        if conf.shape != kp.shape[:2]:
            raise ValueError(f"confidence must have shape {kp.shape[:2]}, got {conf.shape}")
        if t.shape != (kp.shape[0],):
            raise ValueError(f"times must have shape ({kp.shape[0]},), got {t.shape}")
        if len(t) > 1 and np.any(np.diff(t) <= 0):
            raise ValueError("times must be strictly increasing")

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to one frame period past the last frame."""
        if self.num_frames < 2:
            return 0.0
        return float(self.times[-1] - self.times[0] + np.median(np.diff(self.times)))

    @property
    def fps(self) -> float:
        """Median frame rate."""
        if self.num_frames < 2:
            return MODEL_FPS
        return float(1.0 / np.median(np.diff(self.times)))

    def person_fraction(self) -> float:
        """Share of frames in which at least one joint is seen."""
        if self.num_frames == 0:
            return 0.0
        return float(np.mean(self.confidence.max(axis=1) > 0))


def fill_gaps(seq: KeypointSequence, max_gap_s: float = MAX_GAP_S) -> KeypointSequence:
    """Linearly interpolate each joint across unseen stretches up to ``max_gap_s`` long.

    Interpolated samples get the lower of the two bounding confidences times 0.5, so later stages
    can tell them from observed ones; longer gaps and the clip's ends stay at confidence 0.
    """
    kp = seq.keypoints.astype(np.float32).copy()
    conf = seq.confidence.astype(np.float32).copy()
    t = seq.times
    for j in range(kp.shape[1]):
        seen = np.flatnonzero(conf[:, j] > 0)
        if len(seen) < 2:
            continue
        for a, b in zip(seen[:-1], seen[1:], strict=True):
            if b - a <= 1 or t[b] - t[a] > max_gap_s + 1e-9:
                continue
            w = ((t[a + 1 : b] - t[a]) / (t[b] - t[a]))[:, None]
            kp[a + 1 : b, j] = (1 - w) * kp[a, j] + w * kp[b, j]
            conf[a + 1 : b, j] = 0.5 * min(conf[a, j], conf[b, j])
    return KeypointSequence(kp, conf, t.copy(), seq.image_size)


def resample(seq: KeypointSequence, fps: float = MODEL_FPS) -> KeypointSequence:
    """Resample to a uniform ``fps`` grid by timestamps, starting at ``times[0]``.

    Positions are interpolated linearly, except when upsampling (source rate below ``fps``): then each
    joint's runs of seen frames use a natural cubic spline, because linear interpolation of a slow
    source puts an acceleration spike on every source frame — a fake rhythm at the source rate that
    the kinematic offsets and the beat tracker would lock on to. A target sample between two frames is
    seen only when both neighbours are (confidence is the lower of the two); outside the observed
    range nothing is invented. Returns times relative to the first frame, so ``times[0] == 0``.
    """
    if seq.num_frames == 0:
        return seq
    t = seq.times - seq.times[0]
    n = int(np.floor(t[-1] * fps + 1e-6)) + 1
    tq = np.arange(n, dtype=np.float64) / fps
    if len(t) == 1:
        return KeypointSequence(seq.keypoints.copy(), seq.confidence.copy(), tq, seq.image_size)
    idx = np.clip(np.searchsorted(t, tq, side="right") - 1, 0, len(t) - 2)
    t0, t1 = t[idx], t[idx + 1]
    w = np.clip((tq - t0) / np.maximum(t1 - t0, 1e-12), 0.0, 1.0)
    k0, k1 = seq.keypoints[idx], seq.keypoints[idx + 1]
    c0, c1 = seq.confidence[idx], seq.confidence[idx + 1]
    kp = (1 - w)[:, None, None] * k0 + w[:, None, None] * k1
    # Exactly on a frame (w == 0 or 1), take that frame's confidence; between frames both must be seen.
    both = np.minimum(c0, c1)
    conf = np.where(w[:, None] <= 1e-9, c0, np.where(w[:, None] >= 1 - 1e-9, c1, both))
    if seq.fps < 0.9 * fps:
        kp = _spline_upsample(t, seq.keypoints, seq.confidence, tq, kp)
    return KeypointSequence(kp.astype(np.float32), conf.astype(np.float32), tq, seq.image_size)


def _seen_runs(seen: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges of consecutive True values."""
    edges = np.diff(np.concatenate([[0], seen.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _spline_upsample(t: np.ndarray, keypoints: np.ndarray, confidence: np.ndarray, tq: np.ndarray,
                     linear: np.ndarray) -> np.ndarray:
    """Replace linear values by a natural cubic spline inside each joint's runs of >= 3 seen frames."""
    from scipy.interpolate import CubicSpline

    out = linear.copy()
    for j in range(keypoints.shape[1]):
        for a, b in _seen_runs(confidence[:, j] > 0):
            if b - a < 3:
                continue
            inside = (tq >= t[a]) & (tq <= t[b - 1])
            spline = CubicSpline(t[a:b], keypoints[a:b, j].astype(np.float64), axis=0, bc_type="natural")
            out[inside, j] = spline(tq[inside])
    return out


def prepare_for_model(seq: KeypointSequence, fps: float = MODEL_FPS) -> KeypointSequence:
    """Gap filling then resampling to the model rate: what every offline stage consumes."""
    return resample(fill_gaps(seq), fps)
