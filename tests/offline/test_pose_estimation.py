"""Video -> COCO-17 keypoints with mediapipe: reference accuracy, performer choice, errors, cache.

Real clips come from ``shared/data/example_video`` (see its README.txt); those tests skip when the
folder is absent. Whole file: ~15 s on 2 CPU cores (the two clips are processed once each).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from rhythmicnet.errors import InputError, NoPersonError
from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.models.skeleton import MEDIAPIPE_TO_COCO17, NUM_JOINTS
from rhythmicnet.offline import pose_estimation as pe
from rhythmicnet.offline.keypoint_io import load_keypoints, read_extra

SQUATS = Path("tfjs_pose_squats") / "pose_squats.mp4"
SQUATS_REF = Path("tfjs_pose_squats") / "pose_squats.full.json"
JACKS = Path("sports2d_jumping_jacks") / "sports2d_demo.mp4"

#: COCO-17 index of each joint's left/right mirror.
MIRROR = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
BODY = slice(5, 17)  # shoulders .. ankles

# Thresholds for the reference comparison (pixels, 720x1280 clip; the performer's torso is ~250 px).
# Measured with mediapipe 1.2.3 on x86-64: body-joint median 5.9, worst per-joint median 8.6 (left
# elbow), 90th percentile of body joints 13.9. A left/right swap gives ~93 px, width/height
# swapped ~410 px, a one-frame time shift ~12.7 px; all of these must fail.
MAX_BODY_MEDIAN_PX = 10.0
MAX_JOINT_MEDIAN_PX = 15.0
MAX_BODY_P90_PX = 25.0


# --------------------------------------------------------------------------------------------------
# Fixtures: each real clip is processed once per test session
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def squats(example_video_dir: Path) -> KeypointSequence:
    return pe.extract_keypoints(example_video_dir / SQUATS, progress=False)


@pytest.fixture(scope="module")
def squats_reference(example_video_dir: Path) -> np.ndarray:
    """Google's reference BlazePose output mapped to COCO-17. Shape: (65, 17, 2) px."""
    ref = np.asarray(json.loads((example_video_dir / SQUATS_REF).read_text()), dtype=np.float64)
    assert ref.shape == (65, 33, 3)
    return ref[:, list(MEDIAPIPE_TO_COCO17), :2]


@pytest.fixture(scope="module")
def jacks(example_video_dir: Path) -> KeypointSequence:
    return pe.extract_keypoints(example_video_dir / JACKS, progress=False)


