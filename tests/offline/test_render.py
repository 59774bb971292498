"""``rhythmicnet render`` end to end on the bundled real clip and on keypoint files.

The drums and beats use the shipped weights; the accompaniment a tiny untrained Drum2Music (the
pipeline and the files are under test here, not the music), unless noted.
"""

import json
import shutil
import subprocess
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from rhythmicnet.cli import main
from rhythmicnet.models.music_transformer import Drum2MusicConfig, Drum2MusicModel
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
from rhythmicnet.offline.keypoint_io import save_keypoints
from rhythmicnet.offline.render import RenderConfig, control_rhythm, render
from rhythmicnet.offline.synthetic_dancer import generate_clip

EXAMPLE = Path(__file__).resolve().parents[2] / "offline" / "examples" / "jumping_jacks.mp4"
TINY = Drum2MusicConfig(d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=1, d_ff=64, mem_len=32,
                        max_bar_len=32, max_drum_len=48, dropout=0.0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    for f in WEIGHTS_DIR.iterdir():
        if f.name.startswith(("beat_full", "rhythm2drum", "hits_vocabulary")):
            shutil.copy(f, d / f.name)
    torch.manual_seed(0)
    torch.save(Drum2MusicModel(TINY).state_dict(), d / "drum2music.pt")
    (d / "drum2music.json").write_text(json.dumps({"config": TINY.to_dict(), "version": 0}))
    return d


@pytest.fixture(scope="module")
def example_render(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    result = render(EXAMPLE, out, RenderConfig(weights_dir=str(weights)), progress=False)
    return out, result


def _ffprobe(path):
    res = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                          str(path)], capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def _midi_note_times(path, channel=None):
    t, out = 0.0, []
    for msg in mido.MidiFile(path):
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0 and (channel is None or msg.channel == channel):
            out.append(t)
    return np.array(out)


def test_render_writes_every_output(example_render):
    out, result = example_render
    r = result.record
    for key in ("tempo_bpm", "beats", "style_events", "outputs", "stage_seconds", "weights"):
        assert key in r
    names = set(r["outputs"].values())
    assert {"drums.mid", "piano.mid", "soundtrack.mid", "soundtrack.wav", "drums.wav", "piano.wav",
            "jumping_jacks_scored.mp4", "rhythm.png", "report.json"} <= names
    assert json.loads((out / "report.json").read_text())["settings"]["seed"] == 0
    # no temp files left behind
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    assert set(r["stage_seconds"]) >= {"keypoints", "rhythm", "drums", "accompaniment", "synthesis", "video"}


def test_midi_beats_line_up_with_the_decoded_beats(example_render):
    out, result = example_render
    mid = mido.MidiFile(out / "soundtrack.mid")
    assert len(mid.tracks) == 3  # tempo map, drums, piano
    drum_on = _midi_note_times(out / "drums.mid", channel=9)
    beats = np.array(result.record["beats"])
    near = [np.min(np.abs(drum_on - b)) <= 0.020 for b in beats if b < result.record["duration_s"]]
    assert np.mean(near) >= 0.8
    programs = [m.program for m in mido.MidiFile(out / "piano.mid").tracks[1] if m.type == "program_change"]
    assert programs == [0]


def test_wav_is_48k_non_silent_and_never_clips(example_render):
    out, result = example_render
    with wave.open(str(out / "soundtrack.wav")) as w:
        assert w.getframerate() == 48000 and w.getnchannels() == 2 and w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        assert w.getnframes() / 48000 == pytest.approx(result.record["duration_s"], abs=0.05)
    assert np.abs(x).max() < 32767 and np.sqrt(np.mean(x.astype(float) ** 2)) > 100
    assert np.abs(x[-200:]).max() < 2000  # faded out


def test_scored_video_has_h264_and_aac_of_matching_length(example_render):
    out, _ = example_render
    info = _ffprobe(out / "jumping_jacks_scored.mp4")
    kinds = sorted((s["codec_type"], s["codec_name"]) for s in info["streams"])
    assert kinds == [("audio", "aac"), ("video", "h264")]
    v = next(s for s in info["streams"] if s["codec_type"] == "video")
    a = next(s for s in info["streams"] if s["codec_type"] == "audio")
    num, den = (int(x) for x in v["avg_frame_rate"].split("/"))
    assert abs(float(a["duration"]) - float(v["duration"])) <= den / num + 1e-3


def test_rerun_reuses_cached_keypoints_and_gives_the_same_midi(example_render, weights):
    out, first = example_render
    before = (out / "soundtrack.mid").read_bytes()
    second = render(EXAMPLE, out, RenderConfig(weights_dir=str(weights)), progress=False)
    assert second.record["stage_seconds"]["keypoints"] < 0.5 * max(first.record["stage_seconds"]["keypoints"], 1.0)
    assert (out / "soundtrack.mid").read_bytes() == before


def test_rhythm_controls():
    real = np.zeros(64, bool)
    real[::4] = True
    rnd = control_rhythm(real, "random", 3)
    assert 0.3 < rnd.mean() < 0.7 and not np.array_equal(rnd, real)
    shuf = control_rhythm(real, "shuffle", 3)
    assert shuf.sum() == real.sum() and not np.array_equal(shuf, real)
    assert np.array_equal(control_rhythm(real, "shuffle", 3), shuf)
    assert np.array_equal(control_rhythm(real, "real", 3), real)


@pytest.fixture(scope="module")
def dancer_keypoints(tmp_path_factory):
    import dataclasses

    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(8.0, 8.0), tempo_bpm=(110.0, 110.0))
    path = tmp_path_factory.mktemp("kp") / "dancer.npz"
    save_keypoints(path, generate_clip(cfg, 11).sequence)
    return path


