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


def _drum_midi(path: Path, midi_type: int = 1) -> Path:
    import mido

    mid = mido.MidiFile(type=midi_type)
    for _ in range(2 if midi_type == 2 else 1):
        track = mido.MidiTrack()
        for _ in range(32):
            track.append(mido.Message("note_on", channel=9, note=36, velocity=100, time=240))
            track.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=0))
        mid.tracks.append(track)
    mid.save(path)
    return path


def test_music_checks_its_output_before_any_work(tmp_path: Path, capsys) -> None:
    drums = _drum_midi(tmp_path / "drums.mid")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    folder = tmp_path / "existing"
    folder.mkdir()
    # the output is checked before the weights (and the minutes of generation after them)
    assert main(["music", str(drums), "-o", str(folder), "--weights", str(no_weights), "-q"]) == 2
    assert "existing: is a folder" in _one_line_error(capsys)
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    assert main(["music", str(drums), "-o", str(blocked / "sub" / "out.mid"), "--weights", str(no_weights)]) == 2
    assert "a_file" in _one_line_error(capsys)
    # a missing folder is created up front; then the weights error comes, before generation
    assert main(["music", str(drums), "-o", str(tmp_path / "new" / "out.mid"), "--weights", str(no_weights)]) == 2
    assert "no Drum2Music weights" in _one_line_error(capsys) and (tmp_path / "new").is_dir()
    # a missing input: nothing is created
    assert main(["music", str(tmp_path / "nope.mid"), "-o", str(tmp_path / "other" / "o.mid")]) == 2
    assert "nope.mid" in _one_line_error(capsys) and not (tmp_path / "other").exists()


def test_atomic_write_onto_a_folder_is_an_output_error(tmp_path: Path) -> None:
    from rhythmicnet.errors import OutputError
    from rhythmicnet.fileio import write_text_atomic

    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputError, match="dir: cannot write"):
        write_text_atomic(tmp_path / "dir", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["dir"]  # no temp file left


def test_format_2_midi_is_refused(tmp_path: Path, capsys) -> None:
    drums = _drum_midi(tmp_path / "patterns.mid", midi_type=2)
    assert main(["music", str(drums), "-o", str(tmp_path / "out.mid"), "--weights", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert "patterns.mid" in err and "format-2" in err


def test_truncated_midi_error_says_so(tmp_path: Path, capsys) -> None:
    data = _drum_midi(tmp_path / "whole.mid").read_bytes()
    cut = tmp_path / "cut.mid"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["music", str(cut), "-o", str(tmp_path / "out.mid"), "--weights", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert "cut.mid" in err and "truncated" in err and "()" not in err


@pytest.mark.parametrize("argv", [["eval", "beat", "--rows", "onset"], ["eval", "drums"],
                                  ["eval", "music", "--no-ablation"]])
def test_eval_checks_its_json_path_before_evaluating(tmp_path: Path, capsys, monkeypatch, argv) -> None:
    from rhythmicnet.offline import eval_beat, eval_drums, eval_music

    def never(*args, **kwargs):
        raise AssertionError("evaluation started before the output was checked")

    for mod, name in ((eval_beat, "evaluate_rows"), (eval_drums, "evaluate_drums"), (eval_music, "evaluate_music")):
        monkeypatch.setattr(mod, name, never)
    (tmp_path / "table").mkdir()
    assert main([*argv, "--json", str(tmp_path / "table"), "-q"]) == 2
    assert "table: is a folder" in _one_line_error(capsys)


@pytest.mark.parametrize("command", ["rhythm", "render"])
def test_missing_beat_weights_are_an_error_unless_onset_is_asked_for(tmp_path: Path, capsys, monkeypatch,
                                                                      command: str) -> None:
    from rhythmicnet.models import weights as weights_mod

    path = save_keypoints(tmp_path / "mover.npz", _mover())
    empty = tmp_path / "no_weights"
    empty.mkdir()
    monkeypatch.setattr(weights_mod, "WEIGHTS_DIR", empty)  # the installed weights, for rhythm
    extra = ["--weights", str(empty)] if command == "render" else []
    assert main([command, str(path), "-o", str(tmp_path / "out"), *extra]) == 2
    err = _one_line_error(capsys)
    assert "beat_full" in err and "--beat-model onset" in err
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.parametrize("flag", ["--preview", "--keypoints"])
def test_synth_dance_refuses_a_folder_as_its_output_before_generating(tmp_path: Path, capsys, monkeypatch,
                                                                      flag: str) -> None:
    from rhythmicnet.offline import synthetic_dancer

    def never(*args, **kwargs):
        raise AssertionError("generated before the output was checked")

    monkeypatch.setattr(synthetic_dancer, "generate_clip", never)
    (tmp_path / "clip.npz").mkdir()
    assert main(["synth-dance", flag, str(tmp_path / "clip.npz")]) == 2
    assert "clip.npz: is a folder" in _one_line_error(capsys)
