"""Ableton Link (``rhythmicnet live --link``): the dancer's tempo and beat phase published to a Link session,
so Link apps (Ableton Live, Bitwig, Traktor, phone apps...) follow without MIDI clock.

Link is the optional ``aalink`` package (``pip install 'rhythmicnet[link]'``), GPL-3.0-or-later: it is
imported only when ``--link`` is given, so the rest of RhythmicNet stays under its own licence.

:class:`LinkSync` is one Link peer with quantum 4 (a bar). The live loop's poller calls
:meth:`LinkSync.update` every few ms with the engine's grid (bar 0's downbeat ``origin`` and ``period``, on
the loop's clock). It sets the session tempo when it differs by ``TEMPO_EPS`` BPM or more, and when the
session's bar phase at this moment is more than ``PHASE_EPS`` beats from the grid's (beats since bar 0,
modulo 4) it forces the grid's beat onto the session timeline, so the session's bars fall on the groove's
bars (Link times are when the sound is heard: the grid's beat times, not the earlier MIDI send times). The
Link clock and the loop's are read back to back on each update; only the grid's position at "now" crosses
between them.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["PHASE_EPS", "TEMPO_EPS", "LinkSync", "open_link"]

#: Session tempo changes smaller than this (BPM) are not published.
TEMPO_EPS = 0.01
#: The session's beat may differ from the grid's by this much (beats) before it is forced back.
PHASE_EPS = 0.02
QUANTUM = 4.0


def open_link(bpm: float = 120.0) -> Any:
    """An enabled aalink ``Link`` peer on the running loop; a missing package is a one-line error."""
    from rhythmicnet.errors import InputError

    try:
        from aalink import Link
    except ImportError:
        raise InputError("--link needs the aalink package: pip install 'rhythmicnet[link]' (GPL-3.0-or-later)"
                         ) from None
    try:
        link = Link(bpm)
    except TypeError:  # aalink < 0.2 wants the loop
        link = Link(bpm, asyncio.get_running_loop())
    link.quantum = QUANTUM
    link.enabled = True
    return link


class LinkSync:
    """Publishes the groove's grid to a Link peer (see the module docstring)."""

    def __init__(self, link: Any) -> None:
        self.link = link
        self.tempo_updates = 0
        self.phase_updates = 0

    def update(self, now: float, origin: float | None, period: float) -> None:
        """The grid at loop time ``now``: bar 0's downbeat ``origin`` (None before it is chosen: nothing is
        published) and ``period`` (s per beat)."""
        if origin is None:
            return
        bpm = 60.0 / period
        if abs(float(self.link.tempo) - bpm) >= TEMPO_EPS:
            self.link.tempo = bpm
            self.tempo_updates += 1
        beat = (now - origin) / period
        error = (float(self.link.beat) - beat + QUANTUM / 2) % QUANTUM - QUANTUM / 2  # bar phase, beats
        if abs(error) > PHASE_EPS:
            self.link.force_beat(beat)
            self.phase_updates += 1

    @property
    def peers(self) -> int:
        return int(self.link.num_peers)

    def close(self) -> None:
        self.link.enabled = False
