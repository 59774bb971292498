"""OSC out (``rhythmicnet live --osc-out HOST:PORT``): what the groove does, for visuals, lights or another
instrument, sent when it happens (the engine's events, :attr:`~.engine.LiveEngine.events`, at the time
they sound, on the live loop's clock; the loop's poller calls :meth:`OscOut.poll` every few ms):

* ``/rhythmicnet/beat`` index (int, quarter notes since bar 1's downbeat), time (float, s since the run
  started): on every beat of the grid the notes are played on;
* ``/rhythmicnet/bar`` index (int, from 0): on every downbeat;
* ``/rhythmicnet/tempo`` BPM (float): on the first beat and on every beat after a change of 0.1 BPM or more;
* ``/rhythmicnet/style`` bar (int), then 16 ints (0/1): on the downbeat of a bar whose drums were planned
  from a different rhythm than the last one's (the beats plus the 16th steps of the dancer's movement
  onsets: the dancer's style);
* ``/rhythmicnet/mode`` follow | lock | hold | tap: when the tempo control changes.

UDP, fire and forget: a receiver that is not there costs nothing.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from rhythmicnet.errors import InputError

__all__ = ["OscOut", "parse_host_port"]

PREFIX = "/rhythmicnet/"


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``PORT`` for 127.0.0.1) -> (host, port); one-line InputError if malformed."""
    host, _, port = text.rpartition(":")
    try:
        p = int(port)
    except ValueError:
        p = -1
    if not 0 < p < 65536:
        raise InputError(f"--osc-out {text!r}: give HOST:PORT, e.g. 127.0.0.1:9001")
    return host or "127.0.0.1", p


class OscOut:
    """Sends the engine's events at their times. ``t0``: the clock time the run started (beat times are sent
    relative to it)."""

    def __init__(self, host: str, port: int, t0: float = 0.0) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.client = SimpleUDPClient(host, port)
        self.t0 = t0
        self.sent = 0
        self.errors = 0
        self._heap: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = itertools.count()

    def add(self, events: list[tuple[float, str, tuple[Any, ...]]]) -> None:
        """Take the engine's new events (the list is emptied)."""
        for at, kind, args in events:
            heapq.heappush(self._heap, (at, next(self._seq), kind, args))
        events.clear()

    def poll(self, now: float) -> int:
        """Send every event due by ``now``; returns how many."""
        n = 0
        while self._heap and self._heap[0][0] <= now:
            _, _, kind, args = heapq.heappop(self._heap)
            if kind == "beat":
                args = (int(args[0]), round(float(args[1]) - self.t0, 4))
            try:
                self.client.send_message(PREFIX + kind, list(args))
                n += 1
            except OSError:  # no route, a full buffer: OSC out never stops the music
                self.errors += 1
        self.sent += n
        return n
