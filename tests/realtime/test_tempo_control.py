"""Tempo control (lock, hold, tap, release), the count-in, start/stop and the drum map, on the simulated clock.

The engine here is the real one (scheduler, MIDI clock, Rhythm2Drum's drummer) fed by a scripted rhythm stage:
a "dancer" whose predicted beat grid is known exactly (120 BPM, then 100 BPM from 8 s), so what each
control does to the grid and the clock can be checked to the millisecond.
"""

from __future__ import annotations

import numpy as np
import pytest

from rhythmicnet.models.beat_hmm import BeatEstimate
from rhythmicnet.models.beat_predictor import BeatGrid
from rhythmicnet.models.live_rhythm import LiveFrame
from rhythmicnet.models.midi_messages import DRUM_MAPS
from rhythmicnet.models.rhythm2drum import Rhythm2Drum
from rhythmicnet.models.rhythm2drum import SamplingConfig as DrumSampling
from rhythmicnet.realtime.bar_planner import InlinePlanner
from rhythmicnet.realtime.engine import LiveEngine
from rhythmicnet.realtime.midi_clock import PPQN, MidiClock
from rhythmicnet.realtime.midi_out import CaptureSink
from rhythmicnet.realtime.scheduler import Scheduler, SimulatedClock
from rhythmicnet.realtime.tempo_control import TapTempo, TempoControl

FPS = 30.0
CHANGE_AT = 8.0  # the dancer slows from 120 to 100 BPM here (a beat at 8.0 s: phase continuous)
POLL_S = 0.002


def dancer_beats(until: float, period: float = 0.6, shift: float = 0.0) -> np.ndarray:
    """120 BPM until CHANGE_AT, then ``period`` from CHANGE_AT + ``shift``."""
    a = np.arange(0.0, CHANGE_AT, 0.5)
    return np.concatenate([a, np.arange(CHANGE_AT + shift, until, period)])


class ScriptedRhythm:
    """Stands in for LiveRhythm: one model frame per input frame, a decided beat on the frame after each of
    the dancer's beats, and the dancer's exact grid."""

    def __init__(self, period: float = 0.6, shift: float = 0.0) -> None:
        self.beats = dancer_beats(200.0, period, shift)
        self.period, self.shift = period, shift
        self.last = -1.0

    def process_online(self, t: float, keypoints: np.ndarray, confidence: np.ndarray) -> list[LiveFrame]:
        decided = bool(np.any((self.beats > self.last) & (self.beats <= t)))
        self.last = t
        grid = BeatGrid(CHANGE_AT, 0.5) if t < CHANGE_AT else BeatGrid(CHANGE_AT + self.shift, self.period)
        est = BeatEstimate(t, decided, 0.0, grid.tempo_bpm, np.zeros(4))
        return [LiveFrame(t, 0.0, 0.0, est, False, grid)]


@pytest.fixture(scope="module")
def drums():
    return Rhythm2Drum.load()


def make(drums, dancer: ScriptedRhythm | None = None, **kw):
    clock, sink = SimulatedClock(0.0), CaptureSink()
    engine = LiveEngine(dancer or ScriptedRhythm(), InlinePlanner(drums.performer(DrumSampling(seed=0))),  # type: ignore[arg-type]
                        Scheduler(sink, clock), clock=MidiClock(), tempo=TempoControl(), **kw)
    return engine, clock, sink


def run(engine, clock, until: float, actions=(), frames_gap=None) -> None:
    """Frames at 30 fps (none inside ``frames_gap``), 2 ms polls; ``actions``: (time, callable(now))."""
    todo = sorted(actions, key=lambda a: a[0])
    kp, conf = np.zeros((17, 2), np.float32), np.ones(17, np.float32)
    next_frame = 0.0
    while clock.now() < until:
        clock.advance(POLL_S)
        now = clock.now()
        while todo and todo[0][0] <= now:
            todo.pop(0)[1](now)
        if now >= next_frame:
            if frames_gap is None or not frames_gap[0] <= next_frame < frames_gap[1]:
                engine.on_frame(next_frame, kp, conf, now)
            next_frame += 1 / FPS
        engine.poll()
    engine.stop()


