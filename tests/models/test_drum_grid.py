import io

import mido
import numpy as np
import pytest

from rhythmicnet.errors import InputError
from rhythmicnet.models.drum_grid import (
    CLASS_NAMES,
    GM_PITCH_CLASSES,
    OFFSET_MAX,
    OUTPUT_PITCHES,
    PITCH_TO_CLASS,
    DrumGrid,
    count_flams,
    grid_from_midi,
    grid_to_midi,
)
from rhythmicnet.offline.drum_midi import read_midi_file, write_midi_file

# The 22 notes of the Groove MIDI Dataset (all that its files contain) and GrooVAE's class for each.
GROOVE_TABLE = {
    36: "kick", 38: "snare", 37: "snare", 40: "snare", 42: "closed_hihat", 22: "closed_hihat",
    44: "closed_hihat", 46: "open_hihat", 26: "open_hihat", 43: "low_tom", 58: "low_tom", 47: "mid_tom",
    45: "mid_tom", 50: "high_tom", 48: "high_tom", 49: "crash", 52: "crash", 55: "crash", 57: "crash",
    51: "ride", 53: "ride", 59: "ride",
}  # fmt: skip


def _midi(notes, tpb=480, bpm=100.0, channel=9):
    """A type-1 MIDI file: tempo track + drum track. notes: (tick, pitch, velocity)."""
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    drums = mido.MidiTrack()
    events = sorted([(t, 1, p, v) for t, p, v in notes] + [(t + 30, 0, p, 0) for t, p, v in notes])
    now = 0
    for t, kind, p, v in events:
        drums.append(mido.Message("note_on" if kind else "note_off", channel=channel, note=p, velocity=v,
                                  time=t - now))
        now = t
    mid.tracks += [meta, drums]
    return mid


def _random_grid(rng, steps=48, bpm=97.0):
    h = rng.random((9, steps)) < 0.2
    v = rng.integers(1, 128, size=(9, steps)) / 127
    o = rng.integers(-60, 60, size=(9, steps)) / 120
    o[:, 0] = np.abs(o[:, 0])  # a negative offset on step 0 would fall before the file starts
    return DrumGrid(h, v, o, bpm)


def test_mapping_is_grooves_22_notes_and_gm_outputs():
    assert CLASS_NAMES == ("kick", "snare", "closed_hihat", "open_hihat", "low_tom", "mid_tom", "high_tom",
                           "crash", "ride")
    assert {p: CLASS_NAMES[c] for p, c in PITCH_TO_CLASS.items()} == GROOVE_TABLE
    assert sum(len(ps) for ps in GM_PITCH_CLASSES) == 22
    assert OUTPUT_PITCHES == (36, 38, 42, 46, 43, 47, 50, 49, 51)


def test_quantise_offset_velocity_and_flams():
    q = 120  # ticks per 16th at 480 per beat
    notes = [
        (0, 36, 100),  # kick, step 0
        (q * 4 + 59, 38, 64),  # snare just before the half: step 4, offset 59/120
        (q * 8 - 60, 42, 50),  # exactly half a step early rounds up: step 8, offset -0.5
        (q * 8 - 61, 22, 40),  # another closed hi-hat note (22 -> closed) on step 7, offset +59/120
        (q * 12, 40, 30), (q * 12 + 10, 37, 90), (q * 12 + 5, 38, 90),  # snare flam: loudest, then earliest
        (q * 2, 39, 127),  # hand clap: not in the table, ignored
    ]
    g = grid_from_midi(_midi(notes, bpm=100.0))
    assert g.num_steps == 16 and g.bpm == pytest.approx(100.0)
    assert {(int(c), int(t)) for c, t in zip(*np.nonzero(g.hits), strict=True)} == {(0, 0), (1, 4), (2, 8), (2, 7),
                                                                                    (1, 12)}
    assert g.velocities[0, 0] == pytest.approx(100 / 127)
    assert g.offsets[1, 4] == pytest.approx(59 / 120)
    assert g.offsets[2, 8] == pytest.approx(-0.5)
    assert g.offsets[2, 7] == pytest.approx(59 / 120)
    assert g.velocities[1, 12] == pytest.approx(90 / 127) and g.offsets[1, 12] == pytest.approx(5 / 120)
    assert g.velocities[g.hits == 0].max() == 0 and g.offsets[g.hits == 0].max() == 0


