"""MIDI clock: 24 pulses per quarter at the decoded tempo, smoothed, every pulse planned before it is due."""

import numpy as np

from rhythmicnet.realtime.midi_clock import PPQN, MidiClock
from rhythmicnet.realtime.midi_out import CaptureSink
from rhythmicnet.realtime.scheduler import Scheduler, SimulatedClock


def _play(targets, seconds: float, frame: float = 1 / 30):
    """The engine's loop: every frame, plan the clock toward the current target tempo and send what is due."""
    clock, sink = SimulatedClock(100.0), CaptureSink()
    sched, midi = Scheduler(sink, clock), MidiClock()
    state, msgs = midi.start(clock.now() + 0.05, targets(0.0))
    for at, m in msgs:
        sched.schedule(at, m)
    planned = []
    t_end = clock.now() + seconds
    while clock.now() < t_end:
        state, msgs = midi.plan(state, clock.now(), targets(clock.now() - 100.0))
        planned += [at for at, _ in msgs]
        for at, m in msgs:
            sched.schedule(at, m)
        for _ in range(int(frame / 0.001)):
            clock.advance(0.001)
            sched.poll()
    state, msgs = midi.stop(state, clock.now() + 0.01)
    for at, m in msgs:
        sched.schedule(at, m)
    for _ in range(int((midi.horizon_s + 0.15) / 0.001)):  # the pulses already planned, then Stop
        clock.advance(0.001)
        sched.poll()
    return sink, sched, state, np.array(planned)


def test_pulses_at_the_decoded_tempo_none_late_start_and_stop():
    sink, sched, state, planned = _play(lambda t: 100.0, 5.0)
    types = [m.type for _, m in sink.messages]
    assert types[0] == "start" and types[-1] == "stop"  # no pulse after Stop
    sent = np.array([t for t, m in sink.messages if m.type == "clock"])
    assert sched.late_events == 0 and len(sent) == len(planned)
    np.testing.assert_allclose(np.diff(planned), 60 / (100 * PPQN), atol=1e-9)  # the decoded tempo
    assert np.all((sent - planned >= 0) & (sent - planned < 0.0011))  # each sent on the first poll at its time
    assert abs(len(planned) - 5.0 * 100 / 60 * PPQN) <= PPQN  # about 8.3 beats of pulses


def test_a_tempo_jump_is_followed_smoothly():
    sink, sched, state, planned = _play(lambda t: 100.0 if t < 1.0 else 130.0, 12.0)
    assert sched.late_events == 0
    assert abs(state.tempo_bpm - 130.0) < 1.0  # followed
    bpm = 60.0 / (np.diff(planned) * PPQN)
    # never a jump: pulse to pulse the played tempo moves by far less than the 30 BPM step (smoothing)
    smooth_bpm = np.convolve(bpm, np.ones(PPQN) / PPQN, mode="valid")  # per beat, as a DAW estimates it
    assert np.abs(np.diff(smooth_bpm)).max() < 1.0
    assert smooth_bpm.min() > 95 and smooth_bpm.max() < 135
