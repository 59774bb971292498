"""``live --record``: what was played, as a MIDI file on the dancer's tempo map."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np

from rhythmicnet.models.midi_messages import note_off, note_on
from rhythmicnet.realtime.midi_out import CaptureSink
from rhythmicnet.realtime.midi_record import RecordingSink, performance_to_midi, seconds_to_ticks


def _grid() -> np.ndarray:
    # a dancer slowing from 120 to about 100 BPM
    return 10.0 + np.cumsum(np.concatenate([[0.0], np.linspace(0.5, 0.6, 15)]))


def test_notes_on_grid_beats_land_on_whole_quarter_notes_and_play_back_at_their_times():
    grid = _grid()
    msgs = []
    for k in (0, 3, 7, 12):
        msgs += [(grid[k], note_on(9, 36, 100)), (grid[k] + 0.1, note_off(9, 36))]
    msgs.append((grid[5] + 0.5 * (grid[6] - grid[5]), note_on(0, 60, 80)))  # an eighth after beat 5
    msgs.append((grid[6], note_off(0, 60)))
    msgs.append((grid[1], mido.Message("clock")))  # real-time messages are not written
    msgs.sort(key=lambda m: m[0])
    mid = performance_to_midi(msgs, grid)
    assert mid.type == 0 and mid.ticks_per_beat == 480
    track, tick, on_ticks = mid.tracks[0], 0, {}
    for m in track:
        tick += m.time
        if m.type == "note_on":
            on_ticks.setdefault(m.note, []).append(tick)
    assert on_ticks[36] == [0, 3 * 480, 7 * 480, 12 * 480]
    assert on_ticks[60] == [5 * 480 + 240]
    assert not any(m.type == "clock" for m in track)
    tempi = [m.tempo for m in track if m.type == "set_tempo"]
    assert len(tempi) == len(grid) - 1 and abs(tempi[0] - 500000) < 2 and abs(tempi[-1] - 600000) < 2
    # played back, every message comes at its send time (relative to the first)
    played, t = [], 0.0
    for m in mid:
        t += m.time
        if not m.is_meta:
            played.append(t)
    sent = [s for s, m in msgs if not m.is_realtime]
    np.testing.assert_allclose(played, np.array(sent) - sent[0], atol=2e-3)


def test_times_outside_the_grid_extrapolate_and_a_short_grid_uses_the_default_tempo():
    grid = np.array([1.0, 1.5, 2.0])
    np.testing.assert_array_equal(seconds_to_ticks(np.array([0.5, 1.25, 2.5]), grid), [-480, 240, 1440])
    mid = performance_to_midi([(3.0, note_on(9, 38, 90)), (3.5, note_off(9, 38))], [])
    assert abs(mid.length - 0.5) < 1e-3


def test_recording_sink_passes_everything_on_and_writes_atomically(tmp_path: Path):
    inner = CaptureSink()
    rec = RecordingSink(inner)
    rec.send(note_on(9, 36, 100), 1.0)
    rec.send(mido.Message("clock"), 1.01)
    rec.send(note_on(9, 42, 90), 1.5)
    rec.close(2.0)  # silence: both held notes released, then all notes off
    assert [m.type for _, m in inner.messages][:3] == ["note_on", "clock", "note_on"]
    assert not inner.held and not rec.held
    out = rec.write(tmp_path / "take.mid", [1.0, 1.5, 2.0])
    assert out.exists() and not list(tmp_path.glob("*.tmp*"))
    notes = [m for m in mido.MidiFile(str(out)) if m.type == "note_on" and m.velocity > 0]
    assert [m.note for m in notes] == [36, 42]
