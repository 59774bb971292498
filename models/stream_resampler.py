"""Streaming resampling of keypoint frames to the model rate, by timestamps (the live form of
:func:`~.keypoints.resample`).

A camera delivers frames at its own, often variable, rate (25, 30, 60 fps, dropped frames); the models
run at ``MODEL_FPS``. :class:`StreamResampler` turns each arriving frame ``(time, keypoints (17, 2),
confidence (17,))`` into the model-rate frames whose tick lies between the previous arrival and this
one, by linear interpolation, so a tick is emitted as soon as the frame after it has arrived (latency:
at most one source frame period). Ticks are ``origin + k / fps`` with the origin at the first frame.

Streaming contract (``../shared/design/architecture.md``): explicit frozen :class:`ResamplerState`,
a pure :meth:`StreamResampler.step`, ``reset`` / ``process_online`` / ``process_offline``. Feeding a
clip frame by frame gives exactly ``process_offline`` of the whole clip.

Against the offline :func:`~.keypoints.resample`: the same positions and confidences (a tick between
two frames is seen only when both are; exactly on a frame, that frame's confidence) for sources at or
above 0.9 x the model rate. For slower sources the offline path fits a cubic spline over each run of
seen frames, which needs frames after the tick; live stays linear (the tests measure the gap). Gap
filling (:func:`~.keypoints.fill_gaps`, up to 0.5 s) also needs the frame after the gap, so it is not
done here: an unseen joint stays unseen live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rhythmicnet.models.keypoints import MODEL_FPS, KeypointSequence
from rhythmicnet.models.skeleton import NUM_JOINTS

__all__ = ["ResampledFrames", "ResamplerState", "StreamResampler"]


@dataclass(frozen=True)
class ResamplerState:
    """Between two arrivals: the origin (time of the first frame, None before it), the index of the next
    tick to emit, and the last frame (time, keypoints (17, 2), confidence (17,)). Never changed in place."""

    origin: float | None = None
    next_tick: int = 0
    last_time: float = 0.0
    last_keypoints: np.ndarray | None = None
    last_confidence: np.ndarray | None = None


@dataclass(frozen=True)
class ResampledFrames:
    """Model-rate frames. Shapes: times (N,) seconds from the origin, keypoints (N, 17, 2), confidence (N, 17)."""

    times: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray

    @staticmethod
    def empty() -> ResampledFrames:
        return ResampledFrames(np.zeros(0), np.zeros((0, NUM_JOINTS, 2), np.float32),
                               np.zeros((0, NUM_JOINTS), np.float32))

    @staticmethod
    def concat(parts: list[ResampledFrames]) -> ResampledFrames:
        if not parts:
            return ResampledFrames.empty()
        return ResampledFrames(np.concatenate([p.times for p in parts]),
                               np.concatenate([p.keypoints for p in parts]),
                               np.concatenate([p.confidence for p in parts]))


class StreamResampler:
    """Arbitrary-rate keypoint frames in, ``fps`` frames out (see the module docstring)."""

    def __init__(self, fps: float = MODEL_FPS) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = float(fps)
        self.reset()

    def reset(self) -> None:
        self.state = ResamplerState()

    def step(self, state: ResamplerState, time: float, keypoints: np.ndarray, confidence: np.ndarray
             ) -> tuple[ResamplerState, ResampledFrames]:
        """One arriving frame -> the new state and the model-rate frames it completes (maybe none).

        ``time`` in seconds on any clock, strictly after the previous frame's (a frame that is not is
        dropped: cameras and OSC senders sometimes repeat a timestamp). Shapes: (17, 2), (17,).
        """
        kp = np.asarray(keypoints, dtype=np.float32)
        conf = np.asarray(confidence, dtype=np.float32)
        if kp.shape != (NUM_JOINTS, 2) or conf.shape != (NUM_JOINTS,):
            raise ValueError(f"a frame is keypoints ({NUM_JOINTS}, 2) and confidence ({NUM_JOINTS},), "
                             f"got {kp.shape} and {conf.shape}")
        t = float(time)
        if state.origin is None or state.last_keypoints is None or state.last_confidence is None:
            first = ResampledFrames(np.zeros(1), kp[None].copy(), conf[None].copy())
            return ResamplerState(t, 1, t, kp, conf), first
        if not t > state.last_time:
            return state, ResampledFrames.empty()
        t0, t1 = state.last_time - state.origin, t - state.origin
        # ticks k with t0 < k / fps <= t1 (the same 1e-6 tolerance as the offline grid)
        last = int(np.floor(t1 * self.fps + 1e-6))
        ticks = np.arange(state.next_tick, last + 1)
        new_state = ResamplerState(state.origin, max(state.next_tick, last + 1), t, kp, conf)
        if len(ticks) == 0:
            return new_state, ResampledFrames.empty()
        tq = ticks / self.fps
        w = np.clip((tq - t0) / max(t1 - t0, 1e-12), 0.0, 1.0)
        k0, c0 = state.last_keypoints, state.last_confidence
        out_kp = (1 - w)[:, None, None] * k0 + w[:, None, None] * kp
        both = np.minimum(c0, conf)
        out_conf = np.where(w[:, None] <= 1e-9, c0, np.where(w[:, None] >= 1 - 1e-9, conf, both))
        return new_state, ResampledFrames(tq, out_kp.astype(np.float32), out_conf.astype(np.float32))

    def process_online(self, time: float, keypoints: np.ndarray, confidence: np.ndarray) -> ResampledFrames:
        """One arriving frame with the kept state."""
        self.state, out = self.step(self.state, time, keypoints, confidence)
        return out

    def process_offline(self, sequence: KeypointSequence) -> ResampledFrames:
        """A whole clip frame by frame from a fresh state (the kept state is left alone)."""
        state = ResamplerState()
        parts = []
        for t, kp, conf in zip(sequence.times, sequence.keypoints, sequence.confidence, strict=True):
            state, out = self.step(state, float(t), kp, conf)
            parts.append(out)
        return ResampledFrames.concat(parts)
