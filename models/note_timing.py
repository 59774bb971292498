"""Note timing on the dancer's beat-following grid: bars of drums and notes -> seconds, with the pickup.

The rhythm (:class:`~.rhythm_grid.Rhythm`) gives every 16th step a time (each inter-beat interval split
into 4). Bar 1 starts at its first downbeat; the steps before it are a pickup, which is generated as
whole bars that begin before the clip: :func:`pickup_pad_steps` empty steps go in front of the onsets
(:func:`bar_onsets` cuts the padded onsets into bars), and :func:`timed_notes` takes them out again
when it turns the generated bars into notes with absolute times, dropping what falls before the first
frame or at/after the end.

Timing rules of :func:`timed_notes`: a note's start is its step's time on the grid (:func:`step_time_fn`,
extended past the clip's end with its last step for notes that ring on); a drum hit's offset moves it by
a fraction of its own step, except on the dancer's beats, where it may move at most ``BEAT_LOCK_S``
(the beats stay locked to the movement). Pure functions; numpy in and out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rhythmicnet.models.drum_grid import OUTPUT_PITCHES, DrumGrid
from rhythmicnet.models.midi_messages import DRUM_CHANNEL, INSTRUMENT_CHANNEL
from rhythmicnet.models.remi import BarNote
from rhythmicnet.models.rhythm_grid import STEPS_PER_BAR, Rhythm

__all__ = ["BEAT_LOCK_S", "NoteEvent", "bar_onsets", "pickup_pad_steps", "step_time_fn", "timed_notes"]

#: The groove's micro-timing (the U-Net's offsets, Groove drummers play a 16th's 0.1 behind or ahead,
#: ~15 ms at 100 BPM) stays on every step except the dancer's beats, where a hit moves at most 10 ms:
#: a viewer judges sync at the beats, so they stay locked to the movement.
BEAT_LOCK_S = 0.010


@dataclass(frozen=True)
class NoteEvent:
    """A note with absolute times (seconds from the first frame), MIDI pitch, velocity and channel."""

    start: float
    end: float
    pitch: int
    velocity: int
    channel: int


def pickup_pad_steps(first_downbeat_step: int, steps_per_bar: int = STEPS_PER_BAR) -> int:
    """Empty steps to put in front of the clip's steps so that bar 1 (``first_downbeat_step``) starts a
    bar: the pickup becomes ``ceil(first_downbeat_step / steps_per_bar)`` whole bars. In [0, steps_per_bar)."""
    if first_downbeat_step < 0:
        raise ValueError(f"first_downbeat_step must be >= 0, got {first_downbeat_step}")
    n_pickup_bars = -(-int(first_downbeat_step) // steps_per_bar)
    return n_pickup_bars * steps_per_bar - int(first_downbeat_step)


def bar_onsets(onsets: np.ndarray, first_downbeat_step: int) -> tuple[np.ndarray, int]:
    """The clip's onsets as whole bars from the pickup on.

    ``onsets`` (N,) bool, one per grid step of the clip -> ``bars`` (n_bars, 16) bool (``pad_steps`` empty
    steps in front, the last bar filled up with empty steps) and ``pad_steps`` (see :func:`pickup_pad_steps`).
    """
    onsets = np.asarray(onsets, dtype=bool)
    pad_steps = pickup_pad_steps(first_downbeat_step)
    padded = np.concatenate([np.zeros(pad_steps, bool), onsets])
    n_bars = -(-len(padded) // STEPS_PER_BAR)
    padded = np.concatenate([padded, np.zeros(n_bars * STEPS_PER_BAR - len(padded), bool)])
    return padded.reshape(n_bars, STEPS_PER_BAR), pad_steps


def step_time_fn(step_times: np.ndarray) -> Callable[[np.ndarray | float], np.ndarray]:
    """Fractional step index (>= 0) -> seconds on the grid, extended past its end with the last step.

    ``step_times`` (N,) increasing, N >= 2; the returned function maps any shape of indices to the same
    shape of times (float64).
    """
    t = np.asarray(step_times, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError(f"step_times must be (N,) with N >= 2, got shape {t.shape}")
    last = t[-1] - t[-2]
    idx = np.arange(len(t), dtype=np.float64)

    def f(j: np.ndarray | float) -> np.ndarray:
        j = np.asarray(j, dtype=np.float64)
        return np.where(j > idx[-1], t[-1] + (j - idx[-1]) * last, np.interp(j, idx, t))

    return f


def timed_notes(drums: DrumGrid, bars: Sequence[Sequence[BarNote]] | None, rhythm: Rhythm, pad_steps: int,
                end_time: float, beat_lock_s: float = BEAT_LOCK_S) -> tuple[list[NoteEvent], list[NoteEvent]]:
    """Drum and instrument notes with absolute times.

    ``drums`` (9, S) and ``bars`` (one list of notes per bar of 16 steps) start ``pad_steps`` steps before
    the clip's first grid step (``rhythm.step_times`` (N,)); notes that start before the first frame or
    at/after ``end_time`` are dropped. A drum hit on one of the dancer's beats is moved by its offset at
    most ``beat_lock_s`` seconds (see ``BEAT_LOCK_S``). A drum note lasts half a step (at least 20 ms).
    """
    at = step_time_fn(rhythm.step_times)
    beat_steps = set(np.asarray(rhythm.beat_steps).tolist())
    drum_notes: list[NoteEvent] = []
    cls, step = np.nonzero(drums.hits)
    for c, k in zip(cls.tolist(), step.tolist(), strict=True):
        j = k - pad_steps
        if j < 0:
            continue
        start = float(at(j + float(drums.offsets[c, k])))
        if j in beat_steps:
            on_grid = float(at(j))
            start = on_grid + float(np.clip(start - on_grid, -beat_lock_s, beat_lock_s))
        if not 0.0 <= start < end_time:
            continue
        end = float(at(j + 0.5))
        vel = int(np.clip(round(float(drums.velocities[c, k]) * 127), 1, 127))
        drum_notes.append(NoteEvent(start, max(end, start + 0.02), OUTPUT_PITCHES[c], vel, DRUM_CHANNEL))
    inst_notes: list[NoteEvent] = []
    for b, notes in enumerate(bars or []):
        for n in notes:
            j = b * STEPS_PER_BAR + n.step - pad_steps
            if j < 0:
                continue
            start = float(at(j))
            if start >= end_time:
                continue
            inst_notes.append(NoteEvent(start, float(at(j + n.duration)), n.pitch, n.velocity, INSTRUMENT_CHANNEL))
    return drum_notes, inst_notes
