"""Tempo errors by ratio: how far off a wrong clip tempo is, as a ratio to the true tempo.

A clip's tempo is right (Acc1) when it lies within 4 % of the true tempo. The tempo error is
1 - Acc1, and each wrong clip falls into one bin by the ratio r = estimated / true tempo:

* ``x1/3``, ``x1/2``, ``x2/3``, ``x3/4``, ``x4/3``, ``x3/2``, ``x2``, ``x3``: r within 4 % of that
  value (``|est - k * ref| <= 0.04 * k * ref``, the same relative test as Acc1 and as mir_eval's tempo
  tolerance, scaled by k). At 4 % no two bins overlap (the closest pair, 2/3 and 3/4, is 12 % apart);
* ``other``: every other wrong clip, including a clip with no tempo at all (fewer than two beats: a
  non-finite estimate) and a clip whose true tempo is not finite.

So the bins plus ``other`` add up to the error, and ``listed`` (the eight ratio bins together) is
the part of the error that is a metrical-level confusion rather than a wrong tempo. Pure numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Relative tolerance of every bin, like Acc1's.
TEMPO_TOLERANCE = 0.04
#: The ratio bins, (name, est / true).
RATIO_BINS: tuple[tuple[str, float], ...] = (
    ("x1/3", 1.0 / 3.0), ("x1/2", 0.5), ("x2/3", 2.0 / 3.0), ("x3/4", 0.75),
    ("x4/3", 4.0 / 3.0), ("x3/2", 1.5), ("x2", 2.0), ("x3", 3.0),
)
RATIO_NAMES: tuple[str, ...] = tuple(name for name, _ in RATIO_BINS)
CORRECT = "correct"
OTHER = "other"
#: Every class a clip can fall in, in table order.
CLASSES: tuple[str, ...] = (CORRECT, *RATIO_NAMES, OTHER)


def tempo_ratio_classes(est: np.ndarray, ref: np.ndarray, tolerance: float = TEMPO_TOLERANCE) -> np.ndarray:
    """The class of each clip's tempo: ``correct`` (within ``tolerance`` of ``ref``), a ratio bin, or ``other``.

    est (N,), ref (N,) tempi in BPM (any positive unit works: only ratios matter) -> (N,) str (``CLASSES``).
    """
    est = np.asarray(est, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if est.shape != ref.shape:
        raise ValueError(f"est and ref must have the same length, got {est.shape} and {ref.shape}")
    out = np.full(est.shape, OTHER, dtype=object)
    ok = np.flatnonzero(np.isfinite(est) & np.isfinite(ref) & (ref > 0))
    e, r = est[ok], ref[ok]
    for name, k in ((CORRECT, 1.0), *RATIO_BINS):
        # the very test of Acc1 in eval_beat.score_clip (k = 1), so the two agree to the last bit
        hit = (np.abs(e - k * r) <= tolerance * k * r) & (out[ok] == OTHER)
        out[ok[hit]] = name
    return out.astype(str)


def tempo_ratio_counts(est: np.ndarray, ref: np.ndarray, tolerance: float = TEMPO_TOLERANCE) -> dict[str, int]:
    """How many clips fall in each class: est (N,), ref (N,) BPM -> {class: count} over ``CLASSES``."""
    classes = tempo_ratio_classes(est, ref, tolerance)
    return {c: int(np.sum(classes == c)) for c in CLASSES}


def tempo_error_breakdown(est: np.ndarray, ref: np.ndarray, tolerance: float = TEMPO_TOLERANCE) -> dict[str, Any]:
    """Acc1, the tempo error 1 - Acc1 and its split by ratio, as % of all N clips.

    est (N,), ref (N,) BPM -> {"n_clips", "acc1", "error", "x1/3" ... "x3", "other", "listed"}: the ratio
    bins and ``other`` add up to ``error``; ``listed`` is the eight ratio bins together. With N = 0 every
    figure is NaN.
    """
    counts = tempo_ratio_counts(est, ref, tolerance)
    n = sum(counts.values())

    def pct(c: int) -> float:
        return 100.0 * c / n if n else float("nan")

    out: dict[str, Any] = {"n_clips": n, "acc1": pct(counts[CORRECT]), "error": pct(n - counts[CORRECT])}
    out.update({name: pct(counts[name]) for name in (*RATIO_NAMES, OTHER)})
    out["listed"] = pct(sum(counts[name] for name in RATIO_NAMES))
    return out
