"""Drum2Music training data: bar-aligned (drums, piano/guitar) pairs on the 16th grid of 4/4 bars.

Two sources (see their README.txt):

* ``shared/data/multitrack_midi`` — 127 General-MIDI game-music files with drums and piano and/or
  guitar (``index.csv``). ``freedoom`` is BSD-3-Clause; ``openmsx`` (GPL-2.0-only) and
  ``liquidwar5`` (GPL-2.0-or-later) are copyleft, for evaluation only. :func:`read_multitrack`
  reads the BSD subset unless ``licences`` says otherwise.
* ``shared/data/pop909`` — 909 pop-song piano arrangements without drums (MIT), for pretraining
  the piano decoder as a REMI language model (:func:`read_pop909`).

Each song becomes one or more :class:`SongBars`: per 4/4 bar, the drums as GrooVAE's 9 classes x
16 steps (hits and velocities) and the instrument notes as :class:`~rhythmicnet.models.remi.BarNote`.
Torch-free numpy API.

Decisions:

* **Bars.** Only 4/4 bars. Multitrack files: beats from pretty_midi's ``get_beats()`` (they follow
  the tempo map), downbeats from ``get_downbeats()``; a bar is kept when the time signature in
  force at its downbeat is 4/4 (files without a time-signature event are 4/4, the MIDI default)
  and it holds exactly 4 beats (a signature change inside a bar makes it shorter: dropped).
  POP909: beats and downbeats from ``beat_midi.txt`` (columns: time in s, 1 on the first beat of
  each 2-beat group, 1 on the first beat of each 4-beat bar = the downbeat; we use the third);
  a bar is kept when the next downbeat lies 4 beats later (3 % of POP909's bars are 2, 3, 5, 6...
  beats long), and the last bar when at least 4 beats follow its downbeat. Beats before the
  first downbeat (pick-ups) are dropped.
* **Step times.** 4 steps per beat, linear between the bar's beat times; the last beat of a bar
  interpolates to the next beat (the next downbeat) or, at the end of the beat list, extrapolates
  with the last beat period. So tempo changes inside a bar are followed beat by beat.
* **Non-4/4 stretches split the song.** Runs of consecutive 4/4 bars become separate parts
  (``name#1``, ``name#2``, ... in time order; no suffix when a song has one part), so every part
  is contiguous music and bar ``i`` of the drums always sounds with bar ``i`` of the instrument.
  The dropped bars are gone; parts of any length are kept (:func:`segments` drops those under
  4 bars). Leading and trailing bars where both drums and instrument are silent are trimmed
  from each part (silent bars inside a part stay); a part with nothing left is dropped.
* **Quantisation.** An onset goes to the nearest step (a half rounds up; one that rounds to step
  16 is step 0 of the next bar; onsets rounding outside the part are dropped). Duration in steps
  is ``round((end - start) / L)`` with ``L`` the length of the onset's step, clipped to
  1..``MAX_DURATION_STEPS``. Pitches outside ``PITCH_RANGE`` are dropped. Two notes on one
  (step, pitch) keep the longest, then the loudest. Drums: same grid; per class and step the
  loudest velocity (``velocity / 127``).
* **Instrument parts.** Multitrack: every non-drum track of the family (pianos GM 0-7, guitars
  GM 24-31) merged into one polyphonic part; ``program`` is the family program with the most
  notes in the file (ties: the lower program). Files are chosen by index.csv's ``has_piano`` /
  ``has_guitar`` (a family track with >= 16 notes). POP909: MELODY + BRIDGE + PIANO merged
  (``program`` 0). All three are piano tracks of one arrangement (the vocal melody, the
  secondary melody and the accompaniment, played together on one piano); the merge is the whole
  piano score, which matches the multitrack reading (all piano tracks merged) and what the
  decoder has to produce under a drum part. PIANO alone would leave the melody out.
* **Drum classes** (:data:`EXTENDED_PITCH_TO_CLASS`). The 22 notes of GrooVAE's table
  (:data:`~rhythmicnet.models.drum_grid.PITCH_TO_CLASS`) keep their class, so the classes mean what
  they mean in the Groove data. Every other GM1/GM2 drum note takes its class from note-seq's
  ``DEFAULT_DRUM_TYPE_PITCHES`` (magenta/note-seq ``drums_encoder_decoder.py``, which maps "all
  GM1 and GM2 drums onto a much smaller standard drum kit based on drum sound and function"):

      kick   35 | snare 39 (clap), 56 (cowbell), 27 28 31-34 65 66 75 85 |
      closed hi-hat 54 (tambourine), 68-71 73 78 80 | open hi-hat 67 72 74 79 81 |
      low tom 41 29 61 64 84 | mid tom 60 63 77 86 87 | high tom 30 62 76 83 | ride 82 (shaker)

  Where the two tables disagree GrooVAE wins (45 mid tom, 48 high tom, 58 low tom). Other notes
  (below 22, 23-25, above 87) are dropped. :func:`drum_note_coverage` counts what each table keeps.
* **Cache.** Parsing is slow (pretty_midi: ~0.1 s per multitrack file, ~0.05 s per POP909 song on
  this 2-core machine: ~48 s for all of POP909, ~10 s for the BSD guitar files; the cached reads
  take ~1.7 s and < 0.1 s), so each reader call keeps its parsed parts in a compressed ``.npz`` (no
  pickle; the part list as JSON inside it) under ``cache_dir`` (default: groove_dataset's
  :func:`~rhythmicnet.offline.groove_dataset.default_cache_dir`), keyed by :data:`READER_VERSION`,
  the drum table and grid constants, the instrument, and the name, size and mtime of every file
  read. Split and licence come from the index at load time, not from the cache. An unreadable or
  inconsistent cache file is parsed again and overwritten.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rhythmicnet.errors import InputError, OutputError
from rhythmicnet.fileio import atomic_path, ensure_output_dir
from rhythmicnet.models.drum_grid import NUM_CLASSES, PITCH_TO_CLASS
from rhythmicnet.models.remi import MAX_DURATION_STEPS, PITCH_RANGE, STEPS_PER_BAR, BarNote
from rhythmicnet.offline.groove_dataset import default_cache_dir

__all__ = [
    "SPLITS",
    "INSTRUMENTS",
    "FAMILY_PROGRAMS",
    "PERMISSIVE_LICENCES",
    "READER_VERSION",
    "NOTE_SEQ_DRUM_CLASSES",
    "EXTENDED_PITCH_TO_CLASS",
    "SongBars",
    "MultitrackEntry",
    "find_multitrack_root",
    "find_pop909_root",
    "read_multitrack_index",
    "pop909_split",
    "parse_multitrack_file",
    "parse_pop909_song",
    "read_multitrack",
    "read_pop909",
    "transpose",
    "scale_tempo",
    "segments",
    "count_segments",
    "summary",
    "format_summary",
    "dataset_report",
    "drum_note_coverage",
]

SPLITS: tuple[str, ...] = ("train", "validation", "test")
INSTRUMENTS: tuple[str, ...] = ("piano", "guitar")
#: GM programs (0-based) of each instrument family.
FAMILY_PROGRAMS: dict[str, range] = {"piano": range(0, 8), "guitar": range(24, 32)}
#: index.csv licence strings that allow training and redistribution of derived models.
PERMISSIVE_LICENCES: tuple[str, ...] = ("BSD-3-Clause",)
POP909_LICENCE = "MIT"
#: Bumped whenever parsing changes, so cached parts are re-parsed.
READER_VERSION = 1
STEPS_PER_BEAT = 4
BEATS_PER_BAR = STEPS_PER_BAR // STEPS_PER_BEAT
SEGMENT_BARS = 16
MIN_SEGMENT_BARS = 4

#: note-seq's DEFAULT_DRUM_TYPE_PITCHES (magenta/note-seq, drums_encoder_decoder.py), in GrooVAE's class order.
NOTE_SEQ_DRUM_CLASSES: tuple[tuple[int, ...], ...] = (
    (36, 35),
    (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85),
    (42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22),
    (46, 67, 72, 74, 79, 81, 26),
    (45, 29, 41, 43, 61, 64, 84),
    (48, 47, 60, 63, 77, 86, 87),
    (50, 30, 62, 76, 83),
    (49, 52, 55, 57, 58),
    (51, 53, 59, 82),
)
#: GM drum note -> class: GrooVAE's 22-note table, the other GM1/GM2 notes by note-seq's table (module docstring).
EXTENDED_PITCH_TO_CLASS: dict[int, int] = {
    **{p: c for c, ps in enumerate(NOTE_SEQ_DRUM_CLASSES) for p in ps},
    **PITCH_TO_CLASS,
}

_DRUM_LUT = np.full(128, -1, dtype=np.int64)
for _p, _c in EXTENDED_PITCH_TO_CLASS.items():
    _DRUM_LUT[_p] = _c

PathLike = str | os.PathLike[str]


# --- the data type ------------------------------------------------------------------------------


@dataclass(eq=False)
class SongBars:
    """A run of consecutive 4/4 bars of one song (or part of one).

    Shapes (``n`` bars): ``tempo_bpm`` (n,) float64, the tempo of each bar from its beat times
    (240 / bar length in s); ``drum_hits`` (n, 9, 16) bool and ``drum_velocity`` (n, 9, 16)
    float32 in [0, 1] (MIDI velocity / 127, loudest note of a class on a step; 0 without a hit),
    both None for POP909 (no drums); ``notes`` one list per bar of the instrument notes whose onset
    falls in that bar, sorted by (step, pitch).
    """

    name: str
    source: str
    licence: str
    split: str
    instrument: str
    program: int
    tempo_bpm: np.ndarray
    drum_hits: np.ndarray | None
    drum_velocity: np.ndarray | None
    notes: list[list[BarNote]]

    def __post_init__(self) -> None:
        n = len(self.notes)
        if np.shape(self.tempo_bpm) != (n,):
            raise ValueError(f"{self.name}: tempo_bpm must have shape ({n},), got {np.shape(self.tempo_bpm)}")
        if (self.drum_hits is None) != (self.drum_velocity is None):
            raise ValueError(f"{self.name}: drum_hits and drum_velocity must both be set or both be None")
        for a in (self.drum_hits, self.drum_velocity):
            if a is not None and np.shape(a) != (n, NUM_CLASSES, STEPS_PER_BAR):
                raise ValueError(f"{self.name}: drum arrays must have shape ({n}, {NUM_CLASSES}, {STEPS_PER_BAR}), "
                                 f"got {np.shape(a)}")

    @property
    def n_bars(self) -> int:
        return len(self.notes)

    @property
    def n_notes(self) -> int:
        return sum(len(b) for b in self.notes)


@dataclass(frozen=True)
class MultitrackEntry:
    """One row of multitrack_midi/index.csv (the columns this module uses)."""

    path: str
    source: str
    licence: str
    split: str
    has_piano: bool
    has_guitar: bool
    tempo_bpm: float
    time_signature: str

    def has(self, instrument: str) -> bool:
        return self.has_piano if instrument == "piano" else self.has_guitar


@dataclass
class _Part:
    """A parsed part as compact arrays (what the cache stores). notes (N, 4) uint8: step, pitch, velocity,
    duration, bar after bar; note_counts (n,) notes per bar; drum_velocity (n, 9, 16) uint8 MIDI velocity or None."""

    file: str
    name: str
    program: int
    tempo_bpm: np.ndarray
    note_counts: np.ndarray
    notes: np.ndarray
    drum_velocity: np.ndarray | None


# --- locating the data ----------------------------------------------------------------------------


def _find_root(root: PathLike | None, env: str, folder: str, marker: str, what: str) -> Path:
    """The first candidate folder (``root`` or ``root/folder``; else $env, else shared/data/folder beside or
    inside the repository) where the glob ``marker`` matches."""
    candidates: list[Path] = []
    if root is not None:
        candidates.append(Path(root))
    else:
        if os.environ.get(env):
            candidates.append(Path(os.environ[env]))
        repo = Path(__file__).resolve().parents[1]
        candidates += [repo.parent / "shared" / "data" / folder, repo / "shared" / "data" / folder]
    for c in candidates:
        for d in (c, c / folder):
            if d.is_dir() and next(d.glob(marker), None) is not None:
                return d.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise InputError(f"{what} not found (no {marker} in {where}); pass its folder or set {env}")


def find_multitrack_root(root: PathLike | None = None) -> Path:
    """The folder holding multitrack_midi's index.csv (``root``, ``$RHYTHMICNET_MULTITRACK_DIR`` or
    ``shared/data/multitrack_midi`` beside or inside the repository). Raises InputError when none is found."""
    return _find_root(root, "RHYTHMICNET_MULTITRACK_DIR", "multitrack_midi", "index.csv", "Multitrack MIDI set")


def find_pop909_root(root: PathLike | None = None) -> Path:
    """The folder holding POP909's song folders ``NNN/`` (``root``, ``$RHYTHMICNET_POP909_DIR`` or
    ``shared/data/pop909`` beside or inside the repository). Raises InputError when none is found."""
    return _find_root(root, "RHYTHMICNET_POP909_DIR", "pop909", "[0-9][0-9][0-9]/beat_midi.txt", "POP909")


def read_multitrack_index(root: PathLike | None = None) -> list[MultitrackEntry]:
    """All rows of index.csv, in file order."""
    path = find_multitrack_root(root) / "index.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [MultitrackEntry(r["path"], r["source"], r["licence"], r["split"], r["has_piano"] == "1",
                                r["has_guitar"] == "1", float(r["tempo_bpm"]), r["time_signature"]) for r in rows]
    except (OSError, KeyError, ValueError, csv.Error) as e:
        raise InputError(f"{path}: not a multitrack_midi index.csv ({e})") from e


def pop909_split(number: int) -> str:
    """POP909's fixed split by song number: 1-727 train, 728-818 validation, 819-909 test."""
    if number <= 727:
        return "train"
    return "validation" if number <= 818 else "test"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be None or one of {', '.join(SPLITS)}, got {split!r}")


