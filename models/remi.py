"""REMI tokens for Drum2Music: one bar of drums or of piano/guitar as a word sequence.

(Work in progress: the vocabulary and grammar follow below; :class:`BarNote` is the bar-level note
that the data readers and the model share.)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BarNote", "STEPS_PER_BAR", "MAX_DURATION_STEPS", "PITCH_RANGE"]

STEPS_PER_BAR = 16
#: Longest note duration kept, in 16th steps (two bars); longer notes are clipped.
MAX_DURATION_STEPS = 32
#: Playable pitches (piano A0..C8); notes outside are dropped.
PITCH_RANGE = (21, 108)


@dataclass(frozen=True, order=True)
class BarNote:
    """One pitched note inside a 4/4 bar, on the 16th grid.

    ``step`` 0..15 (onset within the bar), ``pitch`` MIDI 21..108, ``velocity`` MIDI 1..127,
    ``duration`` in 16th steps, 1..MAX_DURATION_STEPS (may run past the bar's end).
    """

    step: int
    pitch: int
    velocity: int
    duration: int
