import json

import numpy as np
import pytest
import torch

from rhythmicnet.models.music_transformer import Drum2MusicConfig, Drum2MusicModel
from rhythmicnet.models.remi import BarNote
from rhythmicnet.offline import music_dataset as md
from rhythmicnet.offline.eval_music import (
    best_fixed_histogram,
    bootstrap_ci,
    evaluate_music,
    format_table,
    histogram_overlap,
    ioi,
    note_length_histogram,
    onset_coupling,
    pitch_class_histogram,
    pitch_count_per_bar,
    pitch_interval,
)

BARS = [[BarNote(0, 60, 80, 4), BarNote(0, 64, 80, 4), BarNote(8, 67, 80, 8)], [], [BarNote(4, 72, 90, 2)]]


def test_statistics_on_a_hand_checked_part():
    assert pitch_count_per_bar(BARS) == pytest.approx((3 + 0 + 1) / 3)
    # sorted by onset then pitch: 60, 64, 67, 72 -> |4| + |3| + |5|
    assert pitch_interval(BARS) == pytest.approx(4.0)
    # onsets at steps 0, 8, 36 at 120 BPM (a 16th = 0.125 s): intervals 1.0 and 3.5 s
    assert ioi(BARS, np.full(3, 120.0)) == pytest.approx((1.0 + 3.5) / 2)
    pch = pitch_class_histogram(BARS)
    assert pch.sum() == pytest.approx(1) and pch[0] == pytest.approx(0.5)  # 60 and 72
    nlh = note_length_histogram(BARS)
    assert nlh[2] == pytest.approx(0.5) and nlh[1] == pytest.approx(0.25) and nlh[3] == pytest.approx(0.25)
    assert histogram_overlap(pch, pch) == pytest.approx(1.0)
    assert np.isnan(histogram_overlap(pch, np.zeros(12)))
    drums = np.zeros((3, 9, 16), bool)
    drums[0, 0, 0] = drums[2, 1, 4] = True
    assert onset_coupling(BARS, drums) == pytest.approx(2 / 3)
    assert onset_coupling(BARS, drums, (1,)) == pytest.approx(1 / 3)  # snare only: the step in bar 3
    m, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, float("nan")])
    assert m == pytest.approx(2.0) and lo <= m <= hi


def test_best_fixed_histogram_is_the_highest_mean_overlap():
    a, b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    best, h = best_fixed_histogram([a, a, b])
    assert best == pytest.approx(2 / 3) and h == pytest.approx(a)  # all mass on the majority's bin
    best, _ = best_fixed_histogram([a, b, np.zeros(3)])  # an empty histogram is skipped
    assert best == pytest.approx(0.5)
    # no histogram, random or one of the parts, does better on real-looking histograms
    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.full(12, 0.3), size=20)
    best, h = best_fixed_histogram(list(q))
    assert h.sum() == pytest.approx(1) and (h >= 0).all()
    assert best == pytest.approx(np.mean([histogram_overlap(h, x) for x in q]))
    for cand in [*q, *rng.dirichlet(np.ones(12), size=200)]:
        assert np.mean([histogram_overlap(cand, x) for x in q]) <= best + 1e-9


def test_evaluate_music_runs_on_real_segments_with_a_tiny_model(tmp_path):
    try:
        root = md.find_multitrack_root()
    except Exception:  # noqa: BLE001
        pytest.skip("../shared/data/multitrack_midi is not there")
    cfg = Drum2MusicConfig(d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=1, d_ff=64, mem_len=16,
                           max_bar_len=24, max_drum_len=32, dropout=0.0)
    torch.manual_seed(0)
    for name, c in (("drum2music", cfg), ("drum2music_no_memory", Drum2MusicConfig(**{**cfg.to_dict(),
                                                                                        "mem_len": 0}))):
        torch.save(Drum2MusicModel(c).state_dict(), tmp_path / f"{name}.pt")
        (tmp_path / f"{name}.json").write_text(json.dumps({"config": c.to_dict()}))
    song = md.parse_multitrack_file(root / "freedoom/d_e4m9.mid", "piano")[0]
    segs = md.segments(song, length=4, hop=4)[:3]
    r = evaluate_music("piano", tmp_path, segments=segs, progress=False, ablation_dir=tmp_path)
    for key in ("instrument", "pc_per_bar", "pitch_interval", "ioi", "pch_oa", "nlh_oa", "nll_memory",
                "nll_no_memory", "n_bars", "dataset"):
        assert key in r
    assert r["n_bars"] == 12 and r["n_segments"] == 3 and r["model"] == "drum2music"
    assert r["nll_memory"] > 0 and r["nll_no_memory"] > 0
    assert set(r["dataset"]) >= {"pc_per_bar", "pitch_interval", "ioi"}
    assert r["ms_per_bar"]["median"] > 0
    assert 0 <= r["rest_share"] <= 1 and 0 <= r["dataset"]["rest_share"] <= 1
    for k in ("coupling_kick_snare_generated", "coupling_kick_snare_real", "kick_snare_density"):
        assert 0 <= r[k] <= 1 or np.isnan(r[k])
    assert r["coupling_kick_snare_real"] <= r["coupling_real"] + 1e-9  # kick/snare onsets are a subset
    assert r["coupling_kick_snare_real_mismatched"] <= r["coupling_real_mismatched"] + 1e-9
    assert 0 <= r["coupling_real_mismatched"] <= 1
    for k in ("pch_oa_real_mismatched", "nlh_oa_real_mismatched", "pch_oa_best_fixed", "nlh_oa_best_fixed"):
        assert 0 <= r[k] <= 1
    # the ablation folder holds the same two models: the same figures from the same segments and seeds
    assert set(r["ablation"]) == {"drum2music", "drum2music_no_memory"}
    assert r["ablation"]["drum2music"]["nll"] == pytest.approx(r["nll_memory"])
    assert r["ablation"]["drum2music"]["pch_oa"] == pytest.approx(r["pch_oa"], nan_ok=True)
    assert r["ablation"]["drum2music_no_memory"]["nll"] == pytest.approx(r["nll_no_memory"])
    text = format_table(r)
    assert "paper: RhythmicNet" in text and "NLL" in text and "ablation, equal budget" in text
