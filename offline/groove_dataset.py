"""The Groove MIDI Dataset for Rhythm2Drum: drum grids per file, 2-bar windows, and the input rhythm.

Data: ``shared/data/groove_midi/groove/`` (Gillick et al. 2019, CC BY 4.0; 1150 MIDI files and
``info.csv``). Torch-free numpy API; the training loop wraps it.

Decisions:

* **Split**: info.csv's own ``split`` column (train / validation / test), 4/4 files only (1138 of
  1150: 887 / 122 / 129). The paper used a random 0.8/0.1/0.1 split instead.
* **Grids**: one :class:`~rhythmicnet.models.drum_grid.DrumGrid` per file (whole bars up to the
  last note). Tick 0 is a downbeat (over the training windows kicks peak on steps 0 and 8 of the
  bar, snares on 4 and 12), so steps 0, 4, 8, ... are the beats.
* **Cache**: parsing all 1150 files with mido takes ~9 s on this 2-core machine (almost all of it
  mido's file reading); ``load_split`` keeps the grids of a split in a compressed ``.npz`` under
  ``cache_dir`` (default ``$XDG_CACHE_HOME/rhythmicnet`` or ``~/.cache/rhythmicnet``), keyed by
  the parser version and the name, size and mtime of every file, so a changed file or parser
  re-parses. Loading a cached split takes well under a second.
* **Windows**: 32 steps (2 bars) with a hop of 16 (one bar), starting on bar lines, only where
  the whole window lies inside the file. Files shorter than 2 bars (most of the ~1-bar "fill"
  files) give no window; windows without any hit are dropped (none in the data).
* **Input rhythm** (``derive_rhythms``): what Video2Rhythm gives from a dancer — beats plus a
  sparse set of accents — not the target's own onsets (any drum hit marks ~75 % of the steps of
  the training windows, which would hand the model the answer). Per window:

  - every 4th step (the quarter-note beats) is always on;
  - kick and snare onsets on the other steps are the accents; each is dropped with probability
    ``drop_rate``, by default drawn per window uniformly from [0.3, 1.0], so densities vary from
    window to window as a dancer's style density does, down to beats alone;
  - every other off-beat step gets an extra accent with probability ``insert_rate`` = 0.05
    (style events that match no drum).

  Training windows (seed 0) then have a mean density of 38.1 % (beats 25 % + accents; per window
  5 / 50 / 95 % quantiles 25 / 34 / 59 %), inside the 30-45 % of beats + style, and 84 % of the
  accents are real kick/snare onsets; ``density_report`` gives the figures. For comparison, 42 % of
  the off-beat steps of the training windows carry a kick or snare, beats ∪ kick ∪ snare would be
  57 % dense and any drum hit 75 %. The style stream on the bundled example clips (jumping jacks,
  squats; ``rhythmicnet rhythm``) gives 26 %: few style events besides the beats.
* **Reproducible**: ``rng`` is a ``numpy.random.Generator`` or a seed; ``epoch_rng(seed, epoch)``
  gives an independent, reproducible stream per epoch for re-sampling the rhythms each epoch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rhythmicnet.errors import InputError, OutputError
from rhythmicnet.fileio import atomic_path, ensure_output_dir
from rhythmicnet.models.drum_grid import KICK, NUM_CLASSES, SNARE, DrumGrid
from rhythmicnet.models.rhythm_grid import STEPS_PER_BAR, STEPS_PER_BEAT
from rhythmicnet.offline.drum_midi import read_midi_file

SPLITS: tuple[str, ...] = ("train", "validation", "test")
WINDOW_STEPS = 2 * STEPS_PER_BAR
WINDOW_HOP = STEPS_PER_BAR
#: Bumped whenever the MIDI -> grid conversion changes, so cached grids are re-parsed.
PARSER_VERSION = 1

DEFAULT_DROP_RATE: tuple[float, float] = (0.3, 1.0)
DEFAULT_INSERT_RATE = 0.05
ACCENT_CLASSES: tuple[int, ...] = (KICK, SNARE)

RngLike = np.random.Generator | int | Sequence[int] | None


@dataclass(frozen=True)
class GrooveEntry:
    """One row of info.csv."""

    drummer: str
    session: str
    id: str
    style: str
    bpm: int
    beat_type: str
    time_signature: str
    midi_filename: str
    duration: float
    split: str


# --- locating and listing --------------------------------------------------------------------


def find_groove_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding info.csv.

    ``root`` may be that folder or one above it (``.../groove_midi`` holds ``groove/info.csv``).
    Without ``root``: ``$RHYTHMICNET_GROOVE_DIR``, else ``shared/data/groove_midi`` beside or inside
    the repository. Raises InputError when none is found.
    """
    candidates: list[Path] = []
    if root is not None:
        candidates.append(Path(root))
    else:
        env = os.environ.get("RHYTHMICNET_GROOVE_DIR")
        if env:
            candidates.append(Path(env))
        repo = Path(__file__).resolve().parents[1]
        candidates += [repo.parent / "shared" / "data" / "groove_midi", repo / "shared" / "data" / "groove_midi"]
    for c in candidates:
        for d in (c, c / "groove"):
            if (d / "info.csv").is_file():
                return d.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise InputError(f"Groove MIDI Dataset not found (no info.csv in {where}); pass its folder or set "
                     "RHYTHMICNET_GROOVE_DIR")