def pulses(sink, after: float, before: float = np.inf) -> np.ndarray:
    return np.array([t for t, m in sink.messages if m.type == "clock" and after <= t < before])


def clock_bpm(sink, after: float, before: float = np.inf) -> float:
    """The MIDI clock's tempo over a window (pulses are sent on 2 ms polls: the mean interval)."""
    p = pulses(sink, after, before)
    return 60.0 / ((p[-1] - p[0]) / (len(p) - 1) * PPQN)


@pytest.mark.slow
def test_follow_moves_to_the_dancers_new_tempo(drums):
    engine, clock, sink = make(drums)
    run(engine, clock, 14.0)
    grid = np.array(engine.stats.beat_grid)
    assert engine.period == pytest.approx(0.6)
    assert np.allclose(np.diff(grid[grid > CHANGE_AT + 1]), 0.6, atol=1e-6)
    assert clock_bpm(sink, 12.0) == pytest.approx(100.0, rel=0.02)


@pytest.mark.parametrize("shift, gap", [(0.2, 0.7), (0.35, 0.35)])
def test_follow_moves_the_next_beat_to_the_dancers_nearest_beat(drums, shift, gap):
    """The dancer's predicted phase jumps (120 BPM on, shifted by ``shift`` at 8 s): following, the next beat
    not yet frozen goes to the predicted beat nearest it, at once (the design: notes re-anchor to the latest
    estimate). One interval of the sent grid is ``gap`` (0.5 + 0.2 later; 0.5 - 0.15 earlier, 0.35 being
    nearer than 0.85), none skipped or doubled, and every later beat is on the dancer's new grid."""
    engine, clock, _ = make(drums, ScriptedRhythm(period=0.5, shift=shift))
    run(engine, clock, 12.0)
    grid = np.array(engine.stats.beat_grid)
    steps = np.diff(grid)
    jumped = np.flatnonzero(np.abs(steps - 0.5) > 1e-6)
    assert len(jumped) == 1 and steps[jumped[0]] == pytest.approx(gap, abs=1e-6), steps
    assert CHANGE_AT - 0.1 < grid[jumped[0]] <= CHANGE_AT + 0.05  # the beat at 8 s was sent before the jump
    after = grid[jumped[0] + 1:]
    assert np.allclose((after - CHANGE_AT - shift) / 0.5, np.round((after - CHANGE_AT - shift) / 0.5), atol=1e-6)


def test_hold_freezes_tempo_and_phase_and_release_follows_again(drums):
    engine, clock, sink = make(drums)
    run(engine, clock, 18.0, [(6.0, lambda now: engine.hold()), (13.0, lambda now: engine.release())])
    grid = np.array(engine.stats.beat_grid)
    held = grid[(grid > 6.2) & (grid < 13.0)]
    # the 120 BPM grid of before the hold plays on, beat for beat, while the dancer slows to 100
    assert np.allclose(np.diff(held), 0.5, atol=1e-6) and len(held) >= 12
    assert np.allclose((held - 0.5 * np.round(held / 0.5)), held[0] - 0.5 * round(held[0] / 0.5), atol=1e-6)
    bpm = clock_bpm(sink, 9.0, 13.0)
    assert bpm == pytest.approx(120.0, rel=0.01)
    # released: back on the dancer's 100 BPM grid
    assert engine.mode == "follow" and engine.period == pytest.approx(0.6)
    late = grid[grid > 14.0]
    assert np.allclose(np.diff(late), 0.6, atol=1e-6)
    assert np.allclose((late - CHANGE_AT) / 0.6, np.round((late - CHANGE_AT) / 0.6), atol=1e-4)


