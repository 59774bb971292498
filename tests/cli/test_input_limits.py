"""Issue 17 sections 2 and 3: implausible inputs and bad outputs fail up front with one line and status 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rhythmicnet.cli import main
from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.offline.keypoint_io import save_keypoints


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line (render first reports its ONNX provider on a line of its own)."""
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("rhythmicnet: onnx:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("rhythmicnet: error: ")
    assert "Traceback" not in err
    return lines[0]


def _mover(t: int = 230, fps: float = 30.0) -> KeypointSequence:
    rng = np.random.default_rng(0)
    kp = (300 + rng.normal(0, 20, size=(t, 17, 2))).astype(np.float32)
    return KeypointSequence(kp, np.ones((t, 17), np.float32), np.arange(t) / fps, (640, 480))


@pytest.mark.parametrize("command", ["rhythm", "render"])
def test_keypoint_times_spanning_days_are_refused_at_once(tmp_path: Path, capsys, command: str) -> None:
    seq = _mover()
    path = save_keypoints(tmp_path / "days.npz", KeypointSequence(seq.keypoints, seq.confidence, seq.times * 1e6,
                                                                   seq.image_size))
    assert main([command, str(path), "-o", str(tmp_path / "out")]) == 2
    err = _one_line_error(capsys)
    assert "days.npz" in err and "4 hours" in err


@pytest.mark.parametrize("command", ["rhythm", "render"])
def test_help_names_the_keypoint_limits(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "at most 4 hours long, at 1-240 fps" in out