def read_info(root: str | os.PathLike[str] | None = None) -> list[GrooveEntry]:
    """All rows of info.csv, in file order."""
    d = find_groove_root(root)
    path = d / "info.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [GrooveEntry(r["drummer"], r["session"], r["id"], r["style"], int(r["bpm"]), r["beat_type"],
                            r["time_signature"], r["midi_filename"], float(r["duration"]), r["split"]) for r in rows]
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: not a Groove MIDI Dataset info.csv ({e})") from e


def split_entries(split: str, root: str | os.PathLike[str] | None = None, *, limit: int | None = None,
                  four_four_only: bool = True) -> list[GrooveEntry]:
    """The rows of one split (info.csv order), 4/4 only by default, the first ``limit`` of them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    rows = [e for e in read_info(root) if e.split == split and (not four_four_only or e.time_signature == "4-4")]
    return rows if limit is None else rows[:limit]


# --- grids and the cache ----------------------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rhythmicnet"


def _cache_key(split: str, entries: Sequence[GrooveEntry], d: Path) -> str:
    h = hashlib.sha256(f"groove-grids v{PARSER_VERSION} {split}\n".encode())
    for e in entries:
        st = (d / e.midi_filename).stat()
        h.update(f"{e.midi_filename}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _save_grids(path: Path, names: Sequence[str], grids: Sequence[DrumGrid]) -> None:
    lengths = np.array([g.num_steps for g in grids], dtype=np.int64)
    empty = np.zeros((NUM_CLASSES, 0))
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            names=np.array(names, dtype=str),
            lengths=lengths,
            bpm=np.array([g.bpm for g in grids], dtype=np.float64),
            hits=np.concatenate([g.hits for g in grids] or [empty.astype(bool)], axis=1),
            velocities=np.concatenate([g.velocities for g in grids] or [empty.astype(np.float32)], axis=1),
            offsets=np.concatenate([g.offsets for g in grids] or [empty.astype(np.float32)], axis=1),
        )


def _load_grids(path: Path, names: Sequence[str]) -> list[DrumGrid] | None:
    """Grids from a cache file, or None when it is unreadable or for other files."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if [str(n) for n in z["names"]] != list(names):
                return None
            bounds = np.concatenate([[0], np.cumsum(z["lengths"])])
            h, v, o, bpm = z["hits"], z["velocities"], z["offsets"], z["bpm"]
            return [DrumGrid(h[:, a:b], v[:, a:b], o[:, a:b], float(t))
                    for a, b, t in zip(bounds[:-1], bounds[1:], bpm, strict=True)]
    except (OSError, KeyError, ValueError):
        return None


