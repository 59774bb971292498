"""Issue 17 section 3: SIGTERM and SIGINT end every child process (ffmpeg) with the program, leave no
temporary file, and print one line (status 143 / 130)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
from rhythmicnet.offline.keypoint_io import save_keypoints
from rhythmicnet.offline.synthetic_dancer import generate_clip

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir() or sys.platform != "linux",
                                reason="reads child processes from /proc")


@pytest.fixture(scope="module")
def dancer(tmp_path_factory) -> Path:
    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(8.0, 8.0), tempo_bpm=(110.0, 110.0))
    path = tmp_path_factory.mktemp("kp") / "dancer.npz"
    save_keypoints(path, generate_clip(cfg, 11).sequence)
    return path


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal_during_the_skeleton_video(dancer: Path, out: Path, sig: int) -> tuple[int, str, int]:
    """Run ``render`` on a keypoint file, send ``sig`` once ffmpeg encodes the skeleton video."""
    proc = subprocess.Popen([sys.executable, "-m", "rhythmicnet", "render", str(dancer), "-o", str(out),
                             "--instrument", "none", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ffmpeg = None
    try:
        deadline = time.monotonic() + 180
        while ffmpeg is None and proc.poll() is None and time.monotonic() < deadline:
            for c in _children(proc.pid):
                cmd = _cmdline(c)
                if cmd and Path(cmd[0]).name == "ffmpeg" and "rawvideo" in cmd:
                    ffmpeg = c
                    break
            time.sleep(0.003)
        assert ffmpeg is not None, "render never started ffmpeg on the skeleton video"
        time.sleep(0.1)  # ffmpeg is writing its temporary MP4 now
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err, ffmpeg


@pytest.mark.parametrize("sig, status, word", [
    (signal.SIGTERM, 143, "terminated"),
    pytest.param(signal.SIGINT, 130, "interrupted", marks=pytest.mark.slow),
])
def test_a_signal_during_the_video_step_ends_ffmpeg_and_leaves_no_temp_file(dancer, tmp_path, sig, status, word):
    out = tmp_path / "out"
    rc, err, ffmpeg = _signal_during_the_skeleton_video(dancer, out, sig)
    alive = _alive(ffmpeg)
    if alive:  # do not leave it behind ourselves
        os.kill(ffmpeg, signal.SIGKILL)
    assert not alive, "ffmpeg outlived rhythmicnet"
    assert rc == status, err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("rhythmicnet: onnx:")]
    assert lines == [f"rhythmicnet: {word}"], err
    time.sleep(0.5)  # an orphaned ffmpeg (the old behaviour) would still be finishing its file
    leftovers = [p.name for p in out.iterdir() if ".part" in p.name or ".tmp" in p.name]
    assert leftovers == []
    assert not (out / "report.json").exists() and not (out / "dancer_scored.mp4").exists()
