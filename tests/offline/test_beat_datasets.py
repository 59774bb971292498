"""The real-data readers on tiny fixtures written in the AIST++ and keypoints-folder layouts."""

import pickle

import numpy as np
import pytest

from rhythmicnet.errors import InputError
from rhythmicnet.offline.beat_datasets import (
    beat_phase_from_motion,
    parse_aist_name,
    read_aist,
    read_keypoints_dir,
    split_of,
)
from rhythmicnet.offline.keypoint_io import save_keypoints
from rhythmicnet.offline.synthetic_motion import SyntheticMotionConfig, synthesize


def _mover(bpm, seconds=12.0, fps=60.0, first_beat=0.3, seed=0):
    return synthesize(SyntheticMotionConfig(duration_s=seconds, fps=fps, tempo_bpm=bpm, bounce_px=14,
                                            first_beat_s=first_beat, seed=seed))


@pytest.fixture
def aist_dir(tmp_path):
    (tmp_path / "keypoints2d").mkdir()
    m = _mover(120, first_beat=0.3)
    kp = np.concatenate([m.sequence.keypoints, m.sequence.confidence[..., None]], axis=-1)
    views = np.stack([kp, kp + np.array([5.0, 0.0, 0.0], np.float32)])  # two camera views
    with (tmp_path / "keypoints2d" / "gBR_sBM_cAll_d04_mBR4_ch01.pkl").open("wb") as f:
        pickle.dump({"keypoints2d": views, "det_scores": np.ones(views.shape[:2])}, f)
    (tmp_path / "tempo.csv").write_text("music_id,genre,bpm\nmBR4,Break,120\n")
    return tmp_path, m


def test_aist_reader_gives_one_clip_per_view_with_tempo_grid(aist_dir):
    root, mover = aist_dir
    clips = list(read_aist(root, root / "tempo.csv"))
    assert len(clips) == 2 and clips[0].group == "d04"
    c = clips[0]
    assert c.sequence.fps == pytest.approx(60.0)
    np.testing.assert_allclose(np.diff(c.beats), 0.5)
    # The phase from the movement lands on the mover's beats (within two 30 fps frames).
    assert np.min(np.abs(mover.beat_times[:, None] - c.beats[None, :]), axis=1).max() <= 2 / 30
    np.testing.assert_allclose(c.downbeats, c.beats[::4])


def test_aist_errors(tmp_path):
    with pytest.raises(InputError, match="keypoints2d"):
        list(read_aist(tmp_path, tmp_path / "t.csv"))
    with pytest.raises(InputError, match="AIST"):
        parse_aist_name("dance_01")
    assert parse_aist_name("gHO_sFM_c01_d20_mHO5_ch13")["music"] == "mHO5"


def test_keypoints_dir_reader(tmp_path):
    m = _mover(100, fps=30.0)
    save_keypoints(tmp_path / "a.npz", m.sequence)
    save_keypoints(tmp_path / "b.json", m.sequence)
    rows = ["file,time,downbeat"] + [f"a.npz,{t:.4f},{int(i % 4 == 0)}" for i, t in enumerate(m.beat_times)]
    rows += [f"b.json,{t:.4f},0" for t in m.beat_times[:5]]
    (tmp_path / "beats.csv").write_text("\n".join(rows) + "\n")
    clips = {c.name: c for c in read_keypoints_dir(tmp_path)}
    assert set(clips) == {"a", "b"}
    np.testing.assert_allclose(clips["a"].beats, m.beat_times, atol=1e-4)
    np.testing.assert_allclose(clips["a"].downbeats, m.beat_times[::4], atol=1e-4)
    assert len(clips["b"].beats) == 5 and len(clips["b"].downbeats) == 0
    (tmp_path / "beats.csv").write_text("name,when\nx,1\n")
    with pytest.raises(InputError, match="beats.csv"):
        list(read_keypoints_dir(tmp_path))


def test_splits_are_stable_and_by_group():
    assert split_of("d04") == split_of("d04")
    counts = {s: 0 for s in ("train", "validation", "test")}
    for i in range(1000):
        counts[split_of(f"clip{i}")] += 1
    assert 720 < counts["train"] < 880 and counts["validation"] > 50 and counts["test"] > 50


def test_motion_phase_estimate():
    m = _mover(90, fps=30.0, first_beat=0.41)
    phase = beat_phase_from_motion(m.sequence, 60 / 90)
    assert abs(phase - 0.41) <= 2 / 30
