"""The live scheduler: every MIDI event is decided before it is due and sent at its time, on one monotonic
clock (the design notes' "Live timing").

:class:`Scheduler` keeps pending events in time order. An event is added with :meth:`~Scheduler.schedule`
(an absolute time on the clock) and may be re-anchored with :meth:`~Scheduler.retime` (the beat estimate
moved), given a new message with :meth:`~Scheduler.update` (a note's velocity) or dropped with
:meth:`~Scheduler.cancel` until ``freeze_s`` (50 ms) before it is due; after that it is fixed. :meth:`~Scheduler.poll`
sends everything due by ``now``. An event scheduled for a time already past is a fault: it is counted in
``late_events`` and sent at once (the benchmark keeps that figure at 0). :meth:`~Scheduler.stop` drops what
is pending and silences the sink (every held note released, All Notes Off), as does any stop.

The clock is injected: :class:`MonotonicClock` live, :class:`SimulatedClock` in the deterministic tests.
"""

from __future__ import annotations

import heapq
import itertools
import time as _time
from dataclasses import dataclass, field

import mido

from rhythmicnet.realtime.midi_out import MidiSink

__all__ = ["FREEZE_S", "MonotonicClock", "Scheduler", "SimulatedClock"]

#: Times are not frozen until this long before an event is sent.
FREEZE_S = 0.050


class MonotonicClock:
    """Seconds on ``time.monotonic``."""

    def now(self) -> float:
        return _time.monotonic()


@dataclass
class SimulatedClock:
    """A clock the test moves by hand."""

    t: float = 0.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    message: mido.Message = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Scheduler:
    """Pending MIDI events on one clock, sent to ``sink`` at their times."""

    def __init__(self, sink: MidiSink, clock: MonotonicClock | SimulatedClock, *, freeze_s: float = FREEZE_S
                 ) -> None:
        self.sink, self.clock, self.freeze_s = sink, clock, freeze_s
        self._heap: list[_Event] = []
        self._by_id: dict[int, _Event] = {}
        self._ids = itertools.count()
        self.late_events = 0
        self.late_by_type: dict[str, int] = {}  # late events by message type (note_on, clock...)
        self.max_late_ms = 0.0
        self.sent = 0

    def schedule(self, at: float, message: mido.Message) -> int:
        """Add an event at clock time ``at``; returns its id (for :meth:`retime`)."""
        now = self.clock.now()
        if at < now:
            self.late_events += 1
            self.late_by_type[message.type] = self.late_by_type.get(message.type, 0) + 1
            self.max_late_ms = max(self.max_late_ms, (now - at) * 1000)
        ev = _Event(at, next(self._ids), message)
        heapq.heappush(self._heap, ev)
        self._by_id[ev.seq] = ev
        return ev.seq

    def retime(self, event_id: int, at: float) -> bool:
        """Move a pending event to ``at``; refused (False) once it is within ``freeze_s`` of being sent."""
        ev = self._by_id.get(event_id)
        now = self.clock.now()
        if ev is None or ev.cancelled or ev.time - now < self.freeze_s:
            return False
        if abs(at - ev.time) < 1e-6:  # unchanged (the engine re-anchors every frame): no new heap entry
            return True
        ev.cancelled = True
        new = _Event(at, ev.seq, ev.message)
        heapq.heappush(self._heap, new)
        self._by_id[ev.seq] = new
        return True

    def update(self, event_id: int, message: mido.Message) -> bool:
        """Replace a pending event's message (a note's velocity changed); refused (False) once frozen."""
        ev = self._by_id.get(event_id)
        if ev is None or ev.cancelled or ev.time - self.clock.now() < self.freeze_s:
            return False
        ev.message = message
        return True

    def cancel(self, event_id: int) -> bool:
        """Drop a pending event; refused (False) once frozen or sent."""
        ev = self._by_id.get(event_id)
        if ev is None or ev.cancelled or ev.time - self.clock.now() < self.freeze_s:
            return False
        ev.cancelled = True
        del self._by_id[event_id]
        return True

    def next_time(self) -> float | None:
        """The time of the next pending event (None when there is none)."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].time if self._heap else None

    def poll(self) -> int:
        """Send every event due by now, in time order; returns how many were sent."""
        return len(self.poll_sent())

    def poll_sent(self) -> list[tuple[int, float]]:
        """Send every event due by now, in time order; returns (event id, send time) of each."""
        now = self.clock.now()
        sent = []
        while self._heap and self._heap[0].time <= now:
            ev = heapq.heappop(self._heap)
            if ev.cancelled:
                continue
            self._by_id.pop(ev.seq, None)
            self.sink.send(ev.message, now)
            sent.append((ev.seq, now))
        self.sent += len(sent)
        return sent

    @property
    def pending(self) -> int:
        return sum(1 for ev in self._heap if not ev.cancelled)

    def stop(self) -> None:
        """Drop pending events and silence the sink (no note may hang)."""
        self._heap.clear()
        self._by_id.clear()
        self.sink.silence(self.clock.now())