def test_channel_filter_and_length():
    mid = _midi([(0, 36, 100), (120 * 20, 38, 100)], channel=3)
    assert grid_from_midi(mid).num_steps == 0
    g = grid_from_midi(mid, channel=None)
    assert g.num_steps == 32 and g.hits.sum() == 2  # whole bars up to the last note
    g = grid_from_midi(mid, channel=None, num_steps=16)
    assert g.num_steps == 16 and g.hits.sum() == 1


def test_handmade_grid_round_trip():
    h = np.zeros((9, 32), dtype=bool)
    v = np.zeros((9, 32))
    o = np.zeros((9, 32))
    for c, t, vel, off in [(0, 0, 1.0, 0.0), (1, 4, 0.5, -0.5), (2, 5, 0.01, OFFSET_MAX), (8, 31, 0.7, 0.25),
                           (7, 16, 0.3, -0.1), (2, 6, 0.2, -0.5)]:
        h[c, t], v[c, t], o[c, t] = True, vel, off
    g = DrumGrid(h, v, o, bpm=123.4)
    mid = g.to_midi()
    assert all(m.channel == 9 for m in mid.tracks[0] if not m.is_meta)
    back = DrumGrid.from_midi(mid)
    assert back.equals(g, velocity_atol=0.5 / 127, offset_atol=1 / 120)  # OFFSET_MAX -> the step's last tick
    assert back.offsets[2, 5] == pytest.approx(59 / 120)
    o[2, 5] = 0.3
    g = DrumGrid(h, v, o, bpm=123.4)
    assert DrumGrid.from_midi(g.to_midi()).equals(g, velocity_atol=0.5 / 127, offset_atol=0.5 / 120)
    # the offset moves the note in time; the tempo is kept
    ons = [(t, m.note) for t, m in _abs(mid) if m.type == "note_on"]
    assert (4 * 120 - 60, 38) in ons and (5 * 120 + 59, 42) in ons
    assert mido.tempo2bpm(next(m.tempo for m in mid.tracks[0] if m.type == "set_tempo")) == pytest.approx(123.4, 1e-5)
    # trailing silence survives when the length is given
    g2 = g.window(0, 48)
    assert DrumGrid.from_midi(g2.to_midi(), num_steps=48).equals(g2, velocity_atol=0.5 / 127, offset_atol=0.5 / 120)


def _abs(mid):
    t = 0
    for m in mid.tracks[0]:
        t += m.time
        yield t, m


def test_random_grids_round_trip_exactly_on_tick_offsets():
    rng = np.random.default_rng(0)
    for _ in range(20):
        g = _random_grid(rng)
        back = grid_from_midi(grid_to_midi(g), num_steps=g.num_steps)
        assert back.equals(g, velocity_atol=1e-6, offset_atol=1e-6)
        # offsets that are not whole ticks round to the nearest tick
        g2 = DrumGrid(g.hits, g.velocities, np.clip(g.offsets + 0.003, -0.5, OFFSET_MAX), g.bpm)
        back2 = grid_from_midi(grid_to_midi(g2), num_steps=g.num_steps)
        assert back2.equals(g2, velocity_atol=1e-6, offset_atol=0.5 / 120 + 1e-6)


