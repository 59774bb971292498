"""Video file -> COCO-17 keypoints of one performer, with mediapipe's PoseLandmarker (offline, CPU).

``extract_keypoints(video)`` decodes the video with OpenCV, runs mediapipe's BlazePose GHUM 3D
"full" landmarker (the bundle ``rhythmicnet/models/assets/pose_landmarker_full.task``, built by
``scripts/build_pose_bundle.py``; nothing is ever downloaded) in VIDEO mode, keeps one performer
(see :class:`~rhythmicnet.models.performer_tracking.PerformerTracker`, the per-frame tracking that the
live path shares) and maps mediapipe's 33 landmarks to COCO-17 in pixels.
``load_or_extract(video, cache)`` does the same behind a ``.npz`` cache keyed on the video's content.

Output (:class:`~rhythmicnet.models.keypoints.KeypointSequence`): keypoints float32 (T, 17, 2) in
pixels (x right, y down, aspect ratio kept), confidence float32 (T, 17) = landmark visibility in
[0, 1] (all 0 in frames without the performer, keypoints 0 there), times float64 (T,) seconds from
the first frame, image_size (width, height).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import queue
import sys
import threading
from collections.abc import Generator, Iterator
from importlib import resources
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np
from tqdm import tqdm

from rhythmicnet.errors import InputError, NoPersonError, WeightsError
from rhythmicnet.fileio import ensure_output_dir
from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.models.performer_tracking import (
    PerformerTracker,
    performer_keypoints,
    pose_candidates,
)

POSE_BUNDLE_NAME = "pose_landmarker_full.task"
#: Poses mediapipe tracks per frame; the performer is chosen among them (see extract_keypoints).
DEFAULT_MAX_PEOPLE = 2
#: Bump when the extraction or tracking rule changes: cached keypoints are then recomputed.
EXTRACTOR_VERSION = 2  # 2: two poses per frame by default (was 4)
#: Bytes of the video hashed for the cache key (plus the file size).
CACHE_HEAD_BYTES = 1 << 20


# --------------------------------------------------------------------------------------------------
# mediapipe
# --------------------------------------------------------------------------------------------------


def pose_bundle_bytes() -> bytes:
    """The bundled PoseLandmarker model (``rhythmicnet.models`` package data); never downloads."""
    res = resources.files("rhythmicnet.models").joinpath("assets", POSE_BUNDLE_NAME)
    try:
        return res.read_bytes()
    except OSError as e:
        raise WeightsError(
            f"{res}: pose model bundle missing or unreadable (rebuild it with scripts/build_pose_bundle.py)"
        ) from e


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[TextIO]:
    """Send file descriptor 2 to /dev/null: hides the C++ logging of LiteRT/absl/FFmpeg.

    mediapipe prints INFO/WARNING banners (model loading, XNNPACK, "landmark projection") straight
    to fd 2, which Python cannot filter. Yields a text stream on the *original* stderr for output
    that should still be seen (the progress bar). Python exceptions are unaffected (they propagate
    and are printed after fd 2 is restored). Set ``RHYTHMICNET_NATIVE_LOGS=1`` to keep the native
    logs (debugging a crash inside mediapipe).
    """
    if os.environ.get("RHYTHMICNET_NATIVE_LOGS"):
        yield sys.stderr
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters): leave it be
        yield sys.stderr
        return
    stream = None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        stream = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
        yield stream
    finally:
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _create_landmarker(max_people: int):  # -> vision.PoseLandmarker
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=pose_bundle_bytes()),
        running_mode=vision.RunningMode.VIDEO,
        num_poses=max_people,
        min_pose_detection_confidence=0.5,
        min_pose_presence_confidence=0.5,
        min_tracking_confidence=0.5,
        output_segmentation_masks=False,
    )
    return vision.PoseLandmarker.create_from_options(options)


def _sane_fps(cap: cv2.VideoCapture) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 1.0 <= fps <= 1000.0 else 30.0


def _open_video(path: Path) -> cv2.VideoCapture:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: file is not readable (permission denied)")
    with _native_stderr_silenced():
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"{path}: cannot be decoded as a video (not a video file, or an unsupported codec)")
    return cap


def _decoded_frames(cap: cv2.VideoCapture, queue_size: int = 8) -> Generator[tuple[np.ndarray, np.ndarray, float]]:
    """(BGR frame, RGB frame, CAP_PROP_POS_MSEC) of every frame, decoded on a background thread.

    Decoding and colour conversion (OpenCV releases the GIL) then overlap with the pose model: on 2
    cores that hides most of the decode time of a 720p H.264 or VP9 frame.
    """
    q: queue.Queue[tuple[np.ndarray, np.ndarray, float] | None] = queue.Queue(maxsize=queue_size)
    stop = threading.Event()

    def put(item: tuple[np.ndarray, np.ndarray, float] | None) -> bool:
        while not stop.is_set():  # a bounded wait, so a consumer that has stopped never blocks us
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            while not stop.is_set():
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                if not put((frame, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), float(cap.get(cv2.CAP_PROP_POS_MSEC)))):
                    return
        finally:
            put(None)

    thread = threading.Thread(target=reader, name="video-decode", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            yield item
    finally:
        stop.set()
        thread.join()


def extract_keypoints(
    video_path: str | os.PathLike[str], *, progress: bool = True, max_people: int = DEFAULT_MAX_PEOPLE
) -> KeypointSequence:
    """Run the pose model over every frame of a video and keep one performer.

    Frames are decoded with OpenCV (BGR -> RGB) and passed to mediapipe's PoseLandmarker in VIDEO
    mode, which detects up to ``max_people`` poses and tracks them between frames. One performer is
    kept with :class:`PerformerTracker`: the largest, most central person of the first frame with
    a detection, then whoever is nearest their last position within a gate of about 1-2 torso
    lengths — never somebody else (see the class docstring for the exact rule). Frames without the
    performer get confidence 0 and keypoints 0.

    Timestamps: ``CAP_PROP_POS_MSEC`` of each frame when it is finite and later than the previous
    frame's, otherwise the previous time plus one frame period (``1 / CAP_PROP_FPS``, 30 fps if
    the container does not say). mediapipe receives them as strictly increasing integer ms.

    Args:
        video_path: any video OpenCV's FFmpeg backend can decode.
        progress: show a tqdm bar on stderr.
        max_people: poses detected per frame (>= 1); more makes the performer choice robust when
            several people are in view (default 2: the performer and one bystander; measured on a
            5 s 720p cut of the example, with two people in view, 87 / 52 / 24 ms a frame for 4 / 2 / 1
            under load). Cost (2 CPU cores): while fewer than ``max_people`` poses
            are tracked, mediapipe runs its person detector on every frame (~11 ms), plus the
            landmark model (~15 ms) per person in view.

    Returns:
        KeypointSequence: keypoints float32 (T, 17, 2) px (mediapipe x * width, y * height),
        confidence float32 (T, 17) = visibility clipped to [0, 1], times float64 (T,) s from the
        first frame, image_size (width, height).

    Raises:
        InputError: the file is missing, unreadable, not a decodable video, or has no frames.
        NoPersonError: no person was detected in any frame.
        WeightsError: the bundled pose model is missing.
    """
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    path = Path(video_path)
    cap = _open_video(path)
    import mediapipe as mp

    fps = _sane_fps(cap)
    frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    times_ms: list[float] = []
    kps: list[np.ndarray] = []
    confs: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    tracker: PerformerTracker | None = None
    last_ts_ms = -1
    with contextlib.ExitStack() as stack:
        stack.callback(cap.release)
        err = stack.enter_context(_native_stderr_silenced())
        landmarker = _create_landmarker(max_people)
        stack.callback(landmarker.close)
        bar = stack.enter_context(
            tqdm(
                total=frame_count if frame_count > 0 else None,
                desc=f"pose {path.name}",
                unit="frame",
                file=err,
                disable=not progress,
                leave=False,
                dynamic_ncols=True,
            )
        )
        # closed first on the way out (the stack unwinds in reverse): the decode thread stops before
        # the capture is released
        frames = stack.enter_context(contextlib.closing(_decoded_frames(cap)))
        for frame, rgb, pos in frames:
            h, w = frame.shape[:2]
            if size is None:
                size = (w, h)
                tracker = PerformerTracker(image_size=size)
            elif (w, h) != size:
                raise InputError(f"{path}: frame size changes mid-video ({size[0]}x{size[1]} -> {w}x{h})")
            assert tracker is not None
            prev = times_ms[-1] if times_ms else None
            if math.isfinite(pos) and pos >= 0 and (prev is None or pos > prev):
                t_ms = pos
            else:
                t_ms = 0.0 if prev is None else prev + 1000.0 / fps
            times_ms.append(t_ms)
            ts = max(int(round(t_ms)), last_ts_ms + 1)  # strictly increasing integer ms
            last_ts_ms = ts

            result = landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), ts)
            cands = pose_candidates(result, w, h)
            idx = tracker.update(cands, (t_ms - times_ms[0]) / 1000.0)
            kp, conf = performer_keypoints(None if idx is None else cands[idx])
            kps.append(kp)
            confs.append(conf)
            bar.update(1)

    if not times_ms:
        raise InputError(f"{path}: video has no decodable frames")
    conf = np.stack(confs)
    if not np.any(conf > 0):
        raise NoPersonError(f"{path}: no person found in any of its {len(times_ms)} frames")
    t = np.asarray(times_ms, dtype=np.float64)
    return KeypointSequence(
        keypoints=np.stack(kps),
        confidence=conf,
        times=(t - t[0]) / 1000.0,
        image_size=size,
    )


# --------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------


def video_fingerprint(video_path: str | os.PathLike[str]) -> str:
    """Content key of a video: its size in bytes and the SHA-256 of its first MiB.

    Content-based (not mtime) so that copying or touching the file keeps the cache valid.
    """
    p = Path(video_path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(CACHE_HEAD_BYTES)
    except FileNotFoundError as e:
        raise InputError(f"{p}: file not found") from e
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from e
    return f"{size}:{hashlib.sha256(head).hexdigest()}"


def extractor_id() -> str:
    """What made a cache: extractor version, mediapipe version and the pose bundle's hash."""
    import mediapipe as mp

    bundle = hashlib.sha256(pose_bundle_bytes()).hexdigest()[:16]
    return f"v{EXTRACTOR_VERSION}/mediapipe-{mp.__version__}/bundle-{bundle}"


