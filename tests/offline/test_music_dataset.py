import csv
import shutil

import mido
import numpy as np
import pytest

from rhythmicnet.errors import InputError
from rhythmicnet.models.drum_grid import CLOSED_HIHAT, CRASH, KICK, LOW_TOM, PITCH_TO_CLASS, SNARE
from rhythmicnet.models.remi import BarNote
from rhythmicnet.offline import music_dataset as md
from rhythmicnet.offline.music_dataset import (
    EXTENDED_PITCH_TO_CLASS,
    SongBars,
    count_segments,
    parse_multitrack_file,
    parse_pop909_song,
    read_multitrack,
    read_multitrack_index,
    read_pop909,
    scale_tempo,
    segments,
    summary,
    transpose,
)

TPB = 480
STEP = TPB // 4  # ticks per 16th


def _track(name: str, channel: int, program: int | None, notes: list[tuple[int, int, int, int]]) -> mido.MidiTrack:
    """A track from (tick, pitch, velocity, length in ticks) notes."""
    events: list[tuple[int, int, mido.Message]] = []
    for tick, pitch, vel, length in notes:
        events.append((tick, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=vel)))
        events.append((tick + length, 0, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    tr = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    if program is not None:
        tr.append(mido.Message("program_change", channel=channel, program=program, time=0))
    now = 0
    for tick, _, msg in events:
        tr.append(msg.copy(time=tick - now))
        now = tick
    return tr


def _meta_track(events: list[tuple[int, mido.MetaMessage]]) -> mido.MidiTrack:
    tr = mido.MidiTrack()
    now = 0
    for tick, msg in events:
        tr.append(msg.copy(time=tick - now))
        now = tick
    return tr


def write_song(path):
    """The test song (ticks at 480 per beat; 'bar k' counts the file's bars).

    bars 0-2 4/4 (bar 0 at 120 bpm, 80 bpm from beat 3 of bar 1), bars 3-4 in 3/4, bars 5-6 in 4/4 (80 bpm).
    Seconds: bar 0 0-2, bar 1 2-4.5 (beats 2, 2.5, 3, 3.75), bar 2 4.5-7.5, bar 5 12-15, bar 6 15-18.
    """
    b1, b2, b5, b6 = 1920, 3840, 8640, 10560
    tempo = _meta_track([
        (0, mido.MetaMessage("set_tempo", tempo=500000)),
        (0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
        (b1 + 2 * TPB, mido.MetaMessage("set_tempo", tempo=750000)),
        (5760, mido.MetaMessage("time_signature", numerator=3, denominator=4)),
        (b5, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
    ])
    piano = _track("Piano", 0, 0, [
        (b1, 60, 100, 2 * STEP),  # bar 1 step 0, loses to the longer EP note below
        (b1 + 2 * STEP, 10, 90, STEP),  # outside PITCH_RANGE
        (b1 + 8 * STEP, 48, 70, 9 * TPB),  # at the tempo change; 36 steps at 80 bpm -> clipped to 32
        (b1 + 12 * STEP, 64, 80, TPB),  # 4 steps at 80 bpm
        (b2 - 50, 67, 81, TPB),  # rounds to step 16 of bar 1 = step 0 of bar 2
        (5760 - 50, 69, 82, STEP),  # rounds into the 3/4 bar: dropped
        (6000, 72, 83, 2 * STEP),  # inside the 3/4 stretch: dropped
        (b5, 65, 90, STEP),  # same step, pitch and length as the EP note, louder: kept
        (b6 + 15 * STEP, 62, 55, STEP),  # last step of the last bar; the file ends at its end (tick 12480)
    ])
    ep = _track("EP", 1, 4, [(b1 + 10, 60, 50, 6 * STEP)]
                + [(b5 + s * STEP, 65, 70, STEP) for s in range(0, 16, 2)] + [(b6, 40, 60, TPB)])
    guitar = _track("Guitar", 2, 27, [(0, 52, 90, TPB), (b2 + 4 * STEP, 55, 91, 2 * STEP)])
    guitar2 = _track("Guitar 2", 3, 25, [(b6 + 8 * STEP, 59, 92, STEP)])
    drums = _track("Drums", 9, None, [
        (b1, 36, 100, 60), (b1, 35, 120, 60),  # both kick: the louder 35 wins
        (b1 + 2 * STEP, 54, 70, 60),  # tambourine -> closed hi-hat
        (b1 + 4 * STEP, 39, 64, 60),  # clap -> snare
        (b1 + 6 * STEP, 25, 100, 60),  # unmapped: dropped
        (b1 + 8 * STEP, 41, 90, 60),  # low floor tom -> low tom
        (b2, 57, 127, 60),  # crash 2
        (6000, 38, 100, 60),  # 3/4: dropped
        (b6 + 4 * STEP, 38, 127, 60),
    ])
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    mid.tracks += [tempo, piano, ep, guitar, guitar2, drums]
    mid.save(str(path))
    return path


def notes_of(bar):
    return [(n.step, n.pitch, n.velocity, n.duration) for n in bar]


@pytest.fixture(scope="module")
def song_path(tmp_path_factory):
    return write_song(tmp_path_factory.mktemp("midi") / "song.mid")


def test_piano_bars_steps_durations_drums(song_path):
    parts = parse_multitrack_file(song_path, "piano", name="src/song.mid", source="src", licence="L", split="test")
    assert [p.name for p in parts] == ["src/song.mid#1", "src/song.mid#2"]
    a, b = parts
    assert (a.source, a.licence, a.split, a.instrument) == ("src", "L", "test", "piano")
    assert a.program == b.program == 4  # EP: 10 notes, acoustic piano: 9
    # bar 0 has only guitar -> trimmed for piano; the 3/4 bars split the song
    assert a.n_bars == 2 and b.n_bars == 2
    np.testing.assert_allclose(a.tempo_bpm, [96.0, 80.0], rtol=1e-5)  # bar 1 lasts 2.5 s
    np.testing.assert_allclose(b.tempo_bpm, [80.0, 80.0], rtol=1e-5)
    assert notes_of(a.notes[0]) == [(0, 60, 50, 6), (8, 48, 70, 32), (12, 64, 80, 4)]
    assert notes_of(a.notes[1]) == [(0, 67, 81, 4)]
    assert notes_of(b.notes[0]) == [(0, 65, 90, 1)] + [(s, 65, 70, 1) for s in range(2, 16, 2)]
    assert notes_of(b.notes[1]) == [(0, 40, 60, 4), (15, 62, 55, 1)]
    assert a.drum_hits is not None and a.drum_velocity is not None
    assert a.drum_hits.shape == (2, 9, 16) and a.drum_velocity.dtype == np.float32
    expected = np.zeros((2, 9, 16), dtype=np.float32)
    expected[0, KICK, 0] = 120 / 127
    expected[0, CLOSED_HIHAT, 2] = 70 / 127
    expected[0, SNARE, 4] = 64 / 127
    expected[0, LOW_TOM, 8] = 90 / 127
    expected[1, CRASH, 0] = 1.0
    np.testing.assert_allclose(a.drum_velocity, expected, atol=1e-6)
    np.testing.assert_array_equal(a.drum_hits, expected > 0)
    assert b.drum_hits is not None and np.argwhere(b.drum_hits).tolist() == [[1, SNARE, 4]]


def test_guitar_part_of_the_same_file(song_path):
    parts = parse_multitrack_file(song_path, "guitar", name="song.mid")
    assert [p.n_bars for p in parts] == [3, 1]  # bar 0 kept (guitar); bar 5 trimmed (no guitar, no drums)
    a, b = parts
    assert a.program == 27  # 2 notes against 1 of program 25
    np.testing.assert_allclose(a.tempo_bpm, [120.0, 96.0, 80.0], rtol=1e-5)
    assert [notes_of(bar) for bar in a.notes] == [[(0, 52, 90, 4)], [], [(4, 55, 91, 2)]]
    assert notes_of(b.notes[0]) == [(8, 59, 92, 1)]


def test_drum_map_extends_groove_table():
    for p, c in PITCH_TO_CLASS.items():
        assert EXTENDED_PITCH_TO_CLASS[p] == c
    assert EXTENDED_PITCH_TO_CLASS[35] == KICK and EXTENDED_PITCH_TO_CLASS[39] == SNARE
    assert EXTENDED_PITCH_TO_CLASS[41] == LOW_TOM and EXTENDED_PITCH_TO_CLASS[54] == CLOSED_HIHAT
    assert 25 not in EXTENDED_PITCH_TO_CLASS and 88 not in EXTENDED_PITCH_TO_CLASS
    assert all(21 < p < 88 for p in EXTENDED_PITCH_TO_CLASS)


def _write_index(root, rows):
    with (root / "index.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "source", "licence", "split", "has_piano", "has_guitar",
                                          "tempo_bpm", "time_signature"])
        w.writeheader()
        w.writerows(rows)


def test_read_multitrack_filters_and_cache(song_path, tmp_path, monkeypatch):
    root = tmp_path / "mt"
    for sub in ("bsd", "gpl"):
        (root / sub).mkdir(parents=True)
        shutil.copy(song_path, root / sub / "song.mid")
    row = {"tempo_bpm": 120, "time_signature": "4/4", "has_guitar": 0}
    _write_index(root, [
        {"path": "bsd/song.mid", "source": "bsd", "licence": "BSD-3-Clause", "split": "train", "has_piano": 1, **row},
        {"path": "gpl/song.mid", "source": "gpl", "licence": "GPL-2.0-only", "split": "test", "has_piano": 1, **row},
    ])
    cache = tmp_path / "cache"
    songs = read_multitrack(None, "piano", root=root, cache_dir=cache)
    assert [s.name for s in songs] == ["bsd/song.mid#1", "bsd/song.mid#2"]
    assert {s.licence for s in songs} == {"BSD-3-Clause"} and {s.split for s in songs} == {"train"}
    assert read_multitrack(None, "guitar", root=root, cache_dir=cache) == []  # has_guitar 0
    everything = read_multitrack(None, "piano", root=root, licences=None, cache_dir=cache)
    assert [s.source for s in everything] == ["bsd", "bsd", "gpl", "gpl"]
    assert [s.name for s in read_multitrack("test", "piano", root=root, licences=None, cache_dir=cache)] == [
        "gpl/song.mid#1", "gpl/song.mid#2"]
    with pytest.raises(ValueError, match="licence"):
        read_multitrack(root=root, licences=("BSD",), cache_dir=cache)
    with pytest.raises(ValueError, match="split"):
        read_multitrack("valid", root=root, cache_dir=cache)
    with pytest.raises(ValueError, match="instrument"):
        read_multitrack(None, "bass", root=root, cache_dir=cache)

    # the second read comes from the cache, not from the MIDI files
    files = sorted(cache.glob("music_multitrack_piano_all_any_*.npz"))
    assert len(files) == 1

    def fail(*args, **kwargs):
        raise AssertionError("parsed again")

    monkeypatch.setattr(md, "_parse_multitrack", fail)
    again = read_multitrack(None, "piano", root=root, licences=None, cache_dir=cache)
    assert [s.name for s in again] == [s.name for s in everything]
    for x, y in zip(again, everything, strict=True):
        assert x.notes == y.notes and x.program == y.program and x.split == y.split
        np.testing.assert_array_equal(x.tempo_bpm, y.tempo_bpm)
        np.testing.assert_array_equal(x.drum_velocity, y.drum_velocity)
        np.testing.assert_array_equal(x.drum_hits, y.drum_hits)
    monkeypatch.undo()

    # a corrupt cache file is parsed again and rewritten
    files[0].write_bytes(b"PK\x03\x04 not a zip")
    fixed = read_multitrack(None, "piano", root=root, licences=None, cache_dir=cache)
    assert [x.notes for x in fixed] == [y.notes for y in everything]
    assert md._load_parts(files[0], ["bsd/song.mid", "gpl/song.mid"]) is not None


def write_pop909_song(root, number=1):
    """A POP909-like song: beats every 0.5 s from 0.25 s, a pick-up beat, then bars of 4, 4, 2 (irregular), 4, 4, 4."""
    d = root / f"{number:03d}"
    d.mkdir(parents=True)
    down = {1, 5, 9, 11, 15, 19}
    times = [0.25 + 0.5 * k for k in range(23)]
    (d / "beat_midi.txt").write_text("".join(f"{t} {float(k % 2 == 1)} {float(k in down)}\n"
                                             for k, t in enumerate(times)))
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    parts = {
        "MELODY": [(0.25, 72), (times[1], 72), (times[9] + 0.5, 74)],  # pick-up and irregular bar: dropped
        "BRIDGE": [(times[5] + 0.25, 67)],  # bar 2 step 2
        "PIANO": [(times[11], 48), (times[11], 55), (times[22], 60)],
    }
    for name, notes in parts.items():
        inst = pretty_midi.Instrument(program=0, name=name)
        inst.notes += [pretty_midi.Note(velocity=64, pitch=p, start=t, end=t + 0.5) for t, p in notes]
        pm.instruments.append(inst)
    pm.write(str(d / f"{number:03d}.mid"))
    return d


def test_pop909_reader(tmp_path):
    root = tmp_path / "pop"
    write_pop909_song(root, 1)
    write_pop909_song(root, 820)
    parts = parse_pop909_song(root / "001")
    assert [p.name for p in parts] == ["pop909/001#1", "pop909/001#2"]
    a, b = parts
    assert a.drum_hits is None and a.drum_velocity is None and a.program == 0 and a.split == "train"
    assert a.n_bars == 2 and b.n_bars == 3
    np.testing.assert_allclose(np.concatenate([a.tempo_bpm, b.tempo_bpm]), 120.0)
    assert [notes_of(bar) for bar in a.notes] == [[(0, 72, 64, 4)], [(2, 67, 64, 4)]]
    assert [notes_of(bar) for bar in b.notes] == [[(0, 48, 64, 4), (0, 55, 64, 4)], [], [(12, 60, 64, 4)]]
    cache = tmp_path / "cache"
    assert [s.name for s in read_pop909(root=root, cache_dir=cache)] == [
        "pop909/001#1", "pop909/001#2", "pop909/820#1", "pop909/820#2"]
    test = read_pop909("test", root=root, cache_dir=cache)
    assert {s.split for s in test} == {"test"} and len(test) == 2
    assert read_pop909("validation", root=root, cache_dir=cache) == []
    assert len(read_pop909(root=root, cache_dir=cache, limit=1)) == 2
    with pytest.raises(InputError, match="POP909 not found"):
        read_pop909(root=tmp_path / "nowhere", cache=False)


def _song(n_bars: int, drums: bool = True) -> SongBars:
    notes = [[BarNote(0, 21 + k, 64, 4), BarNote(8, 100 + k % 9, 80, 2)] for k in range(n_bars)]
    hits = np.zeros((n_bars, 9, 16), dtype=bool)
    hits[:, KICK, 0] = True
    vel = hits.astype(np.float32) * 0.5
    return SongBars("x", "s", "L", "train", "piano", 0, np.full(n_bars, 100.0),
                    hits if drums else None, vel if drums else None, notes)


def test_transpose_and_scale_tempo():
    s = _song(3)
    up = transpose(s, 2)
    assert notes_of(up.notes[0]) == [(0, 23, 64, 4), (8, 102, 80, 2)]
    assert notes_of(s.notes[0]) == [(0, 21, 64, 4), (8, 100, 80, 2)]  # the original is unchanged
    down = transpose(s, -1)
    assert notes_of(down.notes[0]) == [(8, 99, 80, 2)]  # 21 - 1 leaves the piano range
    assert notes_of(transpose(s, 7).notes[2]) == [(0, 30, 64, 4)]  # 102 + 7 > 108
    assert up.drum_hits is not s.drum_hits and up.drum_hits is not None and s.drum_hits is not None
    np.testing.assert_array_equal(up.drum_hits, s.drum_hits)
    fast = scale_tempo(s, 1.1)
    np.testing.assert_allclose(fast.tempo_bpm, 110.0)
    np.testing.assert_allclose(s.tempo_bpm, 100.0)
    assert fast.notes == s.notes
    with pytest.raises(ValueError):
        scale_tempo(s, 0.0)


def test_segments_and_summary():
    assert [s.n_bars for s in segments(_song(40))] == [16, 16, 8]
    assert [s.n_bars for s in segments(_song(35))] == [16, 16]  # a 3-bar tail is dropped
    assert [s.n_bars for s in segments(_song(3))] == []
    assert [s.n_bars for s in segments(_song(16))] == [16]
    assert [s.name for s in segments(_song(20), 8, 4)] == ["x[0:8]", "x[4:12]", "x[8:16]", "x[12:20]"]
    seg = segments(_song(40))[2]
    assert seg.notes[0][0].pitch == 21 + 32 and seg.drum_hits is not None and seg.drum_hits.shape == (8, 9, 16)
    assert count_segments(40) == 3 and count_segments(0) == 0
    songs = [_song(40), _song(20, drums=False)]
    songs[1].split = "test"
    s = summary(songs)
    assert s["all"]["bars"] == 60 and s["all"]["segments"] == 5 and s["all"]["notes_per_bar_mean"] == 2.0
    assert s["by_split"]["train"]["bars"] == 40 and s["by_split"]["test"]["segments"] == 2
    assert "drum_hits_per_bar_mean" not in s["by_split"]["test"]
    assert s["by_split"]["train"]["drum_hits_per_bar_mean"] == 1.0
    assert "all" in md.format_summary(s)


# --- the real data (skipped without ../shared) ----------------------------------------------------


@pytest.fixture(scope="module")
def multitrack_root(shared_dir):
    d = shared_dir / "data" / "multitrack_midi"
    if not (d / "index.csv").is_file():
        pytest.skip(f"{d} not found")
    return d


@pytest.fixture(scope="module")
def pop909_root(shared_dir):
    d = shared_dir / "data" / "pop909"
    if not (d / "001" / "beat_midi.txt").is_file():
        pytest.skip(f"{d} not found")
    return d


def test_real_multitrack_file(multitrack_root):
    index = read_multitrack_index(multitrack_root)
    assert len(index) == 127
    assert {e.licence for e in index} == {"BSD-3-Clause", "GPL-2.0-only", "GPL-2.0-or-later"}
    assert [sum(e.split == s for e in index) for s in md.SPLITS] == [105, 12, 10]
    for inst, program in (("piano", 4), ("guitar", 29)):
        parts = parse_multitrack_file(multitrack_root / "freedoom" / "d_dm02.mid", inst)
        assert len(parts) == 1 and parts[0].program == program
        s = parts[0]
        assert s.n_bars > 8 and s.drum_hits is not None
        assert 40 <= s.tempo_bpm.min() and s.tempo_bpm.max() <= 250
        assert 0.5 < s.n_notes / s.n_bars < 40
        assert 5 < s.drum_hits.sum() / s.n_bars < 100


def test_real_pop909_songs(pop909_root):
    for name in ("001", "002"):
        parts = parse_pop909_song(pop909_root / name)
        assert parts and all(p.split == "train" and p.drum_hits is None for p in parts)
        bars = sum(p.n_bars for p in parts)
        notes = sum(p.n_notes for p in parts)
        assert bars > 8 and 5 < notes / bars < 60
        tempo = np.concatenate([p.tempo_bpm for p in parts])
        assert 40 <= tempo.min() and tempo.max() <= 250
        for p in parts:
            for bar in p.notes:
                assert bar == sorted(bar, key=lambda n: (n.step, n.pitch))
                assert all(0 <= n.step < 16 and 21 <= n.pitch <= 108 and 1 <= n.duration <= 32 for n in bar)
