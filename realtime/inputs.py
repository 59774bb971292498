"""Live inputs that deliver keypoint frames on the engine's clock. This module has the keypoint replay
(``--keypoints FILE``): a keypoint file played at its own timestamps as if a camera and pose estimator
produced it, with ``--pose-latency`` between capture and the keypoints' arrival. It is how the timing
tests and the beat benchmark run on synthetic dancers with known beats (mediapipe finds no person in the
stick-figure previews, so their keypoints go in directly).

:meth:`KeypointReplay.frames` is the deterministic schedule (for a simulated clock); :meth:`KeypointReplay.stream`
is the same schedule on the real monotonic clock, an asyncio async iterator that sleeps until each frame
arrives. :func:`event_loop_policy` picks uvloop where it exists (not on Windows).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rhythmicnet.models.keypoints import KeypointSequence

__all__ = ["InputFrame", "KeypointReplay", "event_loop_policy"]


@dataclass(frozen=True)
class InputFrame:
    """One frame: ``capture_time`` (clock s, stamped at capture), ``arrival_time`` (when its keypoints are
    available: capture + pose latency), keypoints (17, 2) px, confidence (17,), and the camera image
    (H, W, 3) BGR the keypoints are in, where there is one (for ``--preview``)."""

    capture_time: float
    arrival_time: float
    keypoints: np.ndarray
    confidence: np.ndarray
    image: np.ndarray | None = None


class KeypointReplay:
    """A :class:`~rhythmicnet.models.keypoints.KeypointSequence` replayed at its timestamps from ``start``.

    ``loop``: repeat the clip (each pass one clip duration later, so capture times keep increasing).
    """

    def __init__(self, sequence: KeypointSequence, *, pose_latency_s: float = 0.040, loop: bool = False) -> None:
        if sequence.num_frames == 0:
            raise ValueError("the keypoint sequence has no frames")
        if pose_latency_s < 0:
            raise ValueError(f"pose latency must be >= 0, got {pose_latency_s}")
        self.sequence, self.pose_latency_s, self.loop = sequence, float(pose_latency_s), loop
        t = sequence.times - sequence.times[0]
        self._offsets = t
        self._period = float(t[-1] + (np.median(np.diff(t)) if len(t) > 1 else 1 / 30))

    def frames(self, start: float) -> Iterator[InputFrame]:
        """The frames in arrival order, the first captured at ``start`` (endless with ``loop``)."""
        k = 0
        seq = self.sequence
        while True:
            base = start + k * self._period
            for off, kp, conf in zip(self._offsets, seq.keypoints, seq.confidence, strict=True):
                cap = base + float(off)
                yield InputFrame(cap, cap + self.pose_latency_s, kp, conf)
            if not self.loop:
                return
            k += 1

    async def stream(self, start: float | None = None, duration_s: float | None = None) -> AsyncIterator[InputFrame]:
        """The schedule on the running loop's monotonic clock (``loop.time()``): each frame is yielded once
        its arrival time has come; stops after ``duration_s`` (or the clip's end without ``loop``). It suspends
        before every frame, also when the frame is overdue."""
        ev_loop = asyncio.get_running_loop()
        t0 = ev_loop.time() if start is None else start
        for frame in self.frames(t0):
            if duration_s is not None and frame.capture_time - t0 > duration_s:
                return
            delay = frame.arrival_time - ev_loop.time()
            # behind schedule the loop still runs between frames (sleep(0)): without it an overdue replay
            # yielded frame after frame without suspending, so the MIDI poller starved and a Ctrl-C (the
            # main task's cancellation, delivered only at a suspension) waited until it caught up
            await asyncio.sleep(max(delay, 0.0))
            yield frame


def event_loop_policy() -> Any:
    """uvloop's policy where it is installed (the design card's loop), else asyncio's default (Windows)."""
    try:
        import uvloop

        return uvloop.EventLoopPolicy()
    except ImportError:
        return asyncio.DefaultEventLoopPolicy()