def load_or_extract(
    video_path: str | os.PathLike[str], cache_path: str | os.PathLike[str], *, progress: bool = True
) -> KeypointSequence:
    """Keypoints of ``video_path``, reusing ``cache_path`` (``.npz``) when it was made from it.

    The cache stores, beside the keypoint arrays, ``source_fingerprint`` (video size + SHA-256 of
    its first MiB) and ``extractor`` (see :func:`extractor_id`). It is reused when both match and it
    loads cleanly; otherwise the video is processed again and the cache rewritten atomically
    (its folder is created if needed).

    Raises:
        InputError, NoPersonError: as :func:`extract_keypoints`.
        OutputError: the cache cannot be written (the message names the cache file).

    Returns:
        KeypointSequence as :func:`extract_keypoints`.
    """
    from rhythmicnet.offline.keypoint_io import load_keypoints, read_extra, save_keypoints

    video = Path(video_path)
    cache = Path(cache_path)
    fingerprint = video_fingerprint(video)
    ident = extractor_id()
    if cache.is_file():
        extra = read_extra(cache)
        if extra.get("source_fingerprint") == fingerprint and extra.get("extractor") == ident:
            try:
                return load_keypoints(cache)
            except InputError:
                pass  # a damaged cache is simply rebuilt
    seq = extract_keypoints(video, progress=progress)
    ensure_output_dir(cache.parent)
    save_keypoints(
        cache,
        seq,
        extra={"source_fingerprint": fingerprint, "extractor": ident, "source_name": video.name},
    )
    return seq


def load_input_keypoints(path: str | os.PathLike[str], outdir: str | os.PathLike[str], *, use_cache: bool = True,
                         progress: bool = True) -> tuple[KeypointSequence, bool]:
    """Keypoints of a command's INPUT: a keypoint file as it is, or a video through the pose model
    (cached as ``OUTDIR/<name>.keypoints.npz`` unless ``use_cache`` is False). True when it is a video."""
    from rhythmicnet.offline.keypoint_io import is_keypoint_file, load_keypoints

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a video or keypoint file")
    if is_keypoint_file(p):
        return load_keypoints(p), False
    if use_cache:
        return load_or_extract(p, Path(outdir) / f"{p.stem}.keypoints.npz", progress=progress), True
    return extract_keypoints(p, progress=progress), True