def pixel_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame, per-joint distance. Shapes: (T, 17, 2), (T, 17, 2) -> (T, 17)."""
    return np.linalg.norm(np.asarray(a, np.float64) - b, axis=-1)


def passes_reference(kp: np.ndarray, ref: np.ndarray) -> bool:
    err = pixel_errors(kp, ref)
    return bool(
        np.median(err[:, BODY]) < MAX_BODY_MEDIAN_PX
        and np.median(err, axis=0).max() < MAX_JOINT_MEDIAN_PX
        and np.percentile(err[:, BODY], 90) < MAX_BODY_P90_PX
    )


# --------------------------------------------------------------------------------------------------
# The bundled model
# --------------------------------------------------------------------------------------------------


def test_bundle_layout() -> None:
    data = pe.pose_bundle_bytes()
    path = Path(pe.__file__).resolve().parents[1] / "models" / "assets" / pe.POSE_BUNDLE_NAME
    assert path.read_bytes() == data
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert set(infos) == {"pose_detector.tflite", "pose_landmarks_detector.tflite"}
        for info in infos.values():
            assert info.compress_type == zipfile.ZIP_STORED
            assert zf.read(info.filename)[4:8] == b"TFL3"
    notice = path.with_name("NOTICE-mediapipe.txt").read_text()
    assert "Apache License" in notice and "0.10.21" in notice


# --------------------------------------------------------------------------------------------------
# Real clips
# --------------------------------------------------------------------------------------------------


def test_squats_shapes_times_and_size(squats: KeypointSequence) -> None:
    assert squats.keypoints.shape == (65, NUM_JOINTS, 2) and squats.keypoints.dtype == np.float32
    assert squats.confidence.shape == (65, NUM_JOINTS) and squats.confidence.dtype == np.float32
    assert squats.image_size == (720, 1280)
    assert squats.times[0] == 0.0
    np.testing.assert_allclose(np.diff(squats.times), 0.2, atol=1e-3)  # a 5 fps clip
    assert squats.person_fraction() == 1.0
    assert squats.confidence.min() >= 0.0 and squats.confidence.max() <= 1.0
    assert np.median(squats.confidence) > 0.9


def test_squats_match_google_reference(squats: KeypointSequence, squats_reference: np.ndarray) -> None:
    err = pixel_errors(squats.keypoints, squats_reference)
    per_joint = np.median(err, axis=0)
    assert np.median(err[:, BODY]) < MAX_BODY_MEDIAN_PX, per_joint
    assert per_joint.max() < MAX_JOINT_MEDIAN_PX, per_joint
    assert np.percentile(err[:, BODY], 90) < MAX_BODY_P90_PX, per_joint


def test_reference_thresholds_catch_mapping_and_scaling_mistakes(
    squats: KeypointSequence, squats_reference: np.ndarray
) -> None:
    kp = squats.keypoints.astype(np.float64)
    w, h = squats.image_size
    assert passes_reference(kp, squats_reference)
    assert not passes_reference(kp[:, list(MIRROR)], squats_reference)  # left/right swapped
    assert not passes_reference(kp / (w, h) * (h, w), squats_reference)  # width/height swapped
    assert not passes_reference(kp / (w, h) * (w, w), squats_reference)  # aspect ratio lost
    assert not passes_reference(kp[1:], squats_reference[:-1])  # one frame late
    eyes_swapped = kp.copy()
    eyes_swapped[:, [1, 2]] = kp[:, [2, 1]]
    assert not passes_reference(eyes_swapped, squats_reference)


def test_jumping_jacks_keeps_the_man_not_the_walker(jacks: KeypointSequence) -> None:
    """The man jumps on the roof (hips near x 640, y 250 px) while a woman walks across the lawn
    below (hips at y ~ 720 px, x from 1420 to 0 between 2 s and 6.7 s). The performer kept must be
    the man while he is there, and never the woman."""
    assert jacks.image_size == (1768, 994)
    assert jacks.num_frames == 230
    seen = jacks.confidence.max(axis=1) > 0
    hips = jacks.keypoints[:, [11, 12]].mean(axis=1)
    window = (jacks.times >= 0.3) & (jacks.times <= 5.0)
    assert seen[window].mean() > 0.95
    x, y = hips[window & seen].T
    assert np.all((x > 500) & (x < 950)), x
    assert np.all((y > 100) & (y < 480)), y
    jumping = (jacks.times >= 0.3) & (jacks.times <= 3.3) & seen  # jumping jacks on the spot
    assert np.ptp(hips[jumping, 0]) < 100
    assert np.ptp(hips[jumping, 1]) > 50  # and he does jump
    # Never the walker, at any time (the man is lost after his backflip: those frames are empty).
    assert np.all(hips[seen, 1] < 500)


# --------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------


def assert_one_line_naming(err: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(InputError) as err:
        pe.extract_keypoints(path, progress=False)
    assert_one_line_naming(err, path)
    assert str(err.value) == f"{path}: file not found"


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(InputError) as err:
        pe.extract_keypoints(path, progress=False)
    assert not isinstance(err.value, NoPersonError)
    assert_one_line_naming(err, path)


def test_folder_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        pe.extract_keypoints(tmp_path, progress=False)
    assert_one_line_naming(err, tmp_path)


def test_blank_video_has_no_person(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "blank.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (160, 120))
    assert writer.isOpened()
    for _ in range(8):
        writer.write(np.full((120, 160, 3), 90, np.uint8))
    writer.release()
    with pytest.raises(NoPersonError) as err:
        pe.extract_keypoints(path, progress=False)
    assert_one_line_naming(err, path)
    assert "8 frames" in str(err.value)
    # mediapipe's native INFO/WARNING banners are kept off the terminal.
    assert "XNNPACK" not in capfd.readouterr().err


def test_max_people_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        pe.extract_keypoints(tmp_path / "x.mp4", max_people=0)


# --------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------


def test_load_or_extract_reuses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seq = KeypointSequence(
        keypoints=np.full((4, 17, 2), 7.0, np.float32),
        confidence=np.full((4, 17), 0.5, np.float32),
        times=np.arange(4) / 30.0,
        image_size=(64, 48),
    )
    calls: list[Path] = []

    def fake_extract(video_path, *, progress: bool = True, max_people: int = 4) -> KeypointSequence:
        calls.append(Path(video_path))
        return seq

    monkeypatch.setattr(pe, "extract_keypoints", fake_extract)
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(3000))
    cache = tmp_path / "cache" / "clip.keypoints.npz"

    first = pe.load_or_extract(video, cache, progress=False)
    assert len(calls) == 1 and cache.is_file()
    assert read_extra(cache)["source_fingerprint"] == pe.video_fingerprint(video)
    mtime = cache.stat().st_mtime_ns

    second = pe.load_or_extract(video, cache, progress=False)
    assert len(calls) == 1, "the detector ran again although the cache is valid"
    assert cache.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first.keypoints, second.keypoints)
    assert second.image_size == (64, 48)

    # A copy of the same video (new mtime, same content) still hits the cache.
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(video, copy)
    pe.load_or_extract(copy, cache, progress=False)
    assert len(calls) == 1

    # Another video: extracted again, cache rewritten.
    video.write_bytes(os.urandom(3000))
    pe.load_or_extract(video, cache, progress=False)
    assert len(calls) == 2

    # A damaged cache is rebuilt, not an error.
    cache.write_bytes(b"garbage")
    pe.load_or_extract(video, cache, progress=False)
    assert len(calls) == 3 and load_keypoints(cache).num_frames == 4


def test_load_or_extract_real_clip_round_trip(example_video_dir: Path, tmp_path: Path, squats) -> None:
    """The cache written for a real clip loads back identical to the extraction."""
    video = tmp_path / "squats.mp4"
    shutil.copyfile(example_video_dir / SQUATS, video)
    cache = tmp_path / "squats.npz"
    from rhythmicnet.offline.keypoint_io import save_keypoints

    # Seed the cache the way load_or_extract writes it (saves a second detector run in the test).
    save_keypoints(
        cache,
        squats,
        extra={"source_fingerprint": pe.video_fingerprint(video), "extractor": pe.extractor_id()},
    )
    got = pe.load_or_extract(video, cache, progress=False)
    np.testing.assert_array_equal(got.keypoints, squats.keypoints)
    np.testing.assert_array_equal(got.times, squats.times)
    assert got.image_size == squats.image_size


def test_load_or_extract_missing_video(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        pe.load_or_extract(tmp_path / "nope.mp4", tmp_path / "c.npz", progress=False)
