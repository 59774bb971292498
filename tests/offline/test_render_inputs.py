"""Issue 17: ``render`` on a truncated video, on absurd keypoint coordinates, its skeleton temp file and
an emoji file name (tiny real runs with the shipped weights, drums only)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np

from rhythmicnet.cli import main
from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
from rhythmicnet.offline.keypoint_io import save_keypoints
from rhythmicnet.offline.synthetic_dancer import generate_clip

EXAMPLE = Path(__file__).resolve().parents[2] / "offline" / "examples" / "jumping_jacks.mp4"


def _error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("rhythmicnet: onnx:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_truncated_video_is_refused_not_rendered_with_two_lengths(tmp_path, capsys):
    cut = tmp_path / "cut.mp4"
    data = EXAMPLE.read_bytes()
    cut.write_bytes(data[: int(0.3 * len(data))])  # 60 of its 230 frames decode
    out = tmp_path / "out"
    assert main(["render", str(cut), "-o", str(out), "--instrument", "none", "-q"]) == 2
    err = _error_line(capsys.readouterr().err)
    assert err.startswith("rhythmicnet: error: ") and "cut.mp4" in err and "truncated" in err
    assert "7.67 s" in err and "2.00 s" in err
    assert not (out / "report.json").exists() and not (out / "cut_scored.mp4").exists()
    assert not list(out.glob("*.wav")) and not list(out.glob("*.mid"))


def test_keypoints_with_absurd_coordinates_and_an_emoji_name_render(tmp_path, capsys, monkeypatch):
    from rhythmicnet.offline import video_mux

    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(8.0, 8.0), tempo_bpm=(110.0, 110.0))
    seq = generate_clip(cfg, 11).sequence
    kp = seq.keypoints.copy()
    kp[::7, 9] = 1e30  # a wrist now and then: finite, absurd
    path = save_keypoints(tmp_path / "dancer \N{MELTING FACE}.npz",
                          KeypointSequence(kp, seq.confidence, seq.times, seq.image_size))
    skeletons: list[Path] = []
    real = video_mux.skeleton_video

    def spy(*args, **kwargs):
        skeletons.append(Path(args[4]))
        return real(*args, **kwargs)

    monkeypatch.setattr(video_mux, "skeleton_video", spy)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        rc = main(["render", str(path), "-o", str(out), "--instrument", "none", "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "Glyph" not in err and not [w for w in caught if "Glyph" in str(w.message)]
    rec = json.loads((out / "report.json").read_text())
    assert rec["input_kind"] == "keypoints" and (out / "dancer \N{MELTING FACE}_scored.mp4").is_file()
    # the skeleton's temp name is unique (not <stem>_skeleton.tmp.mp4) and gone afterwards
    assert len(skeletons) == 1 and skeletons[0].parent == out
    assert skeletons[0].name != "dancer \N{MELTING FACE}_skeleton.tmp.mp4" and ".part" in skeletons[0].name
    assert not skeletons[0].exists() and not [p for p in out.iterdir() if ".part" in p.name or ".tmp" in p.name]
    assert np.isfinite(rec["tempo_bpm"])


def test_rhythm_refuses_a_truncated_video_too(tmp_path, capsys):
    cut = tmp_path / "cut.mp4"
    data = EXAMPLE.read_bytes()
    cut.write_bytes(data[: int(0.3 * len(data))])
    out = tmp_path / "out"
    assert main(["rhythm", str(cut), "-o", str(out), "-q"]) == 2
    err = _error_line(capsys.readouterr().err)
    assert "cut.mp4" in err and "truncated" in err and "7.67 s" in err
    assert not (out / "rhythm.json").exists()
