import io

import mido
import numpy as np
import pytest

from rhythmicnet.models.note_timing import NoteEvent
from rhythmicnet.models.rhythm_grid import compose_rhythm
from rhythmicnet.offline.soundtrack_midi import (
    Q,
    TempoMap,
    part_track,
    soundtrack_file,
    write_midi,
)


def _seconds_of_notes(mid: mido.MidiFile) -> list[tuple[float, str, int]]:
    """(time s, type, note) of every note message, as a player would time them."""
    out, t = [], 0.0
    for msg in mid:  # mido applies the tempo map of a type-1 file
        t += msg.time
        if msg.type in ("note_on", "note_off"):
            out.append((t, msg.type if msg.velocity else "note_off", msg.note))
    return out


@pytest.fixture()
def drifting_rhythm():
    ibi = np.linspace(0.5, 0.42, 20)  # 120 -> ~143 BPM
    beats = 0.37 + np.concatenate([[0.0], np.cumsum(ibi)])
    return compose_rhythm(beats, np.array([]), duration=float(beats[-1] + 0.3), first_downbeat=float(beats[2]))


def test_beats_in_the_file_sound_at_the_dancers_beats(drifting_rhythm):
    r = drifting_rhythm
    tm = TempoMap(r.step_times, r.first_downbeat_step)
    beat_times = r.step_times[r.beat_steps]
    notes = [NoteEvent(float(t), float(t) + 0.05, 36, 100, 9) for t in beat_times]
    mid = soundtrack_file(tm, [part_track(notes, tm, name="drums", program=None, channel=9)], r.step_times[-1] + 0.1)
    buf = io.BytesIO()
    mid.save(file=buf)
    back = mido.MidiFile(file=io.BytesIO(buf.getvalue()))
    ons = [t for t, kind, _ in _seconds_of_notes(back) if kind == "note_on"]
    assert np.allclose(ons, beat_times, atol=2e-3)
    # Each beat is a quarter note of the file: ticks of the beats are 4 * Q apart.
    assert np.all(np.diff(tm.ticks(beat_times)) == 4 * Q)
    assert back.length == pytest.approx(r.step_times[-1] + 0.1, abs=0.01)


def test_bar_one_is_the_first_downbeat_with_a_pickup_before(drifting_rhythm):
    r = drifting_rhythm
    tm = TempoMap(r.step_times, r.first_downbeat_step)
    assert tm.pre_roll  # the grid's first step is after the first frame
    metre = tm.metre_events()
    pickup16 = (r.first_downbeat_step + 1) % 16
    assert metre == [(0, pickup16, 16), (pickup16 * Q, 4, 4)]
    # The downbeat's tick is a 4/4 bar line.
    assert (tm.downbeat_tick - pickup16 * Q) % (16 * Q) == 0
    assert tm.ticks(r.step_times[r.first_downbeat_step]) == tm.downbeat_tick
    # No pickup when the downbeat falls on tick 0's bar line
    t = np.arange(40) * 0.125
    assert TempoMap(t, 0).metre_events() == [(0, 4, 4)] and not TempoMap(t, 0).pre_roll


def test_tempo_events_follow_the_drift(drifting_rhythm):
    r = drifting_rhythm
    tm = TempoMap(r.step_times, r.first_downbeat_step)
    ev = tm.tempo_events()
    assert ev[0][0] == 0
    bpms = [60e6 / us for _, us in ev[1:]]
    assert bpms[0] == pytest.approx(120, abs=0.5) and bpms[-1] == pytest.approx(60 / 0.42, abs=0.5)
    assert len(ev) > 15  # one per beat


def test_overlapping_notes_are_cut_and_files_written_atomically(tmp_path):
    t = np.arange(64) * 0.125
    tm = TempoMap(t, 0)
    notes = [NoteEvent(0.0, 1.0, 60, 90, 0), NoteEvent(0.5, 0.75, 60, 80, 0), NoteEvent(0.5, 0.6, 64, 70, 0)]
    track = part_track(notes, tm, name="piano", program=0, channel=0)
    mid = soundtrack_file(tm, [track], 8.0)
    path = write_midi(tmp_path / "p.mid", mid)
    back = _seconds_of_notes(mido.MidiFile(path))
    c4 = [(round(tt, 3), kind) for tt, kind, n in back if n == 60]
    assert c4 == [(0.0, "note_on"), (0.5, "note_off"), (0.5, "note_on"), (0.75, "note_off")]
    assert [p.name for p in tmp_path.iterdir()] == ["p.mid"]
    with pytest.raises(ValueError):
        TempoMap(np.array([0.0, 0.0, 1.0]), 0)


def test_a_first_step_a_rounding_error_below_zero_is_the_first_frame():
    """A batch clip's grid began at -2.8e-17 s and was refused; a real negative time still is."""
    t = np.array([-2.8e-17, 0.125, 0.25, 0.375])
    tm = TempoMap(t, 0)
    assert not tm.pre_roll and tm.knot_times[0] == 0.0 and int(tm.ticks(0.125)) == Q
    with pytest.raises(ValueError):
        TempoMap(np.array([-0.01, 0.125, 0.25]), 0)
