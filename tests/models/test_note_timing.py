"""Note timing on the beat-following grid: pickup padding, bars of onsets, step times, timed notes."""

import numpy as np
import pytest

from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.midi_messages import DRUM_CHANNEL, INSTRUMENT_CHANNEL
from rhythmicnet.models.note_timing import bar_onsets, pickup_pad_steps, step_time_fn, timed_notes
from rhythmicnet.models.remi import BarNote
from rhythmicnet.models.rhythm_grid import compose_rhythm


@pytest.mark.parametrize(("first_downbeat", "pad"), [(0, 0), (1, 15), (4, 12), (15, 1), (16, 0), (17, 15)])
def test_pickup_becomes_whole_bars(first_downbeat, pad):
    assert pickup_pad_steps(first_downbeat) == pad
    assert (pad + first_downbeat) % 16 == 0
    with pytest.raises(ValueError):
        pickup_pad_steps(-1)


def test_bar_onsets_pad_the_pickup_and_fill_the_last_bar():
    onsets = np.zeros(30, bool)
    onsets[[0, 4, 29]] = True
    bars, pad = bar_onsets(onsets, first_downbeat_step=4)
    assert pad == 12 and bars.shape == (3, 16) and bars.dtype == bool
    flat = bars.reshape(-1)
    assert not flat[:pad].any()
    assert np.array_equal(flat[pad : pad + 30], onsets)  # the clip's steps, unchanged
    assert not flat[pad + 30 :].any()
    assert bars[1, 0]  # bar 1's downbeat (step 4) starts the second generated bar
    empty, pad0 = bar_onsets(np.zeros(0, bool), 0)
    assert empty.shape == (0, 16) and pad0 == 0


def test_step_times_extend_past_the_grid_with_the_last_step():
    at = step_time_fn(np.array([0.0, 0.25, 0.5, 0.7]))
    assert float(at(1.5)) == pytest.approx(0.375)
    assert float(at(3.0)) == pytest.approx(0.7)
    assert float(at(4.5)) == pytest.approx(0.7 + 1.5 * 0.2)
    assert at(np.array([[0.0, 5.0]])).shape == (1, 2)
    with pytest.raises(ValueError):
        step_time_fn(np.array([1.0]))


def test_beat_hits_stay_locked_and_off_beat_hits_keep_their_feel():
    beats = np.arange(8) * 1.0  # 60 BPM: a 16th is 250 ms
    rhythm = compose_rhythm(beats, np.array([]), duration=8.0)
    hits = np.zeros((9, 32), bool)
    hits[0, 4] = True  # on beat 1 (step 4 = second beat)
    hits[2, 6] = True  # off the beat
    offsets = np.zeros((9, 32), np.float32)
    offsets[0, 4] = offsets[2, 6] = 0.4  # 100 ms late
    grid = DrumGrid.from_arrays(hits, np.full((9, 32), 0.8, np.float32), offsets)
    drums, inst = timed_notes(grid, [[BarNote(2, 60, 90, 4)]], rhythm, pad_steps=0, end_time=8.0)
    starts = sorted((n.pitch, round(n.start, 4)) for n in drums)
    assert starts == [(36, 1.01), (42, 1.6)]
    assert {n.channel for n in drums} == {DRUM_CHANNEL}
    assert [(n.pitch, n.start, n.end, n.channel) for n in inst] == [(60, 0.5, 1.5, INSTRUMENT_CHANNEL)]


def test_pickup_steps_before_the_clip_are_dropped():
    rhythm = compose_rhythm(np.arange(8) * 1.0, np.array([]), duration=8.0)
    hits = np.zeros((9, 32), bool)
    hits[0, [3, 4]] = True  # step 3 falls before the clip with 4 pad steps, step 4 is the clip's step 0
    grid = DrumGrid.from_arrays(hits, np.full((9, 32), 0.8, np.float32), np.zeros((9, 32), np.float32))
    bars = [[BarNote(0, 60, 90, 2), BarNote(8, 62, 90, 2)]]
    drums, inst = timed_notes(grid, bars, rhythm, pad_steps=4, end_time=1.5)
    assert [round(n.start, 4) for n in drums] == [0.0]
    assert [(n.pitch, n.start) for n in inst] == [(62, 1.0)]  # step 8 - 4 pad = grid step 4 = 1.0 s
