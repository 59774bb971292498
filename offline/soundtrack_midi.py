"""The soundtrack as MIDI whose beat grid is the dancer's: a tempo map from the decoded beats.

``render`` places every note on the 16th grid of :mod:`rhythmicnet.models.rhythm_grid` (each
inter-beat interval split into 4), so the MIDI file uses that grid as its ticks: step ``j`` of the
clip sits at tick ``(j + 1) * Q`` (``Q`` = ticks per 16th) and a ``set_tempo`` event wherever the
length of a 16th changes (at every beat, since the beats drift). Tick 0 is the video's first frame:
the sliver of time before the grid's first step (less than a 16th) is one short 16th of its own
tempo. Opened in a DAW, the bar lines and beats of the file fall on the dancer's beats.

Bars: bar 1 starts at the first downbeat (``Rhythm.first_downbeat_step``). What comes before it is a
pickup: a first bar of ``n/16`` holding the remainder, then whole 4/4 bars up to bar 1 when the
dancer starts late. Note times (seconds) map to ticks by the inverse of the tempo map, so a drum
offset or a long note lands where it sounds.

Notes come in as :class:`~rhythmicnet.models.note_timing.NoteEvent` (seconds, timed by
:func:`~rhythmicnet.models.note_timing.timed_notes`).

Files: ``conductor_track`` (tempo + metre), one track per part; ``soundtrack_file`` puts any set of
parts together (drums.mid, piano.mid and soundtrack.mid are all made by it).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import mido
import numpy as np

from rhythmicnet.fileio import write_bytes_atomic
from rhythmicnet.models.note_timing import NoteEvent

__all__ = ["TempoMap", "conductor_track", "part_track", "soundtrack_file", "write_midi"]

TICKS_PER_BEAT = 480
Q = TICKS_PER_BEAT // 4  # ticks per 16th
MIN_STEP_S = 1e-3  # a pre-roll shorter than this is not worth its own tempo


class TempoMap:
    """Seconds <-> ticks for a grid of 16th steps. step_times (N,) increasing, N >= 2.

    ``first_downbeat_step``: the step of bar 1's downbeat (0 <= it < N).
    """

    def __init__(self, step_times: np.ndarray, first_downbeat_step: int) -> None:
        t = np.asarray(step_times, dtype=np.float64)
        # a first step a rounding error below 0 (-2.8e-17 s, from the grid's arithmetic) is the first frame
        if t.ndim != 1 or len(t) < 2 or np.any(np.diff(t) <= 0) or t[0] < -1e-9:
            raise ValueError("step times must be >= 0, strictly increasing, at least two")
        self.pre_roll = t[0] >= MIN_STEP_S
        offset = 1 if self.pre_roll else 0
        knots_t = np.concatenate([[0.0], t]) if self.pre_roll else t.copy()
        if not self.pre_roll:
            knots_t[0] = 0.0  # the first step is (within a millisecond) the first frame
        self.knot_times = knots_t
        self.knot_ticks = np.arange(len(knots_t), dtype=np.int64) * Q
        self.first_downbeat_step = int(first_downbeat_step)
        self.downbeat_tick = (self.first_downbeat_step + offset) * Q
        self._last_step = float(knots_t[-1] - knots_t[-2])

    def ticks(self, times: np.ndarray | float) -> np.ndarray:
        """Seconds -> ticks (rounded), extrapolating past the grid with its last 16th."""
        t = np.asarray(times, dtype=np.float64)
        inside = np.interp(t, self.knot_times, self.knot_ticks.astype(np.float64))
        after = self.knot_ticks[-1] + (t - self.knot_times[-1]) / self._last_step * Q
        return np.rint(np.where(t > self.knot_times[-1], after, inside)).astype(np.int64)

    def tempo_events(self) -> list[tuple[int, int]]:
        """(tick, microseconds per quarter) at every change of the 16th's length (and at tick 0)."""
        lengths = np.diff(self.knot_times)
        out: list[tuple[int, int]] = []
        for i, d in enumerate(lengths):
            us = int(round(d * 4 * 1e6))
            us = min(max(us, 1), 0xFFFFFF)
            if not out or abs(out[-1][1] - us) > 1:
                out.append((int(self.knot_ticks[i]), us))
        return out

    def metre_events(self) -> list[tuple[int, int, int]]:
        """(tick, numerator, denominator): a pickup bar of n/16 if needed, then 4/4 from the bar lines."""
        pickup = int(self.downbeat_tick // Q) % 16
        if pickup == 0:
            return [(0, 4, 4)]
        return [(0, pickup, 16), (pickup * Q, 4, 4)]


def conductor_track(tempo: TempoMap, end_tick: int, name: str = "tempo map") -> mido.MidiTrack:
    events: list[tuple[int, int, mido.MetaMessage]] = [(0, 0, mido.MetaMessage("track_name", name=name))]
    events += [(tick, 1, mido.MetaMessage("time_signature", numerator=n, denominator=d))
               for tick, n, d in tempo.metre_events()]
    events += [(tick, 2, mido.MetaMessage("set_tempo", tempo=us)) for tick, us in tempo.tempo_events()]
    return _track(events, end_tick)


def part_track(notes: Sequence[NoteEvent], tempo: TempoMap, *, name: str, program: int | None,
               channel: int) -> mido.MidiTrack:
    """One part's notes; a note that would overlap the next of its pitch is cut there."""
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = [
        (0, 0, mido.MetaMessage("track_name", name=name))]
    if program is not None:
        events.append((0, 1, mido.Message("program_change", channel=channel, program=int(program))))
    on = tempo.ticks(np.array([n.start for n in notes]))
    off = tempo.ticks(np.array([n.end for n in notes]))
    order = np.lexsort((np.array([n.pitch for n in notes]), on)) if len(notes) else np.zeros(0, int)
    next_on: dict[int, int] = {}
    for i in order[::-1]:
        n = notes[int(i)]
        t_on = int(max(on[i], 0))
        t_off = max(int(off[i]), t_on + 1)
        if n.pitch in next_on:
            t_off = min(t_off, next_on[n.pitch])
        next_on[n.pitch] = t_on
        if t_off <= t_on:
            continue
        vel = int(min(127, max(1, n.velocity)))
        events.append((t_on, 3, mido.Message("note_on", channel=channel, note=n.pitch, velocity=vel)))
        events.append((t_off, 2, mido.Message("note_off", channel=channel, note=n.pitch, velocity=0)))
    return _track(events, None)


def _track(events: list, end_tick: int | None) -> mido.MidiTrack:
    # Sort by tick, then kind (meta, program, note-offs before note-ons at the same tick).
    events = sorted(events, key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=int(tick) - now))
        now = int(tick)
    end = max(now, end_tick or 0)
    track.append(mido.MetaMessage("end_of_track", time=end - now))
    return track


def soundtrack_file(tempo: TempoMap, parts: Sequence[mido.MidiTrack], end_time: float) -> mido.MidiFile:
    """A type-1 file: the conductor track, then ``parts``; it lasts until ``end_time`` seconds."""
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(conductor_track(tempo, int(tempo.ticks(end_time))))
    mid.tracks.extend(parts)
    return mid


def write_midi(path: str | os.PathLike[str], mid: mido.MidiFile) -> Path:
    buf = io.BytesIO()
    mid.save(file=buf)
    return write_bytes_atomic(path, buf.getvalue())