@pytest.mark.parametrize("mode", ["random", "shuffle"])
def test_render_keypoints_with_a_control_rhythm(dancer_keypoints, weights, tmp_path, mode):
    rc = main(["render", str(dancer_keypoints), "-o", str(tmp_path), "--rhythm", mode, "--instrument", "guitar",
               "--weights", str(weights), "-q"])
    assert rc == 0
    rec = json.loads((tmp_path / "report.json").read_text())
    assert rec["settings"]["rhythm"] == mode and rec["input_kind"] == "keypoints"
    info = _ffprobe(tmp_path / "dancer_scored.mp4")
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    assert (tmp_path / "guitar.mid").is_file() and (tmp_path / "guitar.wav").is_file()


def test_bad_inputs_give_one_line_errors(weights, tmp_path, capsys, dancer_keypoints):
    from rhythmicnet.models.keypoints import KeypointSequence
    from rhythmicnet.offline.keypoint_io import load_keypoints

    assert main(["render", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o")]) == 2
    assert "nope.mp4" in capsys.readouterr().err
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    assert main(["render", str(bad), "-o", str(tmp_path / "o"), "--weights", str(weights)]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    seq = load_keypoints(dancer_keypoints)
    empty = tmp_path / "empty.npz"
    save_keypoints(empty, KeypointSequence(seq.keypoints, np.zeros_like(seq.confidence), seq.times, seq.image_size))
    assert main(["render", str(empty), "-o", str(tmp_path / "o"), "--weights", str(weights)]) == 2
    assert "no person" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.write_text("a file, not a folder")
    assert main(["render", str(dancer_keypoints), "-o", str(locked / "sub"), "--weights", str(weights)]) == 2
    assert "locked" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt"
    shutil.copytree(weights, corrupt)
    (corrupt / "rhythm2drum_hits.pt").write_bytes(b"garbage")
    assert main(["render", str(dancer_keypoints), "-o", str(tmp_path / "o2"), "--weights", str(corrupt)]) == 2
    assert "rhythm2drum_hits.pt" in capsys.readouterr().err
    (corrupt / "drum2music.pt").unlink()
    (corrupt / "rhythm2drum_hits.pt").write_bytes((weights / "rhythm2drum_hits.pt").read_bytes())
    assert main(["render", str(dancer_keypoints), "-o", str(tmp_path / "o3"), "--weights", str(corrupt)]) == 2
    assert "drum2music" in capsys.readouterr().err


def test_tempo_override_pins_the_beat_tracker(dancer_keypoints, weights, tmp_path):
    rc = main(["render", str(dancer_keypoints), "-o", str(tmp_path), "--tempo", "80", "--instrument", "none",
               "--weights", str(weights), "-q"])
    assert rc == 0
    rec = json.loads((tmp_path / "report.json").read_text())
    assert rec["settings"]["tempo"] == 80.0 and rec["settings"]["tempo_range_used"] == [78.4, 81.6]
    assert 78.0 <= rec["tempo_bpm"] <= 82.0
    assert not (tmp_path / "piano.mid").exists() and (tmp_path / "drums.wav").is_file()