def test_lock_keeps_the_tempo_when_the_dancer_changes_it(drums):
    engine, clock, sink = make(drums)
    run(engine, clock, 15.0, [(6.0, lambda now: engine.lock())])
    assert engine.mode == "lock" and engine.period == 0.5  # the dancer went to 0.6 s a beat
    grid = np.array(engine.stats.beat_grid)
    steps = np.diff(grid[grid > CHANGE_AT])
    # the phase slews towards the dancer's nearest beat by at most 5 % (25 ms a beat) either way: the beats
    # stay 0.5 s apart on average, where following would have made them 0.6
    assert np.all(np.abs(steps - 0.5) <= 0.5 * 0.05 + 2e-3), steps
    assert abs(np.mean(steps) - 0.5) < 0.01
    bpm = clock_bpm(sink, 10.0)
    assert bpm == pytest.approx(120.0, rel=0.03)


@pytest.mark.slow
def test_lock_follows_a_phase_shift_of_the_dancer(drums):
    engine, clock, sink = make(drums, ScriptedRhythm(period=0.5, shift=0.1))  # 100 ms later from 8 s on
    run(engine, clock, 14.0, [(6.0, lambda now: engine.lock())])
    grid = np.array(engine.stats.beat_grid)
    dancer = dancer_beats(30.0, 0.5, 0.1)
    err = np.array([np.min(np.abs(dancer - g)) for g in grid[grid > 11.0]])
    assert np.max(err) < 0.003, err  # caught up (100 ms at <= 25 ms a beat: 4-5 beats)
    assert engine.period == 0.5

    held, hclock, _ = make(drums, ScriptedRhythm(period=0.5, shift=0.1))
    run(held, hclock, 14.0, [(6.0, lambda now: held.hold())])
    hgrid = np.array(held.stats.beat_grid)
    herr = np.array([np.min(np.abs(dancer - g)) for g in hgrid[hgrid > 11.0]])
    assert np.min(herr) > 0.09  # hold does not follow it


def test_tap_tempo_sets_tempo_and_phase_and_the_clock_follows(drums):
    engine, clock, sink = make(drums)
    taps = [6.0 + 0.4 * k for k in range(4)]  # 150 BPM
    run(engine, clock, 16.0, [(t, engine.tap) for t in taps])
    assert engine.mode == "tap" and engine.period == pytest.approx(0.4)
    grid = np.array(engine.stats.beat_grid)
    after = grid[grid > 7.5]
    assert np.allclose(np.diff(after), 0.4, atol=1e-6)
    # on the taps' beats (each tap lands on the first 1 ms poll after its time)
    assert np.allclose((after - 6.0) / 0.4, np.round((after - 6.0) / 0.4), atol=0.01)
    # the MIDI clock jumps to a tapped tempo (no 4 BPM/s smoothing), then closes the phase gap the jump left
    # (the pulses already sent) at most 5 % faster, and plays the taps' tempo
    assert clock_bpm(sink, 7.3, 8.0) == pytest.approx(150.0, rel=0.02)
    assert all(clock_bpm(sink, a, a + 1.0) == pytest.approx(150.0, rel=0.055) for a in range(8, 15))
    assert clock_bpm(sink, 14.5) == pytest.approx(150.0, rel=0.01)
    assert engine.stats.taps == 4


@pytest.mark.slow
def test_four_taps_start_the_music_before_the_warm_up(drums):
    engine, clock, sink = make(drums)
    taps = [0.3 + 0.5 * k for k in range(4)]
    run(engine, clock, 4.0, [(t, engine.tap) for t in taps])
    grid = np.array(engine.stats.beat_grid)
    # bar 1 starts on the taps' grid at the first beat 0.7 s (the planning lead) after the fourth tap, long
    # before the warm-up (6 decided beats: 3.0 s here) would have started it
    assert taps[-1] + 0.7 <= grid[0] <= taps[-1] + 1.25
    assert np.allclose((grid - taps[0]) / 0.5, np.round((grid - taps[0]) / 0.5), atol=0.01)
    assert engine.stats.first_note_time is not None and engine.stats.first_note_time < grid[0] + 2.0


def test_tap_arithmetic():
    t = TapTempo()
    for x in (1.0, 1.5, 2.0, 2.6):
        t = t.add(x)
    assert t.grid(0.25, 1.5) == (2.6, pytest.approx(0.5))
    assert t.add(10.0).taps == (10.0,)  # a pause starts a new sequence
    assert TapTempo((1.0,)).grid(0.25, 1.5) is None