def _check_instrument(instrument: str) -> None:
    if instrument not in INSTRUMENTS:
        raise ValueError(f"instrument must be one of {', '.join(INSTRUMENTS)}, got {instrument!r}")


# --- bars and quantisation -------------------------------------------------------------------------


def _extend(beats: np.ndarray) -> np.ndarray:
    """Beat times plus one extrapolated beat (the last period again), so the last bar has an end."""
    period = beats[-1] - beats[-2] if len(beats) > 1 else 0.5
    return np.append(beats, beats[-1] + period)


def _runs(bars: Sequence[tuple[int, np.ndarray]]) -> list[np.ndarray]:
    """Group kept bars (first-beat index, (5,) boundary times) into runs of adjacent bars.

    Returns one step-time grid per run: (16 n + 1,) times of the steps and the run's end.
    """
    out: list[np.ndarray] = []
    cur: list[np.ndarray] = []
    prev = None
    frac = np.arange(STEPS_PER_BAR) / STEPS_PER_BEAT
    for b, bounds in bars:
        if prev is not None and b != prev + BEATS_PER_BAR and cur:
            out.append(np.concatenate(cur))
            cur = []
        if cur:
            cur[-1] = cur[-1][:-1]  # the previous bar's end is this bar's step 0
        cur.append(np.append(np.interp(frac, np.arange(BEATS_PER_BAR + 1), bounds), bounds[-1]))
        prev = b
    if cur:
        out.append(np.concatenate(cur))
    return out


