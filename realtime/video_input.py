"""Video input for the live engine: a video file played at its real frame rate as if it were a camera
(``--video FILE``, ``--loop``), or a camera (``--camera N``), with pose estimation per frame.

Frames are read by OpenCV on a thread and stamped at capture (the event loop's monotonic clock); only the
newest frame goes to pose (mediapipe PoseLandmarker in VIDEO mode, one performer kept by
:class:`~rhythmicnet.models.performer_tracking.PerformerTracker`), which runs off the event loop; frames
that arrive while pose is busy are dropped and counted.

``rhythmicnet live`` runs pose in its own process (:class:`PoseProcess`): mediapipe's ~20-30 ms a frame
on a 2-core machine would otherwise share the frame loop's GIL, and the loop's own work (<= 5 ms p99)
would wait behind it. :class:`PoseStream` is the same estimator in-process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rhythmicnet.errors import DeviceError, InputError
from rhythmicnet.realtime.inputs import InputFrame
from rhythmicnet.realtime.process_priority import lower_priority

__all__ = ["PoseProcess", "PoseStream", "VideoSource"]


class PoseStream:
    """Per-frame pose: BGR image -> COCO-17 keypoints (17, 2) px and confidence (17,) of one performer."""

    def __init__(self, max_people: int = 1) -> None:
        from rhythmicnet.offline.pose_estimation import _create_landmarker, _native_stderr_silenced

        with _native_stderr_silenced():
            self.landmarker = _create_landmarker(max_people)
        self.tracker: Any = None  # a PerformerTracker once the frame size is known
        self.t0: float | None = None
        self.last_ms = -1
        self.times_ms: list[float] = []  # pose time of each frame (wall ms), for the stats

    def estimate(self, bgr: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        import mediapipe as mp

        from rhythmicnet.models.performer_tracking import PerformerTracker, performer_keypoints, pose_candidates

        h, w = bgr.shape[:2]
        if self.tracker is None:
            self.tracker = PerformerTracker(image_size=(w, h))
        self.t0 = t if self.t0 is None else self.t0
        ms = max(int(round((t - self.t0) * 1000)), self.last_ms + 1)
        self.last_ms = ms
        started = time.perf_counter()
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        result = self.landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), ms)
        self.times_ms.append((time.perf_counter() - started) * 1000)
        cands = pose_candidates(result, w, h)
        idx = self.tracker.update(cands, t - self.t0)
        return performer_keypoints(None if idx is None else cands[idx])

    def close(self) -> None:
        from rhythmicnet.offline.pose_estimation import _native_stderr_silenced

        with _native_stderr_silenced():  # mediapipe logs its teardown on the native stderr
            self.landmarker.close()


def _pose_worker(conn: Any, max_people: int) -> None:
    """The pose process: (image, time) in, (keypoints, confidence, pose ms) out, until None arrives.

    It runs at a lower priority (nice +5): the frame loop's few milliseconds a frame must not wait behind
    mediapipe's ~20-30 ms, and pose loses almost nothing by yielding to them."""
    lower_priority()
    pose = PoseStream(max_people)
    conn.send("ready")
    try:
        while True:
            item = conn.recv()
            if item is None:
                break
            kp, conf = pose.estimate(*item)
            conn.send((kp, conf, pose.times_ms[-1]))
    except (EOFError, KeyboardInterrupt):  # the parent went away, or Ctrl-C reached the whole group
        pass
    finally:
        pose.close()
        conn.close()


class PoseProcess:
    """:class:`PoseStream` in a worker process (``spawn``): the same ``estimate`` / ``close`` / ``times_ms``.
    ``estimate`` blocks its (executor) thread on a pipe, which holds no GIL."""

    def __init__(self, max_people: int = 1) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_pose_worker, args=(child, max_people), daemon=True, name="pose")
        self._proc.start()
        child.close()
        self.times_ms: list[float] = []
        try:  # wait until mediapipe is loaded, so no frame is dropped while it loads
            ready = self._conn.recv()
        except EOFError:
            ready = None
        if ready != "ready":
            from rhythmicnet.errors import InputError

            self._proc.join(1.0)
            raise InputError("the pose estimator (mediapipe) could not start")

    def estimate(self, bgr: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        from rhythmicnet.errors import InputError

        try:
            self._conn.send((bgr, t))
            kp, conf, ms = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise InputError("the pose estimator process stopped") from None
        self.times_ms.append(ms)
        return kp, conf

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(3.0)
        if self._proc.is_alive():
            self._proc.kill()
        self._conn.close()


class VideoSource:
    """Frames of a video file (paced at its frame rate) or a camera, newest first, with pose."""

    def __init__(self, video: str | None = None, camera: int | None = None, *, loop: bool = False,
                 downscale_to: int = 640) -> None:
        if video is not None:
            path = Path(video)
            if not path.is_file():
                raise InputError(f"{path}: file not found")
            self.cap = cv2.VideoCapture(str(path))
            if not self.cap.isOpened():
                raise InputError(f"{path}: cannot be decoded as a video")
        else:
            self.cap = cv2.VideoCapture(int(camera or 0))
            if not self.cap.isOpened():
                raise DeviceError(f"camera {camera}: cannot be opened")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self.is_file, self.loop, self.downscale_to = video is not None, loop, downscale_to
        self.dropped = 0
        self.frames = 0
        self.lost: str | None = None
        self._latest: tuple[float, np.ndarray] | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._path = str(video) if video is not None else None

    def _reader(self, clock: asyncio.AbstractEventLoop) -> None:
        if self._path is not None:
            # a video file is decoded at a lower priority, by decoder threads created here (they inherit
            # it): decoding a large video costs more than the frame loop, which must not wait behind it
            lower_priority()
            self.cap.release()
            self.cap = cv2.VideoCapture(self._path)
        period = 1.0 / self.fps
        next_t = time.monotonic()
        while not self._stop.is_set():
            ok, frame = self.cap.read()
            if not ok:
                if self.is_file and self.loop:
                    self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                self.lost = "end of video" if self.is_file else "camera stopped delivering frames"
                break
            if self.is_file:  # play at the video's own rate, as a camera would deliver it
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
            h, w = frame.shape[:2]
            if max(h, w) > self.downscale_to:  # pose on a downscaled image: its cost grows with the pixels
                s = self.downscale_to / max(h, w)
                frame = cv2.resize(frame, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
            stamp = clock.time()  # the event loop's monotonic clock, at capture
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = (stamp, frame)
                self.frames += 1
                self._cond.notify()
        with self._cond:
            self._stop.set()
            self._cond.notify()

    def _take(self) -> tuple[float, np.ndarray] | None:
        with self._cond:
            while self._latest is None and not self._stop.is_set():
                self._cond.wait(0.1)
            item, self._latest = self._latest, None
            return item

    async def stream(self, pose: PoseStream | PoseProcess, pose_latency_s: float = 0.0) -> AsyncIterator[InputFrame]:
        loop = asyncio.get_running_loop()
        thread = threading.Thread(target=self._reader, args=(loop,), daemon=True)
        thread.start()
        try:
            while True:
                item = await loop.run_in_executor(None, self._take)
                if item is None:
                    return
                stamp, frame = item
                kp, conf = await loop.run_in_executor(None, pose.estimate, frame, stamp)
                yield InputFrame(stamp, loop.time(), kp, conf, frame)
        finally:
            self._stop.set()
            thread.join(2.0)
            self.cap.release()