def load_split(split: str, root: str | os.PathLike[str] | None = None, *, limit: int | None = None,
               cache: bool = True, cache_dir: str | os.PathLike[str] | None = None,
               four_four_only: bool = True) -> list[DrumGrid]:
    """The drum grids of one split, in info.csv order (see :func:`split_entries` for the files).

    Args:
        split: "train", "validation" or "test".
        root: the dataset folder (see :func:`find_groove_root`).
        limit: only the first ``limit`` files (a smoke test: ``limit=3`` of train is ~190 bars).
        cache: read/write the parsed grids as a compressed .npz in ``cache_dir``
            (default :func:`default_cache_dir`).
    """
    d = find_groove_root(root)
    entries = split_entries(split, d, limit=limit, four_four_only=four_four_only)
    names = [e.midi_filename for e in entries]
    path = None
    if cache:
        try:
            key = _cache_key(split, entries, d)
        except OSError as e:
            raise InputError(f"{d}: cannot read the dataset files ({e})") from e
        path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = path / f"groove_{split}_{key}.npz"
        if path.is_file():
            cached = _load_grids(path, names)
            if cached is not None:
                return cached
    grids = [read_midi_file(d / n) for n in names]
    if path is not None:
        try:
            ensure_output_dir(path.parent)
            _save_grids(path, names, grids)
        except (OutputError, OSError) as e:  # a cache that cannot be written only costs time
            warnings.warn(f"Groove grid cache not written: {e}", stacklevel=2)
    return grids


