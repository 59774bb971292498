"""The ``rhythmicnet rhythm`` command: outputs on real-shaped input, and every bad input as one line."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from rhythmicnet import cli
from rhythmicnet.cli import build_parser, main
from rhythmicnet.offline.keypoint_io import save_keypoints
from rhythmicnet.offline.synthetic_motion import SyntheticMotionConfig, synthesize
from rhythmicnet.offline.video2rhythm import Video2RhythmConfig


@pytest.fixture(scope="module")
def mover_file(tmp_path_factory):
    m = synthesize(SyntheticMotionConfig(duration_s=16, tempo_bpm=120, bounce_px=12, jerk_times=(4.1, 9.7), seed=11))
    path = tmp_path_factory.mktemp("kp") / "mover.npz"
    save_keypoints(path, m.sequence)
    return path, m


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("rhythmicnet: error: ")
    assert "Traceback" not in err
    return err


def test_help_explains_every_flag():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["rhythm"]
    for action in sub._actions:
        assert action.help, f"flag {action.option_strings or action.dest} has no help"
    out = subprocess.run([sys.executable, "-m", "rhythmicnet", "rhythm", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--output", "--beat-model", "--tempo-range", "--no-cache", "--quiet"):
        assert flag in out.stdout


def _cli_beat_model(argv: list[str]) -> str:
    """The beat model the ``rhythm`` command runs with for these arguments."""
    args = build_parser().parse_args(argv)
    return args.beat_model or cli._default_beat_model()


@pytest.mark.parametrize("weights_installed", [True, False])
def test_cli_default_beat_model_is_the_net_or_an_error(monkeypatch, tmp_path, weights_installed):
    from rhythmicnet.errors import WeightsError
    from rhythmicnet.offline import video2rhythm

    monkeypatch.setattr(video2rhythm, "has_beat_model", lambda name, weights_dir=None: weights_installed)
    expected = "net" if weights_installed else "onset"
    assert Video2RhythmConfig().beat_model == expected  # the library falls back; the command line does not
    assert Video2RhythmConfig(weights_dir=tmp_path).beat_model == expected
    if weights_installed:
        assert _cli_beat_model(["rhythm", "in.npz"]) == "net"
    else:  # --help says the default is the network: missing weights are an error, not a silent baseline
        with pytest.raises(WeightsError, match="--beat-model onset"):
            _cli_beat_model(["rhythm", "in.npz"])
    for explicit in ("net", "onset"):  # an explicit choice is kept either way
        assert _cli_beat_model(["rhythm", "in.npz", "--beat-model", explicit]) == explicit
        assert Video2RhythmConfig(beat_model=explicit).beat_model == explicit


def test_config_default_follows_its_weights_dir(tmp_path):
    assert Video2RhythmConfig(weights_dir=tmp_path).beat_model == "onset"  # no beat weights there


def test_rhythm_on_keypoint_file(mover_file, tmp_path, capsys):
    path, mover = mover_file
    assert main(["rhythm", str(path), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "BPM" in out and "time per stage" in out
    rec = json.loads((tmp_path / "out" / "rhythm.json").read_text())
    assert rec["beat_model"] == Video2RhythmConfig().beat_model  # the CLI's default is the config's
    for key in ("tempo_bpm", "beats", "style_times", "grid", "model_fps", "source_fps", "versions", "stage_seconds"):
        assert key in rec
    assert rec["tempo_bpm"] == pytest.approx(120, rel=0.03)
    beats = np.array(rec["beats"])
    # Decoded beats sit on the mover's landings (within two frames).
    err = [np.min(np.abs(mover.beat_times - b)) for b in beats]
    assert np.median(err) <= 2 / 30
    grid = rec["grid"]
    assert len(grid["step_times"]) == len(grid["onsets"])
    assert all(grid["onsets"][s] == 1 for s in grid["beat_steps"])
    png = (tmp_path / "out" / "rhythm.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert not list((tmp_path / "out").glob(".*part*")), "temporary files left behind"


def test_missing_file(tmp_path, capsys):
    assert main(["rhythm", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o")]) == 2
    err = _one_line_error(capsys)
    assert "nope.mp4" in err and "not found" in err
    assert not (tmp_path / "o").exists()


def test_not_a_video(tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    assert main(["rhythm", str(bad), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "notes.mp4" in _one_line_error(capsys)
    assert not (tmp_path / "o" / "rhythm.json").exists()


def test_zero_frame_video(tmp_path, capsys):
    empty = tmp_path / "empty.avi"
    w = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 64))
    w.release()
    assert main(["rhythm", str(empty), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "empty.avi" in _one_line_error(capsys)


def test_video_without_person(tmp_path, capsys):
    blank = tmp_path / "blank.avi"
    w = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for i in range(45):
        w.write(np.full((120, 160, 3), 40 + i, np.uint8))
    w.release()
    assert main(["rhythm", str(blank), "-o", str(tmp_path / "o"), "-q"]) == 2
    err = _one_line_error(capsys)
    assert "blank.avi" in err and "no person" in err
    assert not (tmp_path / "o" / "rhythm.json").exists()


def test_unwritable_output(mover_file, tmp_path, capsys):
    path, _ = mover_file
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["rhythm", str(path), "-o", str(blocker / "out")]) == 2
    err = _one_line_error(capsys)
    assert "a_file" in err
    assert main(["rhythm", str(path), "-o", str(blocker)]) == 2
    assert "not a folder" in _one_line_error(capsys)


def test_corrupt_keypoint_file(tmp_path, capsys):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["rhythm", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "broken.npz" in _one_line_error(capsys)


def test_console_script_prints_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rhythmicnet", "rhythm", str(tmp_path / "missing.mov")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == f"rhythmicnet: error: {tmp_path / 'missing.mov'}: file not found"


def test_rhythm_on_real_video_reuses_cached_keypoints(example_video_dir, tmp_path, capsys):
    video = example_video_dir / "tfjs_pose_squats" / "pose_squats.mp4"
    out = tmp_path / "squats"
    assert main(["rhythm", str(video), "-o", str(out), "-q"]) == 0
    rec = json.loads((out / "rhythm.json").read_text())
    assert rec["source_fps"] == pytest.approx(5.0, rel=0.01) and rec["model_fps"] == 30.0
    assert len(rec["beats"]) >= 4 and 60 <= rec["tempo_bpm"] <= 180
    cache = out / "pose_squats.keypoints.npz"
    assert cache.exists()
    first_mtime = cache.stat().st_mtime_ns
    first_pose_s = rec["stage_seconds"]["keypoints"]
    assert main(["rhythm", str(video), "-o", str(out), "-q"]) == 0
    rec2 = json.loads((out / "rhythm.json").read_text())
    assert cache.stat().st_mtime_ns == first_mtime
    assert rec2["stage_seconds"]["keypoints"] < 0.2 * first_pose_s
    assert rec2["beats"] == rec["beats"]
