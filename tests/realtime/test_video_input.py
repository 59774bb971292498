"""Video input of the live path: pose in its own process on real frames, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rhythmicnet.errors import InputError
from rhythmicnet.realtime.video_input import PoseProcess, VideoSource

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "offline" / "examples" / "jumping_jacks.mp4"


def test_pose_process_finds_the_dancer_on_real_frames_and_stops():
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while len(frames) < 12:
        ok, f = cap.read()
        assert ok
        frames.append(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA))
    cap.release()
    pose = PoseProcess()
    try:
        out = [pose.estimate(f, i / 30) for i, f in enumerate(frames)]
    finally:
        pose.close()
    assert not pose._proc.is_alive()
    assert len(pose.times_ms) == len(frames) and all(ms > 0 for ms in pose.times_ms)
    found = [conf.mean() > 0.5 for _, conf in out]
    # one performer in full view: found from the 4th frame on (mediapipe's VIDEO mode finds nobody in the
    # first three frames of this clip, measured, then the same person every frame)
    assert sum(found) >= 8 and all(found[-6:])
    kp, _ = out[-1]
    assert kp.shape == (17, 2) and kp.dtype == np.float32
    assert 0 < kp[:, 0].min() and kp[:, 0].max() < 640 and 0 < kp[:, 1].min() and kp[:, 1].max() < 360


def test_a_missing_or_unreadable_video_is_a_one_line_input_error(tmp_path: Path):
    with pytest.raises(InputError, match="file not found"):
        VideoSource(str(tmp_path / "missing.mp4"))
    bad = tmp_path / "notavideo.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(InputError, match="cannot be decoded"):
        VideoSource(str(bad))
