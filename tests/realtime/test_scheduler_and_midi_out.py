"""The live scheduler on a simulated clock into a capture sink, and the real MIDI port on JACK."""

from __future__ import annotations

import time

import mido
import pytest

from rhythmicnet.errors import DeviceError
from rhythmicnet.models.midi_messages import DRUM_CHANNEL, INSTRUMENT_CHANNEL, note_off, note_on
from rhythmicnet.realtime.midi_out import CaptureSink, MidiPortSink, list_output_ports
from rhythmicnet.realtime.scheduler import FREEZE_S, Scheduler, SimulatedClock


def _run(scheduler: Scheduler, clock: SimulatedClock, until: float, dt: float = 0.001) -> None:
    while clock.now() < until:
        clock.advance(dt)
        scheduler.poll()


def test_events_go_out_in_time_order_at_their_time_and_none_late():
    clock, sink = SimulatedClock(10.0), CaptureSink()
    s = Scheduler(sink, clock)
    plan = [(10.30, note_on(DRUM_CHANNEL, 36, 100)), (10.10, note_on(INSTRUMENT_CHANNEL, 60, 80)),
            (10.20, note_off(INSTRUMENT_CHANNEL, 60)), (10.40, note_off(DRUM_CHANNEL, 36))]
    for at, msg in plan:
        s.schedule(at, msg)
    _run(s, clock, 10.5)
    times = [t for t, _ in sink.messages]
    assert [m.note for _, m in sink.messages] == [60, 60, 36, 36]
    assert times == sorted(times)
    for (t, m), (at, msg) in zip(sink.messages, sorted(plan, key=lambda p: p[0]), strict=True):
        assert m == msg and 0 <= t - at < 0.0011  # sent within one poll of its time
    assert s.late_events == 0 and not sink.held and s.pending == 0


def test_a_past_event_is_counted_late_and_sent_at_once():
    clock, sink = SimulatedClock(5.0), CaptureSink()
    s = Scheduler(sink, clock)
    s.schedule(4.99, note_on(DRUM_CHANNEL, 38, 90))
    assert s.late_events == 1
    assert s.poll() == 1 and sink.messages[0][1].note == 38


def test_retime_until_50_ms_before_then_frozen():
    clock, sink = SimulatedClock(0.0), CaptureSink()
    s = Scheduler(sink, clock)
    eid = s.schedule(1.0, note_on(DRUM_CHANNEL, 36, 100))
    assert s.retime(eid, 1.02)  # the beat estimate moved: re-anchored
    clock.advance(1.02 - FREEZE_S + 0.001)
    assert not s.retime(eid, 1.05)  # inside the freeze window: fixed
    _run(s, clock, 1.1)
    assert len(sink.messages) == 1 and abs(sink.messages[0][0] - 1.02) < 0.0011


def test_stop_drops_pending_and_releases_every_held_note():
    clock, sink = SimulatedClock(0.0), CaptureSink()
    s = Scheduler(sink, clock)
    s.schedule(0.01, note_on(DRUM_CHANNEL, 36, 100))
    s.schedule(0.01, note_on(INSTRUMENT_CHANNEL, 64, 70))
    s.schedule(0.50, note_off(INSTRUMENT_CHANNEL, 64))
    _run(s, clock, 0.1)
    assert sink.held == {(DRUM_CHANNEL, 36), (INSTRUMENT_CHANNEL, 64)}
    s.stop()
    assert s.pending == 0 and not sink.held
    tail = [m for _, m in sink.messages[2:]]
    assert {(m.channel, m.note) for m in tail if m.type == "note_off"} == {(DRUM_CHANNEL, 36), (INSTRUMENT_CHANNEL, 64)}
    assert {(m.channel, m.control) for m in tail if m.type == "control_change"} == {
        (c, cc) for c in (INSTRUMENT_CHANNEL, DRUM_CHANNEL) for cc in (120, 123)}


def test_a_missing_port_and_a_bad_api_are_one_line_errors():
    with pytest.raises(DeviceError, match="--midi-api"):
        MidiPortSink(api="nope")
    with pytest.raises(DeviceError) as e:
        MidiPortSink("no such port", api="alsa")  # no ALSA sequencer here, or no such port: one line either way
    assert "\n" not in str(e.value)


@pytest.mark.midi
def test_virtual_port_on_jack_is_read_back_and_closing_silences_it(jack_server: None):
    from rhythmicnet.realtime.midi_out import _backend

    with MidiPortSink(api="jack", virtual_name="RhythmicNetTest") as sink:
        names = [n for n in _backend("jack").get_input_names() if "RhythmicNetTest" in n]
        assert names, _backend("jack").get_input_names()
        inp = _backend("jack").open_input(names[0])
        time.sleep(0.2)
        sink.send(note_on(DRUM_CHANNEL, 36, 100))
        sink.send(note_on(INSTRUMENT_CHANNEL, 60, 90))
        time.sleep(0.2)
    time.sleep(0.3)
    got = list(inp.iter_pending())
    inp.close()
    assert got[:2] == [mido.Message("note_on", channel=DRUM_CHANNEL, note=36, velocity=100),
                       mido.Message("note_on", channel=INSTRUMENT_CHANNEL, note=60, velocity=90)]
    offs = {(m.channel, m.note) for m in got if m.type == "note_off"}
    assert offs == {(DRUM_CHANNEL, 36), (INSTRUMENT_CHANNEL, 60)}  # no hanging note after close
    assert any(m.type == "control_change" and m.control == 123 for m in got)
    assert isinstance(list_output_ports("jack"), list)
