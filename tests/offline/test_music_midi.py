import json

import mido
import numpy as np
import pytest
import torch

from rhythmicnet.models.drum2music import Drum2Music, drum_bars_from_grid
from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.music_transformer import Drum2MusicConfig, Drum2MusicModel, SamplingConfig
from rhythmicnet.models.remi import BarNote
from rhythmicnet.offline.music_midi import music_midi, write_music_midi

TINY = Drum2MusicConfig(d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=2, d_ff=64, mem_len=16,
                        max_bar_len=24, max_drum_len=24, dropout=0.0)


@pytest.fixture()
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    model = Drum2MusicModel(TINY)
    torch.save(model.state_dict(), tmp_path / "drum2music.pt")
    (tmp_path / "drum2music.json").write_text(json.dumps({"config": TINY.to_dict(), "programs": {"guitar": 30}}))
    return tmp_path


def _grid(bars=3, bpm=96.0):
    rng = np.random.default_rng(0)
    hits = rng.random((9, 16 * bars)) < 0.2
    return DrumGrid.from_hits(hits, velocity=0.7, bpm=bpm)


def test_music_midi_tracks_notes_and_overlaps():
    grid = _grid(2)
    bars = [[BarNote(0, 60, 100, 8), BarNote(4, 60, 90, 2), BarNote(4, 64, 80, 40)], [BarNote(15, 67, 70, 1)]]
    mid = music_midi(grid, bars, program=30, instrument="guitar")
    assert mid.type == 1 and len(mid.tracks) == 2
    tpb, q = mid.ticks_per_beat, mid.ticks_per_beat // 4
    t = 0
    ons, offs, programs = [], [], []
    for msg in mid.tracks[1]:
        t += msg.time
        if msg.type == "program_change":
            programs.append(msg.program)
        elif msg.type == "note_on":
            ons.append((t, msg.note, msg.velocity))
        elif msg.type == "note_off":
            offs.append((t, msg.note))
    assert programs == [30]
    assert ons == [(0, 60, 100), (4 * q, 60, 90), (4 * q, 64, 80), (31 * q, 67, 70)]
    # the first C4 is cut where the second starts; durations are clipped to nothing else
    assert (4 * q, 60) in offs and (6 * q, 60) in offs and (44 * q, 64) in offs and (32 * q, 67) in offs
    drum_notes = [m for m in mid.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert len(drum_notes) == int(grid.hits.sum()) and all(m.channel == 9 for m in drum_notes)
    tempos = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(96.0)]
    assert tpb % 4 == 0


def test_write_music_midi_is_atomic_and_readable(tmp_path):
    path = write_music_midi(tmp_path / "out.mid", _grid(1), [[BarNote(0, 48, 64, 4)]], program=0,
                            instrument="piano")
    assert mido.MidiFile(path).length > 0
    assert [p.name for p in tmp_path.iterdir()] == ["out.mid"]


def test_drum2music_next_bar_keeps_memory_and_generate_is_reproducible(tiny_weights):
    d2m = Drum2Music.load(tiny_weights, "guitar", sampling=SamplingConfig(seed=3))
    assert d2m.program == 30
    bars = drum_bars_from_grid(_grid(3))
    assert len(bars) == 3 and bars[0].hits.shape == (9, 16)
    a = d2m.generate(bars)
    b = d2m.generate(bars)
    assert a == b and len(a) == 3
    assert all(40 <= n.pitch <= 88 for bar in a for n in bar)  # the guitar's range
    d2m.reset()
    live = [d2m.next_bar(bar) for bar in bars]
    assert live == a
    assert int(np.asarray(d2m.state.memory.dec_valid).sum()) > 0 and d2m.state.bars == 3
    piano = Drum2Music.load(tiny_weights, "piano", program=5)
    assert piano.program == 5
    with pytest.raises(ValueError):
        Drum2Music(piano.model, "violin")
