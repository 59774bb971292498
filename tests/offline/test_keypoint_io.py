"""Keypoint files: round trips (.npz, .json), schema checks and one-line errors for bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rhythmicnet.errors import InputError, OutputError
from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.offline.keypoint_io import is_keypoint_file, load_keypoints, read_extra, save_keypoints


def make_seq(t: int = 12, image_size: tuple[int, int] | None = (640, 480)) -> KeypointSequence:
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 600, size=(t, 17, 2)).astype(np.float32)
    conf = rng.uniform(0, 1, size=(t, 17)).astype(np.float32)
    conf[t // 2] = 0.0  # a frame without the person
    times = np.arange(t, dtype=np.float64) / 30.0
    return KeypointSequence(kp, conf, times, image_size)


def assert_same(a: KeypointSequence, b: KeypointSequence) -> None:
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    np.testing.assert_array_equal(a.times, b.times)
    assert a.image_size == b.image_size


def assert_one_line_naming(err: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg


@pytest.mark.parametrize("suffix", [".npz", ".json", ".NPZ"])
@pytest.mark.parametrize("image_size", [(640, 480), None])
def test_round_trip(tmp_path: Path, suffix: str, image_size: tuple[int, int] | None) -> None:
    seq = make_seq(image_size=image_size)
    path = save_keypoints(tmp_path / f"kp{suffix}", seq)
    back = load_keypoints(path)
    assert_same(seq, back)
    assert back.keypoints.dtype == np.float32
    assert back.confidence.dtype == np.float32
    assert back.times.dtype == np.float64
    assert sorted(os.listdir(tmp_path)) == [f"kp{suffix}"]  # no temporary files left


def test_npz_has_schema_dtypes(tmp_path: Path) -> None:
    path = save_keypoints(tmp_path / "kp.npz", make_seq())
    with np.load(path) as z:
        assert z["keypoints"].dtype == np.float32 and z["keypoints"].shape == (12, 17, 2)
        assert z["confidence"].dtype == np.float32 and z["confidence"].shape == (12, 17)
        assert z["times"].dtype == np.float64 and z["times"].shape == (12,)
        assert tuple(z["image_size"]) == (640, 480)


def test_json_written_by_others_is_accepted(tmp_path: Path) -> None:
    seq = make_seq(t=3)
    doc = {
        "keypoints": seq.keypoints.tolist(),
        "confidence": seq.confidence.tolist(),
        "times": seq.times.tolist(),
        "image_size": [640, 480],
        "comment": "from an OSC recorder",
    }
    path = tmp_path / "other.json"
    path.write_text(json.dumps(doc))
    back = load_keypoints(path)
    np.testing.assert_allclose(back.keypoints, seq.keypoints)
    assert back.image_size == (640, 480)


def test_extra_entries_are_kept_and_ignored(tmp_path: Path) -> None:
    for suffix in (".npz", ".json"):
        path = save_keypoints(tmp_path / f"kp{suffix}", make_seq(), extra={"source": "clip.mp4", "n": 3})
        assert read_extra(path) == {"source": "clip.mp4", "n": 3}
        assert load_keypoints(path).num_frames == 12
    with pytest.raises(ValueError):
        save_keypoints(tmp_path / "x.npz", make_seq(), extra={"times": 1})


def test_overwrite_is_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "kp.npz"
    save_keypoints(path, make_seq(t=5))
    save_keypoints(path, make_seq(t=7))
    assert load_keypoints(path).num_frames == 7


def test_is_keypoint_file() -> None:
    assert is_keypoint_file("a/b.npz") and is_keypoint_file("x.JSON")
    assert not is_keypoint_file("clip.mp4") and not is_keypoint_file("kp.npy") and not is_keypoint_file("npz")


def test_non_finite_keypoint_becomes_unseen(tmp_path: Path) -> None:
    seq = make_seq()
    kp = seq.keypoints.copy()
    kp[2, 5, 0] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, keypoints=kp, confidence=seq.confidence, times=seq.times)
    back = load_keypoints(path)
    assert back.confidence[2, 5] == 0.0 and np.all(back.keypoints[2, 5] == 0.0)
    assert back.confidence[2, 6] == seq.confidence[2, 6]


# --- writing errors ----------------------------------------------------------------------------


def test_save_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as err:
        save_keypoints(tmp_path / "kp.csv", make_seq())
    assert_one_line_naming(err, tmp_path / "kp.csv")
    target = tmp_path / "missing_folder" / "kp.npz"
    with pytest.raises(OutputError) as err:
        save_keypoints(target, make_seq())
    assert_one_line_naming(err, target)


# --- reading errors ----------------------------------------------------------------------------


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def bad_files(tmp: Path) -> dict[str, Path]:
    seq = make_seq()
    kp, conf, t = seq.keypoints, seq.confidence, seq.times
    files: dict[str, Path] = {}
    files["missing"] = tmp / "nope.npz"
    (tmp / "folder.npz").mkdir()
    files["folder"] = tmp / "folder.npz"
    (tmp / "kp.txt").write_text("hello")
    files["suffix"] = tmp / "kp.txt"
    (tmp / "text.npz").write_text("not a zip")
    files["text_npz"] = tmp / "text.npz"
    np.save(tmp / "single.npy", kp)
    (tmp / "single.npy").rename(tmp / "single.npz")
    files["npy_as_npz"] = tmp / "single.npz"
    good = _npz(tmp / "good.npz", keypoints=kp, confidence=conf, times=t)
    (tmp / "truncated.npz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["truncated"] = tmp / "truncated.npz"
    (tmp / "bad.json").write_text("{ not json")
    files["bad_json"] = tmp / "bad.json"
    (tmp / "list.json").write_text("[1, 2, 3]")
    files["json_list"] = tmp / "list.json"
    (tmp / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    files["binary_json"] = tmp / "binary.json"
    (tmp / "strings.json").write_text(json.dumps({"keypoints": "abc", "confidence": [], "times": []}))
    files["json_strings"] = tmp / "strings.json"
    files["missing_key"] = _npz(tmp / "nokey.npz", keypoints=kp, confidence=conf)
    files["kp_shape"] = _npz(tmp / "kp3.npz", keypoints=np.zeros((12, 17, 3)), confidence=conf, times=t)
    files["kp_joints"] = _npz(tmp / "kp33.npz", keypoints=np.zeros((12, 33, 2)), confidence=conf, times=t)
    files["conf_shape"] = _npz(tmp / "conf.npz", keypoints=kp, confidence=conf[:5], times=t)
    files["times_shape"] = _npz(tmp / "times.npz", keypoints=kp, confidence=conf, times=t[:-1])
    files["empty"] = _npz(tmp / "empty.npz", keypoints=kp[:0], confidence=conf[:0], times=t[:0])
    files["times_order"] = _npz(tmp / "order.npz", keypoints=kp, confidence=conf, times=t[::-1].copy())
    files["times_nan"] = _npz(tmp / "tnan.npz", keypoints=kp, confidence=conf, times=np.full_like(t, np.nan))
    files["conf_range"] = _npz(tmp / "crange.npz", keypoints=kp, confidence=conf * 100, times=t)
    files["conf_nan"] = _npz(tmp / "cnan.npz", keypoints=kp, confidence=conf * np.nan, times=t)
    files["image_size"] = _npz(tmp / "size.npz", keypoints=kp, confidence=conf, times=t, image_size=np.array([0, 4]))
    files["object_array"] = _npz(
        tmp / "obj.npz", keypoints=np.array([None] * 3, dtype=object), confidence=conf, times=t
    )
    return files


def test_bad_files_raise_one_line_input_error(tmp_path: Path) -> None:
    for name, path in bad_files(tmp_path).items():
        with pytest.raises(InputError) as err:
            load_keypoints(path)
        assert_one_line_naming(err, path)
        assert str(err.value).startswith(str(path)), name


def test_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_keypoints(tmp_path / "nope.json")


# --- limits (issue 17): implausible files fail on loading, not deep in the pipeline ---------------------


@pytest.mark.parametrize("scale", [1e6, 1e-3])
def test_times_in_the_wrong_unit_are_rejected(tmp_path: Path, scale: float) -> None:
    seq = make_seq(t=230)  # 7.6 s at 30 fps: x1e6 spans 88 days, x1e-3 runs at 30 000 fps
    path = save_keypoints(tmp_path / "kp.npz", KeypointSequence(seq.keypoints, seq.confidence, seq.times * scale,
                                                                 seq.image_size))
    with pytest.raises(InputError) as err:
        load_keypoints(path)
    assert_one_line_naming(err, path)
    assert ("hours" in str(err.value)) if scale > 1 else ("240 fps" in str(err.value))


def test_a_slow_but_short_file_is_rejected_by_its_frame_rate(tmp_path: Path) -> None:
    seq = make_seq(t=5)
    path = save_keypoints(tmp_path / "kp.json", KeypointSequence(seq.keypoints, seq.confidence, seq.times * 100,
                                                                  seq.image_size))  # 0.3 fps, 13 s
    with pytest.raises(InputError, match="1-240 fps"):
        load_keypoints(path)


def test_four_hours_at_one_fps_is_accepted(tmp_path: Path) -> None:
    from rhythmicnet.offline.keypoint_io import MAX_DURATION_S

    n = int(MAX_DURATION_S) + 1
    kp = np.full((n, 17, 2), 100.0, dtype=np.float32)
    seq = KeypointSequence(kp, np.ones((n, 17), np.float32), np.arange(n, dtype=np.float64), (640, 480))
    assert load_keypoints(save_keypoints(tmp_path / "kp.npz", seq)).num_frames == n


@pytest.mark.parametrize("image_size", [(640, 480), None])
def test_absurd_coordinates_become_unseen_joints(tmp_path: Path, image_size: tuple[int, int] | None) -> None:
    seq = make_seq(image_size=image_size)
    kp = seq.keypoints.copy()
    kp[3, 5] = (1e30, 10.0)
    kp[4, 6] = (-1e30, -1e30)
    kp[5, 7] = (200.0, 3e6)
    path = save_keypoints(tmp_path / "kp.npz", KeypointSequence(kp, seq.confidence, seq.times, image_size))
    back = load_keypoints(path)
    for f, j in ((3, 5), (4, 6), (5, 7)):
        assert back.confidence[f, j] == 0 and np.all(back.keypoints[f, j] == 0)
    keep = np.ones((12, 17), bool)
    keep[[3, 4, 5], [5, 6, 7]] = False
    np.testing.assert_array_equal(back.confidence[keep], seq.confidence[keep])  # the plausible joints stay
    np.testing.assert_array_equal(back.keypoints[keep], seq.keypoints[keep])
