"""A tiny real Drum2Music training run (a few steps on two real files) and the music command on it."""

import dataclasses
import json
from pathlib import Path

import mido
import pytest

from rhythmicnet.cli import main
from rhythmicnet.errors import WeightsError
from rhythmicnet.offline import music_dataset as md
from rhythmicnet.offline.train_music import MusicData, MusicTrainConfig, batch_tensors, train_music

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GROOVE_FILE = SHARED / "groove_midi" / "groove" / "drummer1" / "session1" / "102_funk_95_beat_4-4.mid"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    try:
        root = md.find_multitrack_root()
    except Exception:  # noqa: BLE001
        pytest.skip("../shared/data/multitrack_midi is not there")
    out = tmp_path_factory.mktemp("music")
    # One small freedoom file (BSD-3) with both a piano and a guitar part; 8 bars of each are plenty.
    parts = {i: md.parse_multitrack_file(root / "freedoom/d_e4m9.mid", i, licence="BSD-3-Clause", split="train")[0]
             for i in ("piano", "guitar")}
    piano, guitar = (md.segments(parts[i], length=8, hop=8)[1] for i in ("piano", "guitar"))
    data = MusicData(train=[piano, guitar], pop909=[], validation=[piano])
    cfg = MusicTrainConfig(d_model=32, d_ff=64, batch_size=2, segment_bars=4, steps=3, val_every=2,
                           use_pop909=False, max_bar_len=48, max_drum_len=48, threads=1, warmup_steps=1)
    manifest = train_music(out, config=cfg, progress=False, data=data)
    return out, manifest, data


def test_tiny_training_run_writes_weights_manifest_and_checkpoint(tiny_run):
    out, manifest, _ = tiny_run
    assert (out / "drum2music.pt").is_file() and (out / "drum2music.ckpt").is_file()
    saved = json.loads((out / "drum2music.json").read_text())
    assert saved["training"]["steps_run"] == 3 and saved["parameters"] == manifest["parameters"] > 0
    assert saved["config"]["n_decoder_layers"] == 8 and saved["config"]["n_encoder_layers"] == 4
    assert saved["config"]["n_heads"] == 8 and saved["config"]["mem_len"] == 256
    assert saved["programs"]["piano"] == 0 and 24 <= saved["programs"]["guitar"] <= 31
    assert [h["step"] for h in saved["history"]] == [2, 3]
    assert all(h["val_nll"] > 0 for h in saved["history"])


def test_training_resumes_from_the_checkpoint(tiny_run, tmp_path):
    out, _, data = tiny_run
    cfg = MusicTrainConfig(d_model=32, d_ff=64, batch_size=2, segment_bars=4, steps=4, val_every=2,
                           use_pop909=False, max_bar_len=48, max_drum_len=48, threads=1, warmup_steps=1)
    ckpt = tmp_path / "copy.ckpt"
    ckpt.write_bytes((out / "drum2music.ckpt").read_bytes())  # leave the module's run as it is
    m = train_music(tmp_path, config=cfg, checkpoint=ckpt, resume=True, progress=False, data=data)
    assert m["training"]["steps_run"] == 4 and [h["step"] for h in m["history"]] == [2, 3, 4]


def test_batches_pad_bars_to_the_longest_in_the_batch(tiny_run):
    _, _, data = tiny_run
    cfg = MusicTrainConfig(max_bar_len=48, max_drum_len=48).model_config()
    b = batch_tensors(data.train[:2], cfg, 3)
    assert b["drums"].shape[:2] == (2, 3) and b["inst"].shape[:2] == (2, 3)
    assert b["inst"].shape[2] <= 48 and b["instrument"].tolist() == [0, 1]


