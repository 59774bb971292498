"""Rhythm composition on a 16th-note grid that follows the beats (paper: "Rhythm Composition").

The grid splits every inter-beat interval into 4 steps, so it follows tempo drift. Before the first
beat and after the last one the grid is extended with the first and last inter-beat interval (a
pickup and a tail) so no style event in the clip is lost; steps are kept only inside the clip.
Rhythm = beats (every 4th step from the first beat) ∪ style events, each snapped to its nearest step.

Bars (4/4, the design notes' rule): bar 1 starts at the first downbeat; without a learned downbeat it
is the first beat, so the steps before it are a pickup. ``Rhythm.bar_of_step`` gives the bar index
(0 = bar 1, negative = pickup) and ``Rhythm.step_in_bar`` the position 0..15.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEPS_PER_BEAT = 4
BEATS_PER_BAR = 4
STEPS_PER_BAR = STEPS_PER_BEAT * BEATS_PER_BAR


def sixteenth_grid(beats: np.ndarray, duration: float) -> tuple[np.ndarray, int]:
    """16th-note step times over [0, duration) following the beats.

    Returns:
        steps: (N,) step times in seconds, increasing;
        first_beat_step: index of the step that falls on ``beats[0]``.
    Needs at least two beats (one interval); raises ValueError otherwise.
    """
    beats = np.asarray(beats, dtype=np.float64)
    if len(beats) < 2:
        raise ValueError("a 16th grid needs at least two beats")
    if np.any(np.diff(beats) <= 0):
        raise ValueError("beat times must be strictly increasing")
    frac = np.arange(STEPS_PER_BEAT) / STEPS_PER_BEAT
    inner = [b0 + (b1 - b0) * frac for b0, b1 in zip(beats[:-1], beats[1:], strict=True)]
    first_ibi, last_ibi = beats[1] - beats[0], beats[-1] - beats[-2]
    n_pre = int(np.floor(beats[0] / (first_ibi / STEPS_PER_BEAT) + 1e-9))
    pre = beats[0] - first_ibi / STEPS_PER_BEAT * np.arange(n_pre, 0, -1)
    n_post = int(np.ceil((duration - beats[-1]) / (last_ibi / STEPS_PER_BEAT) - 1e-9))
    post = beats[-1] + last_ibi / STEPS_PER_BEAT * np.arange(max(n_post, 0))
    steps = np.concatenate([pre, *inner, post])
    keep = (steps >= -1e-9) & (steps < duration - 1e-9)
    first_beat_step = int(np.sum(steps[: len(pre)] >= -1e-9))
    return steps[keep], first_beat_step


def snap_to_steps(times: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Index of the nearest grid step for each time. Shapes: (E,), (N,) -> (E,) int."""
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0 or len(steps) == 0:
        return np.zeros(0, dtype=int)
    idx = np.clip(np.searchsorted(steps, times), 1, len(steps) - 1)
    left, right = steps[idx - 1], steps[idx]
    return np.where(times - left <= right - times, idx - 1, idx).astype(int)


@dataclass(frozen=True)
class Rhythm:
    """The rhythm of a clip: a binary onset per 16th step. Shapes: step_times (N,), onsets (N,) bool."""

    step_times: np.ndarray
    onsets: np.ndarray
    beat_steps: np.ndarray  # (B,) indices of the steps that carry a beat
    style_steps: np.ndarray  # (E',) unique indices of the steps that carry a style event
    first_downbeat_step: int

    @property
    def num_steps(self) -> int:
        return int(len(self.step_times))

    def bar_of_step(self, step: int | np.ndarray) -> np.ndarray:
        return np.floor_divide(np.asarray(step) - self.first_downbeat_step, STEPS_PER_BAR)

    def step_in_bar(self, step: int | np.ndarray) -> np.ndarray:
        return np.mod(np.asarray(step) - self.first_downbeat_step, STEPS_PER_BAR)

    def density(self) -> float:
        """Share of steps with an onset (the paper's beats + style give roughly 30-45 %)."""
        return float(self.onsets.mean()) if self.num_steps else 0.0


def compose_rhythm(beats: np.ndarray, style_times: np.ndarray, duration: float,
                   first_downbeat: float | None = None) -> Rhythm:
    """Beats ∪ style on the beat-following 16th grid.

    Args:
        beats: (B,) beat times, seconds, at least two.
        style_times: (E,) style event times, seconds.
        duration: clip length in seconds.
        first_downbeat: time of bar 1's downbeat (a beat time); default the first beat.
    """
    steps, first_beat_step = sixteenth_grid(beats, duration)
    onsets = np.zeros(len(steps), dtype=bool)
    beat_steps = first_beat_step + STEPS_PER_BEAT * np.arange(len(beats))
    beat_steps = beat_steps[beat_steps < len(steps)]
    onsets[beat_steps] = True
    style_steps = np.unique(snap_to_steps(style_times, steps))
    onsets[style_steps] = True
    downbeat_step = first_beat_step
    if first_downbeat is not None:
        downbeat_step = int(snap_to_steps(np.array([first_downbeat]), steps)[0])
    return Rhythm(steps, onsets, beat_steps.astype(int), style_steps, downbeat_step)
