"""Tempo errors by ratio (offline/tempo_ratios.py)."""

import numpy as np
import pytest

from rhythmicnet.offline.eval_beat import score_clip
from rhythmicnet.offline.tempo_ratios import (
    CLASSES,
    RATIO_BINS,
    tempo_error_breakdown,
    tempo_ratio_classes,
    tempo_ratio_counts,
)


def test_each_ratio_lands_in_its_bin():
    ref = np.full(len(RATIO_BINS) + 1, 100.0)
    est = ref * np.array([1.0, *(k for _, k in RATIO_BINS)])
    assert list(tempo_ratio_classes(est, ref)) == ["correct", *(name for name, _ in RATIO_BINS)]


def test_tolerance_edges_and_other():
    ref = np.full(8, 120.0)
    #       within 4 %  just out   2x + 3.9 %  2x + 4.1 %   1.2x (no bin)  no tempo  0.5x - 3.9 %  2.5x
    est = np.array([124.8, 125.0, 240 * 1.039, 240 * 1.041, 144.0, np.nan, 60 * 0.961, 300.0])
    assert list(tempo_ratio_classes(est, ref)) == ["correct", "other", "x2", "other", "other", "other", "x1/2",
                                                  "other"]


def test_bins_do_not_overlap():
    ks = np.array([1.0, *(k for _, k in RATIO_BINS)])
    lo, hi = ks * (1 - 0.04), ks * (1 + 0.04)
    assert np.all(hi[np.argsort(ks)][:-1] < lo[np.argsort(ks)][1:])


def test_breakdown_adds_up_to_the_error():
    rng = np.random.default_rng(0)
    ref = rng.uniform(60, 180, 500)
    est = ref * rng.choice([1.0, 0.5, 2.0, 1.5, 0.75, 1.21, 3.0], 500) * rng.uniform(0.97, 1.03, 500)
    b = tempo_error_breakdown(est, ref)
    assert b["n_clips"] == 500
    assert b["acc1"] + b["error"] == pytest.approx(100.0)
    assert sum(b[name] for name, _ in RATIO_BINS) == pytest.approx(b["listed"])
    assert b["listed"] + b["other"] == pytest.approx(b["error"])
    assert b["x1/2"] > 10 and b["x2/3"] == 0.0 and b["other"] > 10  # 1.21x counts as other
    counts = tempo_ratio_counts(est, ref)
    assert list(counts) == list(CLASSES) and sum(counts.values()) == 500


def test_correct_agrees_with_acc1_of_score_clip():
    """The breakdown's 'correct' is eval beat's Acc1 (same tolerance, same inequality)."""
    ref_beats = np.arange(0.0, 30.0, 0.5)  # 120 BPM
    for period in (0.5, 0.52, 0.5 * 1.04, 0.5 / 1.04, 0.53, 1.0, 0.25, 0.75):
        est_beats = np.arange(0.0, 30.0, period)
        s = score_clip(ref_beats, est_beats)
        assert (tempo_ratio_classes([s.est_tempo], [s.ref_tempo])[0] == "correct") == bool(s.acc1)


def test_shapes_are_checked_and_empty_is_nan():
    with pytest.raises(ValueError, match="same length"):
        tempo_ratio_classes(np.ones(3), np.ones(2))
    assert np.isnan(tempo_error_breakdown(np.zeros(0), np.zeros(0))["error"])
