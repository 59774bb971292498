"""Tempo control of live play: which beat grid the engine plays on, the dancer's or the performer's.

Modes (:class:`TempoControl`, held by the :class:`~.engine.LiveEngine`; times on the engine's clock):

* ``follow`` (the default): the grid follows the dancer's predicted grid, tempo and phase.
* ``lock``: the tempo stays where it was when locked; only the phase follows the dancer: each re-anchoring
  moves the grid towards the dancer's predicted beat nearest the next beat, by at most ``LOCK_SLEW`` s per s
  (5 %: a beat moves at most 25 ms per beat at 120 BPM), so a dancer who drifts in tempo cannot drag the
  locked tempo along, and one who shifts phase is caught up with within a few beats.
* ``hold``: tempo and phase freeze; the music plays on at the held grid whatever the dancer does.
* ``tap``: the grid of the taps (the median interval of the last taps, the last tap on a beat), then held.
  Taps more than ``TAP_RESET_S`` apart start a new tap sequence.
* :meth:`TempoControl.release` goes back to ``follow``.

:meth:`TempoControl.target` says, for one re-anchoring, which grid to align to and at which period to
play; :class:`TapTempo` is the pure tap arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FOLLOW", "HOLD", "LOCK", "LOCK_SLEW", "MODES", "TAP", "TAP_RESET_S", "Target", "TapTempo", "TempoControl"]

FOLLOW, LOCK, HOLD, TAP = "follow", "lock", "hold", "tap"
MODES = (FOLLOW, LOCK, HOLD, TAP)
#: A tap further than this after the previous one starts a new tap sequence.
TAP_RESET_S = 2.0
#: In lock, the phase moves towards the dancer's by at most this many seconds per second.
LOCK_SLEW = 0.05
#: Intervals the tempo of the taps is the median of.
TAP_KEEP = 8


@dataclass(frozen=True)
class TapTempo:
    """The taps of the current sequence (clock s, increasing)."""

    taps: tuple[float, ...] = ()

    def add(self, t: float) -> TapTempo:
        """One more tap; a tap after a long pause (or before the last) starts a new sequence."""
        if self.taps and not 0.0 < t - self.taps[-1] <= TAP_RESET_S:
            return TapTempo((t,))
        return TapTempo((*self.taps, t)[-(TAP_KEEP + 1):])

    def grid(self, min_period_s: float, max_period_s: float) -> tuple[float, float] | None:
        """(time of the last tap, period) from two taps or more, the period the median interval clipped
        to the tempo range; None from fewer."""
        if len(self.taps) < 2:
            return None
        period = float(np.clip(np.median(np.diff(self.taps)), min_period_s, max_period_s))
        return self.taps[-1], period


@dataclass(frozen=True)
class Target:
    """One re-anchoring: align the next beat to the nearest beat of the grid (``anchor``, ``match_period``)
    and play at ``period``; ``slew``: the most the phase may move per second of time since the last
    re-anchoring (None: at once)."""

    anchor: float
    match_period: float
    period: float
    slew: float | None = None


class TempoControl:
    """The mode and the taps (see the module docstring). ``min_period_s`` / ``max_period_s``: the tempo
    range taps are clipped to."""

    def __init__(self, min_period_s: float = 60.0 / 240.0, max_period_s: float = 60.0 / 40.0) -> None:
        self.min_period_s, self.max_period_s = min_period_s, max_period_s
        self.mode = FOLLOW
        self.taps = TapTempo()

    def lock(self) -> None:
        self.mode = LOCK

    def hold(self) -> None:
        self.mode = HOLD

    def release(self) -> None:
        self.mode = FOLLOW

    def toggle(self, mode: str) -> None:
        """Key-press semantics: the mode if not in it, else back to following the dancer."""
        if mode not in (LOCK, HOLD):
            raise ValueError(f"only lock and hold toggle; got {mode!r}")
        self.mode = FOLLOW if self.mode == mode else mode

    def tap(self, t: float) -> Target | None:
        """A tap at clock time ``t``. From the second tap of a sequence on, the mode is ``tap`` and the
        returned target is the taps' grid (align once to it, then hold); None before."""
        self.taps = self.taps.add(t)
        grid = self.taps.grid(self.min_period_s, self.max_period_s)
        if grid is None:
            return None
        self.mode = TAP
        last, period = grid
        return Target(last, period, period)

    def target(self, anchor: float, dancer_period: float, playing_period: float) -> Target | None:
        """For the dancer's predicted grid (``anchor`` a beat on the engine's clock, ``dancer_period``) and
        the period being played: the target of this re-anchoring, or None to keep the grid as it is."""
        if self.mode == FOLLOW:
            return Target(anchor, dancer_period, dancer_period)
        if self.mode == LOCK:
            return Target(anchor, dancer_period, playing_period, LOCK_SLEW)
        return None