def _step_positions(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fractional step index of each time on a run's grid, extrapolated linearly outside it."""
    n = len(grid) - 1
    x = np.interp(times, grid, np.arange(n + 1, dtype=np.float64))
    lo, hi = times < grid[0], times > grid[-1]
    x[lo] = (times[lo] - grid[0]) / (grid[1] - grid[0])
    x[hi] = n + (times[hi] - grid[-1]) / (grid[-1] - grid[-2])
    return x


def _quantise(grid: np.ndarray, notes: np.ndarray, drums: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Notes and drums of one run on its grid.

    Args:
        grid: (16 n + 1,) step times of the run.
        notes: (N, 4) float start s, end s, pitch, velocity of the instrument.
        drums: (M, 3) float start s, pitch, velocity of the drums, or None.
    Returns:
        bar_of_note (K,) int, notes (K, 4) int step, pitch, velocity, duration sorted by (bar, step, pitch);
        drum velocity (n, 9, 16) uint8 or None.
    """
    n_steps = len(grid) - 1
    n_bars = n_steps // STEPS_PER_BAR
    step_len = np.diff(grid)
    lo, hi = PITCH_RANGE
    out = np.zeros((0, 5), dtype=np.int64)
    if len(notes):
        s = np.floor(_step_positions(notes[:, 0], grid) + 0.5).astype(np.int64)
        pitch = notes[:, 2].astype(np.int64)
        keep = (s >= 0) & (s < n_steps) & (pitch >= lo) & (pitch <= hi)
        s, pitch, nt = s[keep], pitch[keep], notes[keep]
        dur = np.floor((nt[:, 1] - nt[:, 0]) / step_len[s] + 0.5).astype(np.int64)
        dur = np.clip(dur, 1, MAX_DURATION_STEPS)
        vel = np.clip(nt[:, 3].astype(np.int64), 1, 127)
        # sorted by step, pitch, then longest and loudest first: the first of each (step, pitch) is kept
        order = np.lexsort((-vel, -dur, pitch, s))
        s, pitch, vel, dur = s[order], pitch[order], vel[order], dur[order]
        first = np.ones(len(s), dtype=bool)
        first[1:] = (s[1:] != s[:-1]) | (pitch[1:] != pitch[:-1])
        s, pitch, vel, dur = s[first], pitch[first], vel[first], dur[first]
        out = np.stack([s // STEPS_PER_BAR, s % STEPS_PER_BAR, pitch, vel, dur], axis=1)
    drum_vel = None
    if drums is not None:
        dv = np.zeros((n_steps, NUM_CLASSES), dtype=np.uint8)
        if len(drums):
            s = np.floor(_step_positions(drums[:, 0], grid) + 0.5).astype(np.int64)
            pitch = drums[:, 1].astype(np.int64)
            cls = np.where((pitch >= 0) & (pitch < 128), _DRUM_LUT[np.clip(pitch, 0, 127)], -1)
            keep = (s >= 0) & (s < n_steps) & (cls >= 0)
            np.maximum.at(dv, (s[keep], cls[keep]), np.clip(drums[keep, 2], 1, 127).astype(np.uint8))
        drum_vel = np.ascontiguousarray(dv.reshape(n_bars, STEPS_PER_BAR, NUM_CLASSES).transpose(0, 2, 1))
    return out[:, 0], out[:, 1:], drum_vel


def _parts(file: str, program: int, bars: Sequence[tuple[int, np.ndarray]], notes: np.ndarray,
           drums: np.ndarray | None) -> list[_Part]:
    """Quantise every run of 4/4 bars, trim silent bars at both ends, name the parts."""
    found: list[_Part] = []
    for grid in _runs(bars):
        n_bars = (len(grid) - 1) // STEPS_PER_BAR
        bar_of, nts, dv = _quantise(grid, notes, drums)
        counts = np.bincount(bar_of, minlength=n_bars)
        active = counts > 0
        if dv is not None:
            active |= dv.any(axis=(1, 2))
        if not active.any():
            continue
        a = int(np.argmax(active))
        b = n_bars - int(np.argmax(active[::-1]))
        bar_len = grid[STEPS_PER_BAR::STEPS_PER_BAR] - grid[:-1:STEPS_PER_BAR]
        sel = (bar_of >= a) & (bar_of < b)
        found.append(_Part(file, file, program, (60.0 * BEATS_PER_BAR / bar_len[a:b]).astype(np.float64),
                           counts[a:b].astype(np.int64), nts[sel].astype(np.uint8),
                           None if dv is None else dv[a:b]))
    if len(found) > 1:
        for k, p in enumerate(found, 1):
            p.name = f"{file}#{k}"
    return found


def _load_pretty_midi(path: Path) -> Any:
    import pretty_midi  # imported here: only the readers need it

    try:
        with warnings.catch_warnings():
            # "Tempo, Key or Time signature change events found on non-zero tracks": expected in type-1 files
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # mido and pretty_midi raise many types (OSError, EOFError, ValueError, KeyError...)
        raise InputError(f"{path}: cannot read the MIDI file ({type(e).__name__}: {e})") from e


def _midi_bars(pm: Any) -> list[tuple[int, np.ndarray]]:
    """The 4/4 bars of a PrettyMIDI object: (index of the first beat, (5,) beat times incl. the bar's end)."""
    beats = np.asarray(pm.get_beats(), dtype=np.float64)
    if len(beats) < BEATS_PER_BAR:
        return []
    downbeats = np.asarray(pm.get_downbeats(), dtype=np.float64)
    sigs = sorted((ts.time, ts.numerator, ts.denominator) for ts in pm.time_signature_changes)
    ext = _extend(beats)
    index: list[int] = []
    for t in downbeats:
        i = int(np.searchsorted(beats, t - 1e-6))
        if i < len(beats) and abs(beats[i] - t) < 1e-4:
            index.append(i)
    bars: list[tuple[int, np.ndarray]] = []
    for k, i in enumerate(index):
        nxt = index[k + 1] if k + 1 < len(index) else len(beats)
        in_force = [s for s in sigs if s[0] <= beats[i] + 1e-6]
        num_den = in_force[-1][1:] if in_force else (4, 4)  # MIDI default before any event
        if num_den == (4, 4) and nxt - i == BEATS_PER_BAR and np.all(np.diff(ext[i : i + 5]) > 0):
            bars.append((i, ext[i : i + 5]))
    return bars


def parse_multitrack_file(path: PathLike, instrument: str = "piano", *, name: str | None = None,
                          source: str = "", licence: str = "", split: str = "") -> list[SongBars]:
    """The parts (runs of 4/4 bars) of one General-MIDI file with the given instrument family.

    All drum tracks give the drums; all non-drum tracks with a program of the family give the
    instrument. Returns [] when the file has no 4/4 bar with a note or drum hit.
    """
    _check_instrument(instrument)
    parts = _parse_multitrack(Path(path), name or Path(path).name, instrument)
    return _to_songs(parts, lambda p: (source, licence, split, instrument))


def _parse_multitrack(path: Path, file: str, instrument: str) -> list[_Part]:
    pm = _load_pretty_midi(path)
    family = FAMILY_PROGRAMS[instrument]
    inst = [i for i in pm.instruments if not i.is_drum and i.program in family]
    by_program: Counter[int] = Counter()
    for i in inst:
        by_program[int(i.program)] += len(i.notes)
    program = min(by_program, key=lambda p: (-by_program[p], p)) if by_program else family[0]
    notes = np.array([(n.start, n.end, n.pitch, n.velocity) for i in inst for n in i.notes],
                     dtype=np.float64).reshape(-1, 4)
    drums = np.array([(n.start, n.pitch, n.velocity) for i in pm.instruments if i.is_drum for n in i.notes],
                     dtype=np.float64).reshape(-1, 3)
    return _parts(file, program, _midi_bars(pm), notes, drums)


def _read_beat_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """beat_midi.txt: (M,) beat times and (M,) bool downbeat flags (third column)."""
    try:
        rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        a = np.array([[float(v) for v in r[:3]] for r in rows], dtype=np.float64).reshape(-1, 3)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a POP909 beat_midi.txt ({e})") from e
    if any(len(r) < 3 for r in rows):
        raise InputError(f"{path}: not a POP909 beat_midi.txt (every line needs time, duple flag, downbeat flag)")
    return a[:, 0], a[:, 2] > 0.5


def _pop909_bars(times: np.ndarray, down: np.ndarray) -> list[tuple[int, np.ndarray]]:
    if len(times) < 2:
        return []
    ext = _extend(times)
    idx = np.flatnonzero(down)
    bars: list[tuple[int, np.ndarray]] = []
    for k, i in enumerate(idx):
        # a bar is 4 beats up to the next downbeat; the last one needs 4 beats after its downbeat
        ok = idx[k + 1] - i == BEATS_PER_BAR if k + 1 < len(idx) else len(times) - i >= BEATS_PER_BAR
        if ok and np.all(np.diff(ext[i : i + 5]) > 0):
            bars.append((int(i), ext[i : i + 5]))
    return bars


def parse_pop909_song(song_dir: PathLike, *, split: str | None = None) -> list[SongBars]:
    """The parts of one POP909 song folder ``NNN/`` (``NNN.mid`` + ``beat_midi.txt``), all tracks merged."""
    d = Path(song_dir)
    parts = _parse_pop909(d, f"pop909/{d.name}")
    sp = split if split is not None else (pop909_split(int(d.name)) if d.name.isdigit() else "")
    return _to_songs(parts, lambda p: ("pop909", POP909_LICENCE, sp, "piano"))


def _parse_pop909(d: Path, file: str) -> list[_Part]:
    pm = _load_pretty_midi(d / f"{d.name}.mid")
    times, down = _read_beat_file(d / "beat_midi.txt")
    notes = np.array([(n.start, n.end, n.pitch, n.velocity) for i in pm.instruments if not i.is_drum
                      for n in i.notes], dtype=np.float64).reshape(-1, 4)
    return _parts(file, 0, _pop909_bars(times, down), notes, None)


def _to_songs(parts: Sequence[_Part], describe: Callable[[_Part], tuple[str, str, str, str]]) -> list[SongBars]:
    """SongBars of parsed parts; ``describe(part)`` gives (source, licence, split, instrument).

    Equal notes share one (frozen) BarNote object: POP909 has 1.4 M notes but only ~0.2 M distinct
    (step, pitch, velocity, duration), which makes building the lists ~3x faster and smaller.
    """
    allnotes = np.concatenate([p.notes for p in parts] or [np.zeros((0, 4))]).astype(np.int64)
    key = ((allnotes[:, 0] * 128 + allnotes[:, 1]) * 128 + allnotes[:, 2]) * 128 + allnotes[:, 3]
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    distinct = [BarNote(*r) for r in allnotes[first].tolist()]
    flat = [distinct[i] for i in inverse.reshape(-1).tolist()]
    out: list[SongBars] = []
    start = 0
    for p in parts:
        bounds = start + np.concatenate([[0], np.cumsum(p.note_counts)]).astype(np.int64)
        notes = [flat[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
        start = int(bounds[-1])
        hits = vel = None
        if p.drum_velocity is not None:
            hits = p.drum_velocity > 0
            vel = p.drum_velocity.astype(np.float32) / np.float32(127.0)
        source, licence, split, instrument = describe(p)
        out.append(SongBars(p.name, source, licence, split, instrument, p.program,
                            p.tempo_bpm.astype(np.float64).copy(), hits, vel, notes))
    return out


# --- the cache -------------------------------------------------------------------------------------


def _cache_key(kind: str, tag: str, files: Sequence[tuple[str, Path]]) -> str:
    consts = json.dumps([READER_VERSION, STEPS_PER_BAR, MAX_DURATION_STEPS, list(PITCH_RANGE),
                         sorted(EXTENDED_PITCH_TO_CLASS.items())])
    h = hashlib.sha256(f"music-bars {kind} {tag} {consts}\n".encode())
    for rel, path in files:
        st = path.stat()
        h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _save_parts(path: Path, files: Sequence[str], parts: Sequence[_Part]) -> None:
    meta = {"version": READER_VERSION, "files": list(files),
            "parts": [{"file": p.file, "name": p.name, "program": p.program, "bars": len(p.tempo_bpm),
                       "drums": p.drum_velocity is not None} for p in parts]}
    dv = [p.drum_velocity for p in parts if p.drum_velocity is not None]
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            meta=np.array(json.dumps(meta)),
            tempo_bpm=np.concatenate([p.tempo_bpm for p in parts] or [np.zeros(0)]).astype(np.float64),
            note_counts=np.concatenate([p.note_counts for p in parts] or [np.zeros(0)]).astype(np.int64),
            notes=np.concatenate([p.notes for p in parts] or [np.zeros((0, 4))]).astype(np.uint8),
            drum_velocity=np.concatenate(dv or [np.zeros((0, NUM_CLASSES, STEPS_PER_BAR))]).astype(np.uint8),
        )


def _load_parts(path: Path, files: Sequence[str]) -> list[_Part] | None:
    """Parts from a cache file, or None when it is unreadable, inconsistent or for other files."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            tempo, counts, notes, dv = z["tempo_bpm"], z["note_counts"], z["notes"], z["drum_velocity"]
        if meta["version"] != READER_VERSION or meta["files"] != list(files):
            return None
        infos = meta["parts"]
        bars = [int(i["bars"]) for i in infos]
        drum_bars = sum(b for b, i in zip(bars, infos, strict=True) if i["drums"])
        if (sum(bars) != len(tempo) or len(counts) != len(tempo) or int(counts.sum()) != len(notes)
                or notes.ndim != 2 or notes.shape[1] != 4 or dv.shape[1:] != (NUM_CLASSES, STEPS_PER_BAR)
                or drum_bars != len(dv) or np.any(counts < 0)):
            return None
        out: list[_Part] = []
        b0 = n0 = d0 = 0
        for info, nb in zip(infos, bars, strict=True):
            nn = int(counts[b0 : b0 + nb].sum())
            drum = None
            if info["drums"]:
                drum, d0 = dv[d0 : d0 + nb], d0 + nb
            out.append(_Part(str(info["file"]), str(info["name"]), int(info["program"]), tempo[b0 : b0 + nb],
                             counts[b0 : b0 + nb], notes[n0 : n0 + nn], drum))
            b0, n0 = b0 + nb, n0 + nn
        return out
    except (OSError, KeyError, ValueError, TypeError, IndexError, EOFError, zipfile.BadZipFile):
        return None


def _cached_parse(kind: str, tag: str, files: Sequence[tuple[str, Sequence[Path]]], parse: Callable[[str], list[_Part]],
                  cache: bool, cache_dir: PathLike | None) -> list[_Part]:
    """Parts of all ``files`` (name, paths that key the cache), through the cache when ``cache``."""
    names = [f for f, _ in files]
    path = None
    if cache:
        try:
            key = _cache_key(kind, tag, [(f"{f}:{p.name}", p) for f, ps in files for p in ps])
        except OSError as e:
            raise InputError(f"cannot read the dataset files ({e})") from e
        path = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / f"music_{kind}_{tag}_{key}.npz"
        if path.is_file():
            cached = _load_parts(path, names)
            if cached is not None:
                return cached
    parts = [p for f in names for p in parse(f)]
    if path is not None:
        try:
            ensure_output_dir(path.parent)
            _save_parts(path, names, parts)
        except (OutputError, OSError) as e:  # a cache that cannot be written only costs time
            warnings.warn(f"music bar cache not written: {e}", stacklevel=3)
    return parts


# --- the readers -----------------------------------------------------------------------------------


def read_multitrack(split: str | None = None, instrument: str = "piano", *,
                    licences: Sequence[str] | None = PERMISSIVE_LICENCES, root: PathLike | None = None,
                    cache: bool = True, cache_dir: PathLike | None = None) -> list[SongBars]:
    """(drums, instrument) bars of the multitrack set, in index.csv order.

    Args:
        split: "train", "validation", "test" (index.csv's split column) or None for all.
        instrument: "piano" (GM 0-7) or "guitar" (GM 24-31); files with index.csv's ``has_<instrument>``.
        licences: index.csv licence strings to keep; default the permissive BSD-3-Clause (freedoom)
            files; None for all sources (the GPL ones are for evaluation only).
        root: the dataset folder (see :func:`find_multitrack_root`).
        cache: read/write the parsed bars in ``cache_dir`` (default groove_dataset's ``default_cache_dir()``).
    Returns:
        One SongBars per run of 4/4 bars (usually one per file; see the module docstring).
    """
    _check_split(split)
    _check_instrument(instrument)
    d = find_multitrack_root(root)
    entries = read_multitrack_index(d)
    if licences is not None:
        known = sorted({e.licence for e in entries})
        unknown = [lic for lic in licences if lic not in known]
        if unknown:
            raise ValueError(f"unknown licence(s) {unknown}; index.csv has {known}")
    chosen = [e for e in entries if (split is None or e.split == split) and e.has(instrument)
              and (licences is None or e.licence in licences)]
    by_path = {e.path: e for e in chosen}
    files = [(e.path, [d / e.path]) for e in chosen]
    tag = f"{instrument}_{split or 'all'}_{'any' if licences is None else '+'.join(sorted(set(licences)))}"
    parts = _cached_parse("multitrack", tag, files,
                          lambda f: _parse_multitrack(d / f, f, instrument), cache, cache_dir)
    return _to_songs(parts, lambda p: (by_path[p.file].source, by_path[p.file].licence, by_path[p.file].split,
                                       instrument))


def _pop909_songs(d: Path) -> list[tuple[int, Path]]:
    songs = sorted((int(c.name), c) for c in d.iterdir() if c.is_dir() and c.name.isdigit())
    for _, c in songs:
        for f in (c / f"{c.name}.mid", c / "beat_midi.txt"):
            if not f.is_file():
                raise InputError(f"{c}: POP909 song folder without {f.name}")
    return songs


def read_pop909(split: str | None = None, *, root: PathLike | None = None, cache: bool = True,
                limit: int | None = None, cache_dir: PathLike | None = None) -> list[SongBars]:
    """Piano bars of POP909 (no drums: ``drum_hits`` and ``drum_velocity`` are None), in song order.

    The piano part is MELODY + BRIDGE + PIANO merged (the whole arrangement; module docstring),
    bars from the downbeats of ``beat_midi.txt``.

    Args:
        split: by song number, 001-727 "train", 728-818 "validation", 819-909 "test"; None for all.
        limit: only the first ``limit`` songs of the split (a smoke test).
        cache: as in :func:`read_multitrack`.
    """
    _check_split(split)
    d = find_pop909_root(root)
    songs = [(n, c) for n, c in _pop909_songs(d) if split is None or pop909_split(n) == split]
    if limit is not None:
        songs = songs[: max(limit, 0)]
    files = [(f"pop909/{c.name}", [c / f"{c.name}.mid", c / "beat_midi.txt"]) for _, c in songs]
    parts = _cached_parse("pop909", split or "all", files,
                          lambda f: _parse_pop909(d / f.split("/", 1)[1], f), cache, cache_dir)
    return _to_songs(parts, lambda p: ("pop909", POP909_LICENCE, pop909_split(int(p.file.split("/", 1)[1])),
                                       "piano"))


# --- augmentation and segments ---------------------------------------------------------------------


def _copy(song: SongBars, **changes: Any) -> SongBars:
    base: dict[str, Any] = {
        "tempo_bpm": song.tempo_bpm.copy(),
        "drum_hits": None if song.drum_hits is None else song.drum_hits.copy(),
        "drum_velocity": None if song.drum_velocity is None else song.drum_velocity.copy(),
        "notes": [list(b) for b in song.notes],
    }
    base.update(changes)
    return dataclasses.replace(song, **base)


def transpose(song: SongBars, semitones: int) -> SongBars:
    """A copy with every instrument note moved by ``semitones``; notes leaving PITCH_RANGE are dropped.
    Drums are unchanged (copied)."""
    lo, hi = PITCH_RANGE
    notes = [[BarNote(n.step, n.pitch + semitones, n.velocity, n.duration) for n in bar
              if lo <= n.pitch + semitones <= hi] for bar in song.notes]
    return _copy(song, notes=notes)


def scale_tempo(song: SongBars, factor: float) -> SongBars:
    """A copy played ``factor`` times faster (tempo x factor); the grid content is unchanged."""
    if not (np.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be positive, got {factor}")
    return _copy(song, tempo_bpm=song.tempo_bpm * float(factor))


def _segment_bounds(n_bars: int, length: int, hop: int, min_bars: int) -> list[tuple[int, int]]:
    if length <= 0 or hop <= 0:
        raise ValueError("length and hop must be positive")
    need = min(length, max(min_bars, 1))
    out: list[tuple[int, int]] = []
    for a in range(0, n_bars, hop):
        b = min(a + length, n_bars)
        if b - a >= need:
            out.append((a, b))
        if b == n_bars:  # later windows would only be shorter tails of this one
            break
    return out


def count_segments(n_bars: int, length: int = SEGMENT_BARS, hop: int = SEGMENT_BARS,
                   min_bars: int = MIN_SEGMENT_BARS) -> int:
    """How many segments :func:`segments` cuts from a song of ``n_bars`` bars."""
    return len(_segment_bounds(n_bars, length, hop, min_bars))


def segments(song: SongBars, length: int = SEGMENT_BARS, hop: int = SEGMENT_BARS, *,
             min_bars: int = MIN_SEGMENT_BARS) -> list[SongBars]:
    """Windows of ``length`` bars every ``hop`` bars from bar 0 (16-bar segments as in the paper).

    The window that reaches the song's end may be shorter; it is kept when it has at least
    ``min_bars`` bars (4). Names get ``[a:b]`` (bar range). Arrays are copies.
    """
    out: list[SongBars] = []
    for a, b in _segment_bounds(song.n_bars, length, hop, min_bars):
        out.append(dataclasses.replace(
            song, name=f"{song.name}[{a}:{b}]", tempo_bpm=song.tempo_bpm[a:b].copy(),
            drum_hits=None if song.drum_hits is None else song.drum_hits[a:b].copy(),
            drum_velocity=None if song.drum_velocity is None else song.drum_velocity[a:b].copy(),
            notes=[list(bar) for bar in song.notes[a:b]]))
    return out


# --- summaries -------------------------------------------------------------------------------------


def _stats(songs: Sequence[SongBars]) -> dict[str, Any]:
    per_bar = np.array([len(b) for s in songs for b in s.notes], dtype=np.float64)
    tempo = np.concatenate([s.tempo_bpm for s in songs] or [np.zeros(0)])
    with_drums = [s for s in songs if s.drum_hits is not None]
    drum_bars = sum(s.n_bars for s in with_drums)
    out: dict[str, Any] = {
        "files": len({s.name.split("#", 1)[0] for s in songs}),
        "songs": len(songs),
        "bars": int(per_bar.size),
        "segments": sum(count_segments(s.n_bars) for s in songs),
        "bars_in_segments": sum(b - a for s in songs for a, b in _segment_bounds(s.n_bars, SEGMENT_BARS,
                                                                                 SEGMENT_BARS, MIN_SEGMENT_BARS)),
        "notes": int(per_bar.sum()),
        "notes_per_bar_mean": float(per_bar.mean()) if per_bar.size else 0.0,
        "notes_per_bar_median": float(np.median(per_bar)) if per_bar.size else 0.0,
        "notes_per_bar_p95": float(np.percentile(per_bar, 95)) if per_bar.size else 0.0,
        "notes_per_bar_max": int(per_bar.max()) if per_bar.size else 0,
        "bars_without_notes": int((per_bar == 0).sum()),
        "tempo_bpm_median": float(np.median(tempo)) if tempo.size else 0.0,
        "tempo_bpm_min": float(tempo.min()) if tempo.size else 0.0,
        "tempo_bpm_max": float(tempo.max()) if tempo.size else 0.0,
    }
    if with_drums:
        hits = np.concatenate([s.drum_hits for s in with_drums if s.drum_hits is not None])
        out["drum_hits_per_bar_mean"] = float(hits.sum() / max(drum_bars, 1))
        out["bars_without_drums"] = int((~hits.any(axis=(1, 2))).sum())
    return out


def summary(songs: Sequence[SongBars]) -> dict[str, Any]:
    """Counts over ``songs``: {"all": stats, "by_split": {split: stats}, "by_instrument": ..., "by_source": ...}.

    stats: files, songs (parts), bars, segments (16 bars, tail >= 4 bars), bars_in_segments, notes,
    notes per bar (mean, median, p95, max), bars without notes, tempo (median, min, max) and, where
    there are drums, drum hits per bar and bars without drums.
    """
    def group(attr: str) -> dict[str, Any]:
        keys = sorted({getattr(s, attr) for s in songs}, key=lambda k: (SPLITS.index(k) if k in SPLITS else 9, k))
        return {k: _stats([s for s in songs if getattr(s, attr) == k]) for k in keys}

    return {"all": _stats(songs), "by_split": group("split"), "by_instrument": group("instrument"),
            "by_source": group("source")}


def format_summary(s: dict[str, Any], title: str = "") -> str:
    """A :func:`summary` as a small text table (one row per group)."""
    cols = ("files", "songs", "bars", "segments", "notes_per_bar_mean", "notes_per_bar_p95", "bars_without_notes",
            "tempo_bpm_median", "drum_hits_per_bar_mean")
    heads = ("files", "parts", "bars", "segs16", "notes/bar", "p95", "no-note bars", "bpm med", "drums/bar")
    lines = [title] if title else []
    lines.append(f"{'group':<22}" + "".join(f"{h:>13}" for h in heads))

    def row(label: str, st: dict[str, Any]) -> str:
        cells = []
        for c in cols:
            v = st.get(c)
            cells.append(f"{'-':>13}" if v is None else f"{v:>13.2f}" if isinstance(v, float) else f"{v:>13}")
        return f"{label:<22}" + "".join(cells)

    lines.append(row("all", s["all"]))
    for g in ("by_split", "by_source", "by_instrument"):
        for k, st in s[g].items():
            lines.append(row(f"  {g[3:]}={k}", st))
    return "\n".join(lines)


def dataset_report(*, multitrack_root: PathLike | None = None, pop909_root: PathLike | None = None,
                   cache: bool = True, cache_dir: PathLike | None = None,
                   pop909_limit: int | None = None) -> dict[str, Any]:
    """Read every set and summarise it (for a CLI): {set name: {"seconds": read time, "summary": summary}}.

    Sets: multitrack BSD piano, BSD guitar, all-licence piano, all-licence guitar (each all splits),
    and POP909 (all splits, or its first ``pop909_limit`` songs).
    """
    jobs: list[tuple[str, Any]] = []
    for lic, licences in (("bsd", PERMISSIVE_LICENCES), ("all", None)):
        for inst in INSTRUMENTS:
            jobs.append((f"multitrack_{lic}_{inst}",
                         lambda li=licences, i=inst: read_multitrack(None, i, licences=li, root=multitrack_root,
                                                                    cache=cache, cache_dir=cache_dir)))
    jobs.append(("pop909", lambda: read_pop909(None, root=pop909_root, cache=cache, limit=pop909_limit,
                                               cache_dir=cache_dir)))
    out: dict[str, Any] = {}
    for label, job in jobs:
        t0 = time.perf_counter()
        songs = job()
        out[label] = {"seconds": time.perf_counter() - t0, "summary": summary(songs)}
    return out


def drum_note_coverage(root: PathLike | None = None, licences: Sequence[str] | None = PERMISSIVE_LICENCES
                       ) -> dict[str, Any]:
    """Drum notes of the multitrack files (whole files, every meter) kept by each drum table.

    Returns {"notes": all drum notes, "groove_table": kept by GrooVAE's 22 notes, "extended": kept by
    :data:`EXTENDED_PITCH_TO_CLASS`, "dropped_by_pitch": {pitch: count} of what the extended table drops,
    "added_by_pitch": {pitch: count} of what it adds}.
    """
    d = find_multitrack_root(root)
    counts: Counter[int] = Counter()
    for e in read_multitrack_index(d):
        if licences is None or e.licence in licences:
            pm = _load_pretty_midi(d / e.path)
            counts.update(int(n.pitch) for i in pm.instruments if i.is_drum for n in i.notes)
    return _coverage(counts.items())


def _coverage(items: Iterable[tuple[int, int]]) -> dict[str, Any]:
    c = dict(items)
    return {
        "notes": sum(c.values()),
        "groove_table": sum(v for p, v in c.items() if p in PITCH_TO_CLASS),
        "extended": sum(v for p, v in c.items() if p in EXTENDED_PITCH_TO_CLASS),
        "added_by_pitch": {p: v for p, v in sorted(c.items()) if p in EXTENDED_PITCH_TO_CLASS
                           and p not in PITCH_TO_CLASS},
        "dropped_by_pitch": {p: v for p, v in sorted(c.items()) if p not in EXTENDED_PITCH_TO_CLASS},
    }