def test_count_in_clicks_the_bar_before_bar_1_and_clock_starts_on_it(drums):
    engine, clock, sink = make(drums, count_in=True)
    run(engine, clock, 7.0)
    grid = engine.stats.beat_grid
    clicks = [(t, m.note, m.velocity) for t, m in sink.messages if m.type == "note_on" and m.note in (76, 77)]
    assert [n for _, n, _ in clicks] == [76, 77, 77, 77]
    assert np.allclose([t for t, _, _ in clicks], grid[0] - 0.5 * np.arange(4, 0, -1), atol=3e-3)
    start = next(t for t, m in sink.messages if m.type == "start")
    assert 0 <= start - grid[0] <= POLL_S + 1e-4
    # (a drum hit may come a few ms early: the groove's micro-timing)
    drums_before = [t for t, m in sink.messages
                    if m.type == "note_on" and m.note not in (76, 77) and t < grid[0] - 0.03]
    assert drums_before == []


def test_start_stop_silences_from_a_downbeat_and_restarts_with_a_count_in(drums):
    engine, clock, sink = make(drums, ScriptedRhythm(period=0.5), count_in=True)
    run(engine, clock, 14.0, [(5.1, engine.start_stop), (8.3, engine.start_stop)])
    notes = [t for t, m in sink.messages if m.type == "note_on" and m.note not in (76, 77)]
    stop = next(t for t, m in sink.messages if m.type == "stop")
    starts = [t for t, m in sink.messages if m.type == "start"]
    assert len(starts) == 2 and stop < starts[1]
    silent = [t for t in notes if stop + 1e-3 < t < starts[1] - 1e-3]
    assert silent == []
    assert stop >= 5.1 + 0.3 and any(5.1 < t < stop for t in notes)  # plays to the stop's downbeat
    grid = np.array(engine.stats.beat_grid)
    for t, late in ((stop, 0.025), (starts[1], POLL_S + 1e-4)):  # both on downbeats (Stop within a clock pulse)
        i = int(np.argmin(np.abs(grid - t)))
        assert 0 <= t - grid[i] <= late and i % 4 == 0, (t, grid[i], i)
    clicks = [t for t, m in sink.messages if m.type == "note_on" and m.note in (76, 77) and t > stop]
    assert len(clicks) == 4 and starts[1] - clicks[0] == pytest.approx(4 * engine.period, abs=0.01)
    assert any(t >= starts[1] for t in notes)
    assert not sink.held and engine.scheduler.late_events == 0


def test_no_frames_for_seconds_keeps_time_and_fades(drums):
    """An input that stops (an OSC sender gone): the engine notices from its polls, keeps the grid and the
    clock going, fades the notes out, and comes back when frames do."""
    engine, clock, sink = make(drums)
    run(engine, clock, 19.0, frames_gap=(5.0, 14.0))
    assert engine.stats.departures == 1
    grid = np.array(engine.stats.beat_grid)
    assert np.allclose(np.diff(grid[(grid > 4.0) & (grid < 14.0)]), 0.5, atol=1e-6)  # held at 120
    assert len(pulses(sink, 6.0, 14.0)) > 7.5 * 48  # the MIDI clock runs on
    vel = [(t, m.velocity) for t, m in sink.messages if m.type == "note_on"]
    assert any(t > 14.3 for t, _ in vel)  # resumed
    # left at 5.5 s: the bar it is in, then two bars fading (2 s each): silent from 11.5 s at the latest
    assert not [t for t, _ in vel if 11.6 < t < 14.0]


@pytest.mark.slow
def test_drum_rack_map_moves_the_drum_notes(drums):
    engine, clock, sink = make(drums, drum_map=DRUM_MAPS["drum-rack"])
    run(engine, clock, 6.0)
    notes = {m.note for _, m in sink.messages if m.type == "note_on"}
    assert notes and notes <= set(range(36, 45))
