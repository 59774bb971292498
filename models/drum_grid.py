"""The drum grid of GrooVAE / the Groove MIDI Dataset: hits, velocities and offsets per class and 16th step.

A drum performance is three matrices of shape ``(9, T)`` (paper, "Rhythm2Drum"; Gillick et al.,
"Learning to Groove with Inverse Sequence Transformations", ICML 2019): **H** hits (bool),
**V** velocity in [0, 1] and **O** offset in [-0.5, 0.5) of a 16th step, 16 steps per 4/4 bar.

Classes and the General-MIDI note -> class table (``GM_PITCH_CLASSES``) are GrooVAE's
``ROLAND_DRUM_PITCH_CLASSES`` from Magenta's ``magenta/models/music_vae/data.py`` (the 9-class
reduction of the Groove MIDI Dataset paper, its Table 2): exactly the 22 notes the dataset's Roland
TD-11 kit writes (22 and 26 are the kit's hi-hat edge notes, outside General MIDI).

    kick 36 | snare 38 37 40 | closed hi-hat 42 22 44 | open hi-hat 46 26 | low tom 43 58 |
    mid tom 47 45 | high tom 50 48 | crash 49 52 55 57 | ride 51 53 59

The first note of each class is its canonical output note (``OUTPUT_PITCHES``: 36 38 42 46 43 47 50
49 51, all General MIDI). Notes outside the table are ignored on reading.

Decisions:

* **Quantisation in ticks.** A note at tick ``k`` sits at ``x = k / (ticks_per_beat / 4)`` 16ths;
  its step is ``floor(x + 0.5)`` (nearest, a half rounds up) and its offset ``x - step``, which lies
  in [-0.5, 0.5) by construction. MIDI ticks are beats, so the grid follows the file's tempo map;
  ``bpm`` keeps the file's first tempo (every Groove file has one constant tempo), and writing keeps
  only that one.
* **Flams and merged notes.** Two notes of one class on one step (a flam, or two source notes that
  the table merges, e.g. 42 and 44) keep the loudest; a tie keeps the earlier one.
* **Length.** By default a read grid covers the bars up to the last note (trailing silence after the
  last note is dropped: some files run minutes past it); ``num_steps`` fixes the length instead.
* **Canonical arrays.** ``DrumGrid`` stores V and O as float32 and zeroes them where there is no hit,
  so ``(H, V, O)`` is exactly what the models see and predict.
* **Writing.** Channel 10 (``channel=9`` in mido), one type-0 track with the tempo and a 4/4 time
  signature, ``ticks_per_beat`` 480 (the dataset's). A hit at step ``t`` with offset ``o`` starts at
  tick ``t * q + round(o * q)`` (``q`` ticks per 16th), the rounded offset clamped to
  ``[-q/2, q/2)`` so it reads back on the same step; a hit that would start before tick 0 (a
  negative offset on step 0) starts at 0. Velocity is ``round(127 v)`` clamped to 1..127 (0 would be
  a note-off). Notes last a 32nd (``note_ticks``), cut short at the next hit of the same note.
  Reading back what was written gives the same grid: H exactly, V within 1/254 (exact for V read
  from MIDI), O within ``1 / (2 q)`` (exact for O read from a file at 480 ticks per beat), except an
  offset within ``1 / (2 q)`` below +0.5, which goes to the last tick of its step (error < ``1 / q``).

In-memory conversion works on ``mido.MidiFile`` objects (``grid_from_midi``, ``grid_to_midi``);
``read_midi_file`` / ``write_midi_file`` are thin file helpers (errors: ``InputError`` /
``OutputError``; writing is atomic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mido
import numpy as np

from rhythmicnet.models.rhythm_grid import STEPS_PER_BAR, STEPS_PER_BEAT

CLASS_NAMES: tuple[str, ...] = (
    "kick",
    "snare",
    "closed_hihat",
    "open_hihat",
    "low_tom",
    "mid_tom",
    "high_tom",
    "crash",
    "ride",
)
NUM_CLASSES = len(CLASS_NAMES)
KICK, SNARE, CLOSED_HIHAT, OPEN_HIHAT, LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE = range(NUM_CLASSES)

#: GrooVAE's ``ROLAND_DRUM_PITCH_CLASSES`` (magenta/models/music_vae/data.py): notes of each class, in class order.
GM_PITCH_CLASSES: tuple[tuple[int, ...], ...] = (
    (36,),
    (38, 37, 40),
    (42, 22, 44),
    (46, 26),
    (43, 58),
    (47, 45),
    (50, 48),
    (49, 52, 55, 57),
    (51, 53, 59),
)
#: MIDI note -> class index, for the 22 notes of the table.
PITCH_TO_CLASS: dict[int, int] = {p: c for c, ps in enumerate(GM_PITCH_CLASSES) for p in ps}
#: The note written for each class (the first of its table row, a General MIDI drum).
OUTPUT_PITCHES: tuple[int, ...] = tuple(ps[0] for ps in GM_PITCH_CLASSES)

DRUM_CHANNEL = 9  # mido's 0-based channel number of General MIDI channel 10
DEFAULT_TICKS_PER_BEAT = 480
DEFAULT_BPM = 120.0
OFFSET_MAX = float(np.nextafter(np.float32(0.5), np.float32(0.0)))  # largest float32 below 0.5


@dataclass(frozen=True, eq=False)
class DrumGrid:
    """A drum performance on the 16th grid. Shapes: hits (9, T) bool, velocities/offsets (9, T) float32.

    Velocities are in [0, 1] and offsets in [-0.5, 0.5) (a fraction of a 16th step; negative = early);
    both are zero where there is no hit (the constructor enforces it on a copy). ``bpm`` is the tempo
    used to place the grid in time when it is written. Construction raises ValueError on bad shapes or
    values out of range at hit cells; ``from_arrays(..., clip=True)`` clips model outputs instead.
    """

    hits: np.ndarray
    velocities: np.ndarray
    offsets: np.ndarray
    bpm: float = DEFAULT_BPM

    def __post_init__(self) -> None:
        h = np.asarray(self.hits)
        if h.ndim != 2 or h.shape[0] != NUM_CLASSES:
            raise ValueError(f"hits must have shape ({NUM_CLASSES}, T), got {h.shape}")
        h = h.astype(bool)
        v = np.asarray(self.velocities, dtype=np.float32)
        o = np.asarray(self.offsets, dtype=np.float32)
        if v.shape != h.shape or o.shape != h.shape:
            raise ValueError(f"hits, velocities and offsets differ in shape: {h.shape}, {v.shape}, {o.shape}")
        v = np.where(h, v, np.float32(0.0))
        o = np.where(h, o, np.float32(0.0))
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(o))):
            raise ValueError("velocities and offsets must be finite")
        if np.any(v < 0) or np.any(v > 1):
            raise ValueError("velocities must lie in [0, 1]")
        if np.any(o < -0.5) or np.any(o >= 0.5):
            raise ValueError("offsets must lie in [-0.5, 0.5)")
        if not (np.isfinite(self.bpm) and self.bpm > 0):
            raise ValueError(f"bpm must be positive, got {self.bpm}")
        object.__setattr__(self, "hits", h)
        object.__setattr__(self, "velocities", v)
        object.__setattr__(self, "offsets", o)
        object.__setattr__(self, "bpm", float(self.bpm))

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def empty(cls, num_steps: int, bpm: float = DEFAULT_BPM) -> DrumGrid:
        z = np.zeros((NUM_CLASSES, num_steps), dtype=np.float32)
        return cls(z.astype(bool), z, z, bpm)

    @classmethod
    def from_hits(cls, hits: np.ndarray, velocity: float | np.ndarray = 0.8, bpm: float = DEFAULT_BPM) -> DrumGrid:
        """A grid from a hit matrix (9, T) with a constant (or given (9, T)) velocity and no offsets."""
        h = np.asarray(hits).astype(bool)
        v = np.broadcast_to(np.asarray(velocity, dtype=np.float32), h.shape)
        return cls(h, v, np.zeros(h.shape, dtype=np.float32), bpm)

    @classmethod
    def from_arrays(cls, hits: np.ndarray, velocities: np.ndarray, offsets: np.ndarray,
                    bpm: float = DEFAULT_BPM, *, clip: bool = True) -> DrumGrid:
        """A grid from model outputs: with ``clip`` V is clipped to [0, 1] and O to [-0.5, 0.5)."""
        v = np.asarray(velocities, dtype=np.float32)
        o = np.asarray(offsets, dtype=np.float32)
        if clip:
            v = np.clip(np.nan_to_num(v), 0.0, 1.0)
            o = np.clip(np.nan_to_num(o), -0.5, OFFSET_MAX)
        return cls(np.asarray(hits).astype(bool), v, o, bpm)

    @classmethod
    def from_hvo(cls, hvo: np.ndarray, bpm: float = DEFAULT_BPM, *, clip: bool = True) -> DrumGrid:
        """Inverse of :meth:`hvo`: a (27, T) stack; hits are the first 9 rows > 0.5."""
        a = np.asarray(hvo)
        if a.ndim != 2 or a.shape[0] != 3 * NUM_CLASSES:
            raise ValueError(f"an HVO array has shape ({3 * NUM_CLASSES}, T), got {a.shape}")
        n = NUM_CLASSES
        return cls.from_arrays(a[:n] > 0.5, a[n : 2 * n], a[2 * n :], bpm, clip=clip)

    @classmethod
    def concat(cls, grids: Sequence[DrumGrid]) -> DrumGrid:
        """Grids joined in time; the tempo is the first grid's."""
        if not grids:
            raise ValueError("nothing to concatenate")
        return cls(np.concatenate([g.hits for g in grids], axis=1),
                   np.concatenate([g.velocities for g in grids], axis=1),
                   np.concatenate([g.offsets for g in grids], axis=1), grids[0].bpm)

    # --- views ----------------------------------------------------------------------------------

    @property
    def num_steps(self) -> int:
        return int(self.hits.shape[1])

    @property
    def num_bars(self) -> int:
        """Bars covered (a partial last bar counts)."""
        return -(-self.num_steps // STEPS_PER_BAR)

    @property
    def step_seconds(self) -> float:
        return 60.0 / self.bpm / STEPS_PER_BEAT

    def hvo(self) -> np.ndarray:
        """(27, T) float32: H, V, O stacked along the class axis (GrooVAE's layout, transposed)."""
        return np.concatenate([self.hits.astype(np.float32), self.velocities, self.offsets], axis=0)

    def onsets(self) -> np.ndarray:
        """(T,) bool: any drum hit at the step."""
        return np.asarray(self.hits.any(axis=0))

    def window(self, start: int, steps: int) -> DrumGrid:
        """Steps ``start .. start + steps - 1``; steps beyond either end are silent (zero padding)."""
        if steps < 0:
            raise ValueError("steps must be >= 0")
        out = [np.zeros((NUM_CLASSES, steps), dtype=a.dtype) for a in (self.hits, self.velocities, self.offsets)]
        lo, hi = max(start, 0), min(start + steps, self.num_steps)
        if hi > lo:
            for dst, src in zip(out, (self.hits, self.velocities, self.offsets), strict=True):
                dst[:, lo - start : hi - start] = src[:, lo:hi]
        return DrumGrid(out[0], out[1], out[2], self.bpm)

    def bars(self, first: int, count: int = 1) -> DrumGrid:
        """Bars ``first .. first + count - 1`` (0-based), 16 steps each, silent past the end."""
        return self.window(first * STEPS_PER_BAR, count * STEPS_PER_BAR)

    def padded_to_bars(self) -> DrumGrid:
        """The grid extended with silence to a whole number of bars."""
        return self.window(0, self.num_bars * STEPS_PER_BAR)

    def with_bpm(self, bpm: float) -> DrumGrid:
        return DrumGrid(self.hits, self.velocities, self.offsets, bpm)

    def equals(self, other: DrumGrid, *, velocity_atol: float = 0.0, offset_atol: float = 0.0) -> bool:
        """Same hits exactly, V and O within the tolerances, same tempo (within MIDI's 1 µs per beat)."""
        return (self.hits.shape == other.hits.shape and bool(np.array_equal(self.hits, other.hits))
                and bool(np.allclose(self.velocities, other.velocities, rtol=0, atol=velocity_atol))
                and bool(np.allclose(self.offsets, other.offsets, rtol=0, atol=offset_atol))
                and abs(self.bpm - other.bpm) <= 2e-6 * self.bpm)

    # --- MIDI -------------------------------------------------------------------------------------

    def to_midi(self, **kwargs: Any) -> mido.MidiFile:
        """See :func:`grid_to_midi`."""
        return grid_to_midi(self, **kwargs)

    @classmethod
    def from_midi(cls, mid: mido.MidiFile, *, num_steps: int | None = None, channel: int | None = DRUM_CHANNEL
                  ) -> DrumGrid:
        """See :func:`grid_from_midi`."""
        return grid_from_midi(mid, num_steps=num_steps, channel=channel)


def _absolute_messages(mid: mido.MidiFile) -> list[tuple[int, mido.Message]]:
    """All messages of all tracks with their absolute tick (type 0 and 1 files), sorted by tick (stable)."""
    out: list[tuple[int, mido.Message]] = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            out.append((tick, msg))
    if len(mid.tracks) > 1:
        out.sort(key=lambda e: e[0])
    return out


def grid_from_midi(mid: mido.MidiFile, *, num_steps: int | None = None, channel: int | None = DRUM_CHANNEL
                   ) -> DrumGrid:
    """Quantise the drum notes of a MIDI file onto the 16th grid.

    Args:
        mid: the file; its ``ticks_per_beat`` sets the grid (a 16th = a quarter of a beat).
        num_steps: grid length; None = whole bars up to the last note (0 steps for a file without notes).
            Notes on later steps are dropped.
        channel: read only this mido channel (default 9 = General MIDI channel 10); None = any channel.
    Notes outside ``PITCH_TO_CLASS`` are ignored; flams keep the loudest note (see the module notes).
    """
    tpb = mid.ticks_per_beat
    if not tpb or tpb <= 0:
        raise ValueError("the MIDI file has no usable ticks_per_beat (SMPTE timing is not supported)")
    q = tpb / STEPS_PER_BEAT
    tempo: int | None = None
    ticks, classes, vels = [], [], []
    for tick, msg in _absolute_messages(mid):
        if msg.type == "set_tempo" and tempo is None:
            tempo = msg.tempo
        elif msg.type == "note_on" and msg.velocity > 0 and (channel is None or msg.channel == channel):
            c = PITCH_TO_CLASS.get(msg.note)
            if c is not None:
                ticks.append(tick)
                classes.append(c)
                vels.append(msg.velocity)
    bpm = mido.tempo2bpm(tempo) if tempo is not None else DEFAULT_BPM
    tick_a = np.asarray(ticks, dtype=np.int64)
    cls_a = np.asarray(classes, dtype=np.int64)
    vel_a = np.asarray(vels, dtype=np.int64)
    x = tick_a / q
    step = np.floor(x + 0.5).astype(np.int64)
    offset = x - step
    if num_steps is None:
        last = int(step.max()) + 1 if len(step) else 0
        num_steps = -(-last // STEPS_PER_BAR) * STEPS_PER_BAR
    keep = step < num_steps
    tick_a, cls_a, vel_a, step, offset = tick_a[keep], cls_a[keep], vel_a[keep], step[keep], offset[keep]
    # Flams: per (class, step) keep the loudest, ties -> the earliest (lexsort: last key is primary).
    order = np.lexsort((tick_a, -vel_a, step, cls_a))
    cls_s, step_s = cls_a[order], step[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (cls_s[1:] != cls_s[:-1]) | (step_s[1:] != step_s[:-1])
    sel = order[first]
    h = np.zeros((NUM_CLASSES, num_steps), dtype=bool)
    v = np.zeros((NUM_CLASSES, num_steps), dtype=np.float32)
    o = np.zeros((NUM_CLASSES, num_steps), dtype=np.float32)
    h[cls_a[sel], step[sel]] = True
    v[cls_a[sel], step[sel]] = vel_a[sel] / 127.0
    o[cls_a[sel], step[sel]] = offset[sel]
    return DrumGrid(h, v, o, bpm)


def count_flams(mid: mido.MidiFile, *, channel: int | None = DRUM_CHANNEL) -> int:
    """How many mapped notes reading drops because another note of their class is on the same step."""
    grid = grid_from_midi(mid, channel=channel)
    n_notes = sum(1 for _, m in _absolute_messages(mid)
                  if m.type == "note_on" and m.velocity > 0 and (channel is None or m.channel == channel)
                  and m.note in PITCH_TO_CLASS)
    return n_notes - int(grid.hits.sum())


def grid_to_midi(grid: DrumGrid, *, ticks_per_beat: int = DEFAULT_TICKS_PER_BEAT, note_ticks: int | None = None,
                 channel: int = DRUM_CHANNEL, pitches: Sequence[int] = OUTPUT_PITCHES) -> mido.MidiFile:
    """Write the grid as a type-0 MIDI file on ``channel`` (see the module notes for the rules).

    Args:
        ticks_per_beat: must be a multiple of 4 (a whole number of ticks per 16th).
        note_ticks: note length; default a 32nd note (half a 16th).
        pitches: the note for each of the 9 classes.
    The file ends at the end of the grid (``num_steps`` 16ths), or at the last note-off if later.
    """
    if ticks_per_beat <= 0 or ticks_per_beat % STEPS_PER_BEAT:
        raise ValueError(f"ticks_per_beat must be a positive multiple of {STEPS_PER_BEAT}, got {ticks_per_beat}")
    if len(pitches) != NUM_CLASSES:
        raise ValueError(f"need {NUM_CLASSES} output pitches, got {len(pitches)}")
    q = ticks_per_beat // STEPS_PER_BEAT
    length = max(1, q // 2) if note_ticks is None else int(note_ticks)
    if length < 1:
        raise ValueError("note_ticks must be >= 1")
    cls_i, step_i = np.nonzero(grid.hits)
    shift = np.rint(grid.offsets[cls_i, step_i].astype(np.float64) * q).astype(np.int64)
    shift = np.clip(shift, -(q // 2), (q + 1) // 2 - 1)
    on = np.maximum(step_i.astype(np.int64) * q + shift, 0)
    vel = np.clip(np.rint(grid.velocities[cls_i, step_i].astype(np.float64) * 127), 1, 127).astype(int)
    events: list[tuple[int, int, int, int]] = []  # (tick, kind 0=off 1=on, note, velocity)
    for c in range(NUM_CLASSES):
        sel = np.flatnonzero(cls_i == c)
        if not len(sel):
            continue
        ons = on[sel]  # strictly increasing: steps are distinct and each step owns its own tick range
        offs = ons + length
        offs[:-1] = np.minimum(offs[:-1], ons[1:])
        for t_on, t_off, v in zip(ons.tolist(), offs.tolist(), vel[sel].tolist(), strict=True):
            events.append((t_on, 1, pitches[c], v))
            events.append((t_off, 0, pitches[c], 0))
    events.sort()
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(grid.bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for tick, kind, note, v in events:
        msg_type = "note_on" if kind else "note_off"
        track.append(mido.Message(msg_type, channel=channel, note=note, velocity=v if kind else 0, time=tick - now))
        now = tick
    end = max(grid.num_steps * q, now)
    track.append(mido.MetaMessage("end_of_track", time=end - now))
    mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(track)
    return mid