def test_write_clamps_edge_cases():
    h = np.zeros((9, 16), dtype=bool)
    h[0, 0] = h[1, 1] = h[1, 2] = True
    v = np.zeros((9, 16))
    v[0, 0], v[1, 1], v[1, 2] = 0.0, 0.999, 0.5
    o = np.zeros((9, 16))
    o[0, 0], o[1, 1], o[1, 2] = -0.3, OFFSET_MAX, -0.5  # two snare notes one tick apart
    mid = grid_to_midi(DrumGrid(h, v, o))
    ons = [(t, m.note, m.velocity) for t, m in _abs(mid) if m.type == "note_on"]
    assert ons[0] == (0, 36, 1)  # before the file start -> tick 0; velocity 0 -> 1 (0 would be a note-off)
    assert (179, 38, 127) in ons and (180, 38, 64) in ons
    offs = [t for t, m in _abs(mid) if m.type == "note_off" and m.note == 38]
    assert offs[0] == 180  # cut at the next hit of the same note
    back = grid_from_midi(mid)
    assert back.hits[1, 1] and back.hits[1, 2]


def test_grid_validation_and_helpers():
    with pytest.raises(ValueError, match="shape"):
        DrumGrid(np.zeros((8, 4)), np.zeros((8, 4)), np.zeros((8, 4)))
    h = np.ones((9, 4), dtype=bool)
    with pytest.raises(ValueError, match="offsets"):
        DrumGrid(h, np.zeros((9, 4)), np.full((9, 4), 0.5))
    with pytest.raises(ValueError, match="velocities"):
        DrumGrid(h, np.full((9, 4), 1.2), np.zeros((9, 4)))
    g = DrumGrid.from_arrays(h, np.full((9, 4), 1.2), np.full((9, 4), 0.7))
    assert g.velocities.max() == 1.0 and g.offsets.max() < 0.5
    # values where there is no hit are zeroed
    g = DrumGrid(np.eye(9, 4, dtype=bool), np.full((9, 4), 0.5), np.full((9, 4), 0.1))
    assert g.velocities.sum() == pytest.approx(4 * 0.5)
    hits = np.random.default_rng(1).random((9, 40)) < 0.3
    g = DrumGrid.from_hits(hits, velocity=0.8, bpm=90)
    assert g.num_bars == 3 and g.padded_to_bars().num_steps == 48
    assert np.array_equal(g.bars(1).hits, hits[:, 16:32])
    w = g.window(32, 16)
    assert np.array_equal(w.hits[:, :8], hits[:, 32:]) and not w.hits[:, 8:].any()
    assert DrumGrid.concat([g.window(0, 20), g.window(20, 20)]).equals(g)
    assert DrumGrid.from_hvo(g.hvo(), bpm=90).equals(g)
    assert np.array_equal(g.onsets(), hits.any(axis=0))


def test_file_helpers(tmp_path):
    g = _random_grid(np.random.default_rng(2), steps=32)
    p = write_midi_file(g, tmp_path / "drums.mid")
    assert read_midi_file(p).equals(g, velocity_atol=1e-6, offset_atol=1e-6)
    with pytest.raises(InputError, match="not found"):
        read_midi_file(tmp_path / "missing.mid")
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    with pytest.raises(InputError, match="bad.mid"):
        read_midi_file(tmp_path / "bad.mid")


def _groove_files(shared_dir, n):
    d = shared_dir / "data" / "groove_midi" / "groove"
    if not (d / "info.csv").is_file():
        pytest.skip(f"{d} not found")
    files = sorted(d.glob("drummer*/**/*.mid"))
    return files[:: max(1, len(files) // n)][:n]


def test_real_groove_files_round_trip(shared_dir):
    files = _groove_files(shared_dir, 40)
    flams = 0
    for f in files:
        mid = mido.MidiFile(f)
        g = grid_from_midi(mid)
        assert g.hits.any() and g.num_steps % 16 == 0
        buf = io.BytesIO()
        g.to_midi().save(file=buf)
        buf.seek(0)
        back = grid_from_midi(mido.MidiFile(file=buf), num_steps=g.num_steps)
        # the files have 480 ticks per beat, as written: velocities and offsets come back exactly
        assert back.equals(g, velocity_atol=1e-6, offset_atol=1e-6), f
        flams += count_flams(mid)
    assert flams > 0