def parse_time(root: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Seconds to parse every split without the cache, and to load them back from a fresh cache."""
    import tempfile

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        n = sum(len(load_split(s, root, cache=True, cache_dir=tmp)) for s in SPLITS)
        t1 = time.perf_counter()
        for s in SPLITS:
            load_split(s, root, cache=True, cache_dir=tmp)
        t2 = time.perf_counter()
    out.update(files=float(n), parse_and_write_cache_s=t1 - t0, load_cache_s=t2 - t1)
    return out


# --- windows ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DrumWindows:
    """Fixed-length windows cut from grids. Shapes: hits (N, 9, S) bool, velocities/offsets (N, 9, S) float32,
    grid_index/start (N,) int64 (source grid and its first step), bpm (N,) float64."""

    hits: np.ndarray
    velocities: np.ndarray
    offsets: np.ndarray
    grid_index: np.ndarray
    start: np.ndarray
    bpm: np.ndarray

    def __len__(self) -> int:
        return int(self.hits.shape[0])

    @property
    def steps(self) -> int:
        return int(self.hits.shape[2])

    def grid(self, i: int) -> DrumGrid:
        return DrumGrid(self.hits[i], self.velocities[i], self.offsets[i], float(self.bpm[i]))

    def subset(self, index: np.ndarray | slice) -> DrumWindows:
        return DrumWindows(self.hits[index], self.velocities[index], self.offsets[index], self.grid_index[index],
                           self.start[index], self.bpm[index])


def make_windows(grids: Sequence[DrumGrid], steps: int = WINDOW_STEPS, hop: int = WINDOW_HOP, *,
                 drop_silent: bool = True) -> DrumWindows:
    """Windows of ``steps`` steps every ``hop`` steps from step 0 of each grid, wholly inside the grid.

    With the defaults (32, 16) every window starts on a bar line, so its beats are steps 0, 4, 8, ...
    ``drop_silent`` drops windows without a single hit.
    """
    if steps <= 0 or hop <= 0:
        raise ValueError("steps and hop must be positive")
    idx, starts = [], []
    for gi, g in enumerate(grids):
        for s in range(0, g.num_steps - steps + 1, hop):
            if drop_silent and not g.hits[:, s : s + steps].any():
                continue
            idx.append(gi)
            starts.append(s)
    n = len(idx)
    h = np.zeros((n, NUM_CLASSES, steps), dtype=bool)
    v = np.zeros((n, NUM_CLASSES, steps), dtype=np.float32)
    o = np.zeros((n, NUM_CLASSES, steps), dtype=np.float32)
    for k, (gi, s) in enumerate(zip(idx, starts, strict=True)):
        g = grids[gi]
        h[k], v[k], o[k] = g.hits[:, s : s + steps], g.velocities[:, s : s + steps], g.offsets[:, s : s + steps]
    bpm = np.array([grids[gi].bpm for gi in idx], dtype=np.float64)
    return DrumWindows(h, v, o, np.array(idx, dtype=np.int64), np.array(starts, dtype=np.int64), bpm)


# --- the input rhythm ---------------------------------------------------------------------------


def as_rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """An independent, reproducible generator for one epoch's rhythms."""
    return np.random.default_rng([seed, epoch])


def beat_mask(steps: int, phase: int = 0) -> np.ndarray:
    """(steps,) bool: True on the quarter-note beats (every 4th step from ``phase``)."""
    return (np.arange(steps) - phase) % STEPS_PER_BEAT == 0


def derive_rhythms(hits: np.ndarray, rng: RngLike = None, *, drop_rate: float | Sequence[float] = DEFAULT_DROP_RATE,
                   insert_rate: float = DEFAULT_INSERT_RATE, accent_classes: Sequence[int] = ACCENT_CLASSES,
                   beat_phase: int = 0) -> np.ndarray:
    """Input rhythms for a batch of windows: beats ∪ thinned accents ∪ random extra accents.

    Args:
        hits: (N, 9, S) target hits (windows starting on a beat when ``beat_phase`` is 0).
        rng: generator or seed; the same seed gives the same rhythms.
        drop_rate: probability of dropping each off-beat accent; a (low, high) pair draws one rate per
            window uniformly.
        insert_rate: probability that an off-beat step without an accent gets one.
        accent_classes: classes whose onsets are accents (default kick and snare).
    Returns:
        (N, S) bool. Beats are always on; only off-beat steps are changed by dropout and insertion.
    """
    h = np.asarray(hits).astype(bool)
    if h.ndim != 3 or h.shape[1] != NUM_CLASSES:
        raise ValueError(f"hits must have shape (N, {NUM_CLASSES}, S), got {h.shape}")
    g = as_rng(rng)
    n, _, s = h.shape
    beats = beat_mask(s, beat_phase)[None, :]
    accents = h[:, list(accent_classes), :].any(axis=1) & ~beats
    rate = np.asarray(drop_rate, dtype=np.float64)
    if rate.shape == (2,):
        p_drop = g.uniform(rate[0], rate[1], size=(n, 1))
    elif rate.shape == ():
        p_drop = np.full((n, 1), float(rate))
    else:
        raise ValueError(f"drop_rate is a probability or a (low, high) pair, got {drop_rate!r}")
    u = g.random((n, s))
    kept = accents & (u >= p_drop)
    inserted = ~accents & ~beats & (g.random((n, s)) < insert_rate)
    return beats | kept | inserted


def derive_rhythm(window: DrumGrid | np.ndarray, rng: RngLike = None, **kwargs: Any) -> np.ndarray:
    """The input rhythm of one window (a DrumGrid or its (9, S) hits): (S,) bool. See :func:`derive_rhythms`."""
    hits = window.hits if isinstance(window, DrumGrid) else np.asarray(window)
    return derive_rhythms(hits[None], rng, **kwargs)[0]


def rhythm_density(rhythms: np.ndarray) -> float:
    """Share of steps with an onset."""
    r = np.asarray(rhythms)
    return float(r.mean()) if r.size else 0.0


def density_report(windows: DrumWindows, rng: RngLike = 0, **kwargs: Any) -> dict[str, float]:
    """Density figures of the derived rhythms of ``windows`` beside those of the drums themselves."""
    r = derive_rhythms(windows.hits, rng, **kwargs)
    per_window = r.mean(axis=1)
    beats = beat_mask(windows.steps)
    ks = windows.hits[:, list(kwargs.get("accent_classes", ACCENT_CLASSES)), :].any(axis=1)
    return {
        "windows": float(len(windows)),
        "rhythm_density": rhythm_density(r),
        "rhythm_density_p05": float(np.percentile(per_window, 5)) if len(r) else 0.0,
        "rhythm_density_p50": float(np.percentile(per_window, 50)) if len(r) else 0.0,
        "rhythm_density_p95": float(np.percentile(per_window, 95)) if len(r) else 0.0,
        "beat_share": float(beats.mean()),
        "accent_density_offbeat": float(r[:, ~beats].mean()) if len(r) else 0.0,
        "accents_from_drums": float((r & ks)[:, ~beats].sum() / max(int(r[:, ~beats].sum()), 1)),
        "any_drum_density": float(windows.hits.any(axis=1).mean()) if len(r) else 0.0,
        "kick_snare_density": float(ks.mean()) if len(r) else 0.0,
        "beats_or_kick_snare_density": float((ks | beats).mean()) if len(r) else 0.0,
    }


def describe_rates() -> str:
    """The default rates as one line (for reports and manifests)."""
    return json.dumps({"drop_rate": list(DEFAULT_DROP_RATE), "insert_rate": DEFAULT_INSERT_RATE,
                       "accent_classes": ["kick", "snare"], "beats": "every 4th step"})
