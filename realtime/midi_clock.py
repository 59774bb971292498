"""MIDI clock (24 pulses per quarter note) that follows the dancer's tempo without making the DAW's wobble.

The beat tracker's tempo moves a little on every frame; a DAW slaved to MIDI clock re-estimates its tempo
from the pulse intervals, so raw estimates would make its tempo jitter. :class:`MidiClock` smooths the
tempo it plays (exponential, time constant ``tau_s``, and at most ``max_rate`` BPM per second) and plans
pulses ``horizon_s`` ahead (250 ms: a loop stalled for less sends no pulse late) into the
:class:`~.scheduler.Scheduler`, so every pulse is decided before it is due. ``start`` sends Start (0xFA) on
the first pulse; ``stop`` sends Stop (0xFC).

A DAW counts bars from the pulses since Start, so the clock must also stay *in phase* with the beat grid
the notes are played on: given the grid's position (in beats) at the next pulse, :meth:`MidiClock.plan`
aims at a tempo that closes the phase error over ``phase_tau_beats`` beats (at most ``max_phase_rate``
of the tempo), and the smoothing above keeps that change gentle.

State is explicit (:class:`ClockState`) and :meth:`MidiClock.plan` is pure: the engine keeps the state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import mido

__all__ = ["PPQN", "ClockState", "MidiClock"]

PPQN = 24


@dataclass(frozen=True)
class ClockState:
    """``next_pulse``: clock time of the next pulse not yet planned (None before start); ``tempo_bpm``: the
    smoothed tempo being played; ``pulses``: pulses planned so far; ``last_update``: time of the last plan."""

    next_pulse: float | None = None
    tempo_bpm: float = 120.0
    pulses: int = 0
    last_update: float | None = None


class MidiClock:
    def __init__(self, *, tau_s: float = 2.0, max_rate: float = 4.0, horizon_s: float = 0.25,
                 phase_tau_beats: float = 4.0, max_phase_rate: float = 0.05) -> None:
        self.tau_s, self.max_rate, self.horizon_s = tau_s, max_rate, horizon_s
        self.phase_tau_beats, self.max_phase_rate = phase_tau_beats, max_phase_rate

    def start(self, at: float, tempo_bpm: float) -> tuple[ClockState, list[tuple[float, mido.Message]]]:
        """Start at clock time ``at``: Start, then the pulses follow from ``at``."""
        return ClockState(at, float(tempo_bpm), 0, at), [(at, mido.Message("start"))]

    def smooth(self, state: ClockState, now: float, target_bpm: float) -> float:
        """The tempo to play after moving towards ``target_bpm`` for the time since the last update."""
        dt = 0.0 if state.last_update is None else max(0.0, now - state.last_update)
        alpha = 1.0 - 2.718281828459045 ** (-dt / self.tau_s)
        step = alpha * (target_bpm - state.tempo_bpm)
        limit = self.max_rate * dt
        return state.tempo_bpm + max(-limit, min(limit, step))

    def plan(self, state: ClockState, now: float, target_bpm: float, grid_beats: float | None = None
             ) -> tuple[ClockState, list[tuple[float, mido.Message]]]:
        """Pulses due before ``now + horizon_s`` at the smoothed tempo; returns the new state and the
        (time, message) pairs to schedule. ``grid_beats``: the beat grid's position (beats since Start) at
        ``state.next_pulse``, to keep the clock in phase with it. Pure."""
        if state.next_pulse is None:
            return state, []
        if grid_beats is not None:
            error = grid_beats - state.pulses / PPQN  # beats the clock is behind the grid
            correction = max(-self.max_phase_rate, min(self.max_phase_rate, error / self.phase_tau_beats))
            target_bpm = target_bpm * (1.0 + correction)
        tempo = self.smooth(state, now, target_bpm)
        period = 60.0 / (tempo * PPQN)
        out = []
        t, n = state.next_pulse, state.pulses
        while t < now + self.horizon_s:
            out.append((t, mido.Message("clock")))
            t += period
            n += 1
        return replace(state, next_pulse=t, tempo_bpm=tempo, pulses=n, last_update=now), out

    def stop(self, state: ClockState, at: float) -> tuple[ClockState, list[tuple[float, mido.Message]]]:
        """Stop at ``at``, or after the pulses already planned when they run past it (a pulse after Stop
        would restart some DAWs' clock)."""
        if state.next_pulse is not None:
            at = max(at, state.next_pulse)
        return ClockState(None, state.tempo_bpm, state.pulses, at), [(at, mido.Message("stop"))]