def test_music_command_on_a_groove_file(tiny_run, tmp_path, capsys):
    if not GROOVE_FILE.is_file():
        pytest.skip("Groove MIDI file not there")
    out, _, _ = tiny_run
    target = tmp_path / "funk_piano.mid"
    rc = main(["music", str(GROOVE_FILE), "-o", str(target), "--instrument", "guitar", "--weights", str(out),
               "--seed", "1", "-q"])
    assert rc == 0
    mid = mido.MidiFile(target)
    assert len(mid.tracks) == 2
    programs = [m.program for m in mid.tracks[1] if m.type == "program_change"]
    assert programs == [json.loads((out / "drum2music.json").read_text())["programs"]["guitar"]]
    drums = [m for m in mid.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert drums and all(m.channel == 9 for m in drums)
    # The same seed writes the same file.
    again = tmp_path / "again.mid"
    assert main(["music", str(GROOVE_FILE), "-o", str(again), "--instrument", "guitar", "--weights", str(out),
                 "--seed", "1", "-q"]) == 0
    assert again.read_bytes() == target.read_bytes()
    # --top-k 0 samples from the whole distribution: another part from the same seed
    untruncated = tmp_path / "untruncated.mid"
    assert main(["music", str(GROOVE_FILE), "-o", str(untruncated), "--instrument", "guitar", "--weights", str(out),
                 "--seed", "1", "--top-k", "0", "--temperature", "1.0", "-q"]) == 0
    assert mido.MidiFile(untruncated).tracks[0] and untruncated.read_bytes() != target.read_bytes()


def test_music_command_errors_are_one_line(tiny_run, tmp_path, capsys):
    out, _, _ = tiny_run
    assert main(["music", str(tmp_path / "missing.mid"), "-o", str(tmp_path / "x.mid"), "--weights", str(out)]) == 2
    assert "missing.mid" in capsys.readouterr().err
    assert main(["music", str(GROOVE_FILE), "-o", str(tmp_path / "x.mid"), "--weights", str(tmp_path)]) == 2
    assert "no Drum2Music weights" in capsys.readouterr().err
    for flags in (["--temperature", "0"], ["--top-k", "-1"]):
        assert main(["music", str(GROOVE_FILE), "-o", str(tmp_path / "x.mid"), "--weights", str(out), *flags]) == 2
        assert "--temperature must be > 0 and --top-k >= 0" in capsys.readouterr().err


def test_export_from_a_checkpoint_gives_loadable_weights(tiny_run, tmp_path, monkeypatch):
    from rhythmicnet.models.drum2music import Drum2Music
    from rhythmicnet.offline import train_music

    out, _, data = tiny_run
    monkeypatch.setattr(train_music, "load_data", lambda config: data)
    m = train_music.export_checkpoint(out / "drum2music.ckpt", tmp_path, note="interim")
    assert m["note"] == "interim" and m["training"]["steps_run"] == 3
    d2m = Drum2Music.load(tmp_path, "piano")
    assert d2m.model.config.d_model == 32
    # the last step's weights instead of the best: those of the checkpoint's model
    import torch

    from rhythmicnet.offline.training import load_checkpoint
    state = load_checkpoint(out / "drum2music.ckpt")
    state["extra"]["best_state"] = {k: torch.zeros_like(v) for k, v in state["model"].items()}  # tell them apart
    torch.save(state, tmp_path / "marked.ckpt")
    for last, expected in ((True, state["model"]), (False, state["extra"]["best_state"])):
        m = train_music.export_checkpoint(tmp_path / "marked.ckpt", tmp_path / str(last), last=last)
        assert m["training"]["weights_from"] == ("last step" if last else "best validation NLL")
        saved = torch.load(tmp_path / str(last) / "drum2music.pt")
        for k, v in expected.items():
            assert torch.equal(saved[k], v.half() if v.is_floating_point() else v), k


def _song(notes_per_bar):
    import numpy as np

    from rhythmicnet.models.remi import BarNote
    n = len(notes_per_bar)
    return md.SongBars("s", "test", "MIT", "train", "piano", 0, np.full(n, 120.0), None, None,
                       [[BarNote(0, 60, 80, 4)] * k for k in notes_per_bar])


def test_plays_enough_keeps_rests_inside_a_part_and_drops_tacets():
    from rhythmicnet.offline.train_music import plays_enough
    assert plays_enough(_song([1, 0, 1, 0]), 0.5, True)  # half the bars rest: a part with rests
    assert not plays_enough(_song([1, 0, 0, 0]), 0.5, True)  # mostly tacet
    assert not plays_enough(_song([0, 1, 1, 1]), 0.5, True)  # the first bar rests
    assert plays_enough(_song([0, 1, 1, 1]), 0.5, False)
    assert plays_enough(_song([0, 0, 0, 0]), 0.0, False) and not plays_enough(_song([]), 0.0, False)


def test_resuming_under_another_segment_rule_starts_the_best_weights_anew(tiny_run, tmp_path):
    import torch

    from rhythmicnet.offline.training import load_checkpoint
    out, _, data = tiny_run
    cfg = MusicTrainConfig(d_model=32, d_ff=64, batch_size=2, segment_bars=4, steps=4, val_every=2,
                           use_pop909=False, max_bar_len=48, max_drum_len=48, threads=1, warmup_steps=1)
    ckpt = tmp_path / "copy.ckpt"
    state = load_checkpoint(out / "drum2music.ckpt")
    state["extra"]["segment_rule"] = {"min_playing_fraction": 0.0, "first_bar_plays": False}  # an older run
    state["extra"]["best_nll"] = 0.001  # unbeatable: kept, the new run's weights would never be exported
    torch.save(state, ckpt)
    m = train_music(tmp_path, config=dataclasses.replace(cfg, min_playing_fraction=0.25), checkpoint=ckpt,
                    resume=True, progress=False, data=data)
    assert m["validation_nll"] > 0.001 and m["training"]["segment_rule_since"] == 3
    assert load_checkpoint(ckpt)["extra"]["segment_rule"] == {"min_playing_fraction": 0.25, "first_bar_plays": True}


@pytest.fixture
def config_of(monkeypatch, tmp_path):
    """``config_of(*flags)``: the MusicTrainConfig that ``rhythmicnet train music`` builds from the flags."""
    import rhythmicnet.offline.train_music as tm
    seen = {}

    def fake_train(out, *, config, **kwargs):
        seen["config"] = config
        return {"training": {"steps_run": 0, "tokens_seen": 0, "seconds": 0.0, "device": "cpu"}, "parameters": 1,
                "validation_nll": 0.0}

    monkeypatch.setattr(tm, "train_music", fake_train)

    def run(*flags):
        assert main(["train", "music", "-o", str(tmp_path), *flags, "-q"]) == 0
        return seen["config"]
    return run


def test_train_music_flags_set_the_segment_rule(config_of):
    from rhythmicnet.offline.train_music import segment_rule
    assert segment_rule(config_of("--min-playing", "0.25", "--first-bar-may-rest")) == {
        "min_playing_fraction": 0.25, "first_bar_plays": False}
    assert segment_rule(config_of()) == {"min_playing_fraction": 0.5, "first_bar_plays": True}


def test_train_music_flags_set_the_pop909_mix(config_of):
    from rhythmicnet.offline.train_music import pop909_mix
    assert pop909_mix(config_of("--pop909-drums", "--pop909-share", "0.4")) == {
        "pop909_drums": True, "pop909_fine_share": 0.4}
    assert pop909_mix(config_of("--no-pop909", "--pop909-drums")) == {"pop909_drums": False, "pop909_fine_share": 0.0}


def test_eval_music_with_an_empty_ablation_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["eval", "music", "--ablation", str(tmp_path), "--instrument", "piano", "-q"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "no drum2music" in err and "Traceback" not in err


def test_fine_tuning_draws_the_pop909_share_of_segments():
    import numpy as np

    from rhythmicnet.offline.train_music import SegmentSampler
    multitrack = md.SongBars("m", "freedoom", "BSD-3-Clause", "train", "piano", 0, np.full(20, 120.0),
                             np.zeros((20, 9, 16), bool), np.zeros((20, 9, 16), np.float32),
                             [[_note()] for _ in range(20)])
    pop = dataclasses.replace(_song([1] * 20), name="pop")
    data = MusicData(train=[multitrack], pop909=[pop], validation=[])
    rng = np.random.default_rng(0)
    for share, lo, hi in ((0.0, 0.0, 0.0), (0.4, 0.3, 0.5), (1.0, 1.0, 1.0)):
        sampler = SegmentSampler(data, MusicTrainConfig(pop909_fine_share=share, segment_bars=4, transpose=0))
        drawn = np.mean([sampler.sample(rng, pretraining=False).name == "pop" for _ in range(300)])
        assert lo <= drawn <= hi, (share, drawn)


def _note():
    from rhythmicnet.models.remi import BarNote
    return BarNote(0, 60, 80, 4)


def test_resuming_under_another_pop909_mix_starts_the_best_weights_anew(tiny_run, tmp_path):
    import torch

    from rhythmicnet.offline.training import load_checkpoint
    out, _, data = tiny_run
    cfg = MusicTrainConfig(d_model=32, d_ff=64, batch_size=2, segment_bars=4, steps=4, val_every=2,
                           max_bar_len=48, max_drum_len=48, threads=1, warmup_steps=1, pretrain_fraction=0.0)
    ckpt = tmp_path / "copy.ckpt"
    state = load_checkpoint(out / "drum2music.ckpt")
    state["extra"]["best_nll"] = 0.001  # unbeatable: kept, unless the new mix restarts the selection
    torch.save(state, ckpt)
    pop_data = MusicData(train=data.train, pop909=[dataclasses.replace(s, source="pop909") for s in data.train],
                         validation=data.validation)
    m = train_music(tmp_path, config=dataclasses.replace(cfg, pop909_drums=True, pop909_fine_share=0.5),
                    checkpoint=ckpt, resume=True, progress=False, data=pop_data)
    assert m["validation_nll"] > 0.001 and m["training"]["pop909_mix_since"] == 3
    assert load_checkpoint(ckpt)["extra"]["pop909_mix"] == {"pop909_drums": True, "pop909_fine_share": 0.5}
    assert "Rhythm2Drum" in m["data"]["pop909"]




def test_fine_tuning_a_copy_for_one_instrument(tiny_run, tmp_path):
    """Resuming the shared model's checkpoint for the guitar only: the best weights start anew, the
    weights are named for the guitar, and Drum2Music plays the guitar with them, the piano with the
    shared model."""
    import torch

    from rhythmicnet.models.drum2music import Drum2Music, music_model_name
    from rhythmicnet.offline.training import load_checkpoint
    out, _, data = tiny_run
    cfg = MusicTrainConfig(name="drum2music_guitar", d_model=32, d_ff=64, batch_size=2, segment_bars=4, steps=4,
                           val_every=2, use_pop909=False, max_bar_len=48, max_drum_len=48, threads=1, warmup_steps=1,
                           instruments=("guitar",))
    ckpt = tmp_path / "drum2music_guitar.ckpt"
    state = load_checkpoint(out / "drum2music.ckpt")
    state["extra"]["best_nll"] = 0.001  # unbeatable: kept, unless the new instruments restart the selection
    torch.save(state, ckpt)
    guitar_only = MusicData(train=[s for s in data.train if s.instrument == "guitar"], pop909=[],
                            validation=[s for s in data.train if s.instrument == "guitar"])
    m = train_music(tmp_path, config=cfg, checkpoint=ckpt, resume=True, progress=False, data=guitar_only)
    assert m["validation_nll"] > 0.001 and m["training"]["instruments_since"] == 3
    assert m["data"]["instruments"] == ["guitar"] and set(m["data"]["train_bars"]) == {"guitar"}
    assert load_checkpoint(ckpt)["extra"]["instruments"] == ["guitar"]

    assert music_model_name(tmp_path, "guitar") == "drum2music_guitar"
    assert music_model_name(tmp_path, "piano") is None  # the guitar copy does not play the piano
    with pytest.raises(WeightsError, match="trained for guitar only"):
        Drum2Music.load(tmp_path, "piano", name="drum2music_guitar")
    for f in ("drum2music.pt", "drum2music.json"):
        (tmp_path / f).write_bytes((out / f).read_bytes())
    assert Drum2Music.load(tmp_path, "guitar").name == "drum2music_guitar"
    assert Drum2Music.load(tmp_path, "piano").name == "drum2music"


def test_train_music_instrument_flag_names_the_weights(config_of):
    cfg = config_of("--instrument", "guitar")
    assert cfg.instruments == ("guitar",) and cfg.name == "drum2music_guitar"
    assert config_of().instruments == ("piano", "guitar") and config_of().name == "drum2music"
    assert config_of("--instrument", "piano", "--no-memory").name == "drum2music_no_memory_piano"


def test_load_data_keeps_the_runs_instruments():
    try:
        md.find_multitrack_root()
    except Exception:  # noqa: BLE001
        pytest.skip("../shared/data/multitrack_midi is not there")
    from rhythmicnet.offline.train_music import load_data
    data = load_data(MusicTrainConfig(instruments=("guitar",), limit_songs=2))
    assert data.train and {s.instrument for s in data.train + data.validation} == {"guitar"}
    assert data.pop909 == []  # POP909 is piano
