"""A tiny real Rhythm2Drum training run (a few steps on a few Groove files), its weights loaded and used
by the generator, resume from the checkpoint, and the Table 2 evaluation on the result."""

import json

import numpy as np
import pytest

from rhythmicnet.cli import main
from rhythmicnet.errors import WeightsError
from rhythmicnet.models.rhythm2drum import HITS_WEIGHTS, MANIFEST, Rhythm2Drum, SamplingConfig
from rhythmicnet.offline.eval_drums import ndb, onset_f
from rhythmicnet.offline.train_drums import DrumTrainConfig, train_drums


@pytest.fixture(scope="module")
def tiny_run(shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("drums")
    root = shared_dir / "data" / "groove_midi"
    cfg = DrumTrainConfig(epochs=2, limit_files=10, max_steps_per_epoch=4, batch_size=32, d_model=64)
    manifest = train_drums(out, config=cfg, groove_root=root, progress=False)
    return out, manifest, root


def test_tiny_training_writes_loadable_weights(tiny_run):
    out, manifest, _ = tiny_run
    assert manifest["training"]["epochs_run"] == 2 and manifest["training"]["steps"] == 8
    h = manifest["history"]
    assert h[-1]["train_ce"] < h[0]["train_ce"]  # it learns
    assert json.loads((out / MANIFEST).read_text())["vocabulary"]["size"] > 2
    model = Rhythm2Drum.load(out)
    rhythm = np.zeros(64, bool)
    rhythm[::4] = True
    a = model.generate(rhythm, sampling=SamplingConfig(seed=3))
    b = model.generate(rhythm, sampling=SamplingConfig(seed=3))
    assert a.hits.shape == (9, 64)
    assert np.array_equal(a.hits, b.hits) and np.allclose(a.velocities, b.velocities)
    assert np.all((a.velocities == 0) | a.hits)
    assert 0 <= a.velocities.min() and a.velocities.max() <= 1 and a.offsets.max() < 0.5


def test_generation_bar_after_bar_keeps_played_bars(tiny_run):
    out, _, _ = tiny_run
    model = Rhythm2Drum.load(out)
    rng = np.random.default_rng(0)
    rhythm = rng.random(16 * 5) < 0.4
    grid = model.generate(rhythm, sampling=SamplingConfig(seed=1))
    # The first 3 bars of a 5-bar performance are those of the 3-bar performance with the same seed:
    # bars are planned one at a time and never rewritten.
    short = model.generate(rhythm[: 16 * 3], sampling=SamplingConfig(seed=1))
    assert np.array_equal(grid.hits[:, : 16 * 3], short.hits)


def test_resume_continues_from_checkpoint(tiny_run, tmp_path):
    out, _, root = tiny_run
    cfg = DrumTrainConfig(epochs=3, limit_files=10, max_steps_per_epoch=4, batch_size=32, d_model=64)
    (tmp_path / "ck").mkdir()
    ck = tmp_path / "ck" / "run.ckpt"
    import shutil

    shutil.copy(out / "rhythm2drum.ckpt", ck)
    manifest = train_drums(tmp_path / "w", config=cfg, checkpoint=ck, resume=True, groove_root=root, progress=False)
    assert [r["epoch"] for r in manifest["history"]] == [1, 2, 3]
    assert manifest["training"]["steps"] == 12


def test_eval_command_prints_table_and_json(tiny_run, tmp_path, capsys):
    out, _, root = tiny_run
    js = tmp_path / "eval.json"
    code = main(["eval", "drums", "--weights", str(out), "--groove-root", str(root), "--limit-files", "6",
                 "--samples", "300", "--json", str(js), "-q"])
    assert code == 0
    text = capsys.readouterr().out
    assert "RhythmicNet (paper)" in text and "trivial" in text
    rec = json.loads(js.read_text())
    for key in ("ndb", "ndb_real", "mse_velocity", "mse_offset", "mse_velocity_trivial", "mse_offset_trivial",
                "n_generated", "onset_f_real", "onset_f_random", "onset_f_shuffle"):
        assert key in rec
    assert rec["n_generated"] == 300


def test_corrupt_weights_are_a_clear_error(tiny_run, tmp_path):
    out, _, _ = tiny_run
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / HITS_WEIGHTS).write_bytes(b"not torch")
    with pytest.raises(WeightsError, match=HITS_WEIGHTS):
        Rhythm2Drum.load(bad)


def test_ndb_and_onset_f_on_known_cases():
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 3
    train = np.repeat(centres, 250, axis=0) + rng.normal(0, 0.1, (1000, 4))
    same = np.repeat(centres, 250, axis=0) + rng.normal(0, 0.1, (1000, 4))
    skewed = np.repeat(centres[:1], 1000, axis=0)
    assert ndb(train, same, centres)[0] == 0
    assert ndb(train, skewed, centres)[0] == 4
    h = np.zeros((1, 9, 8), bool)
    h[0, 0, ::2] = True
    g = np.zeros_like(h)
    g[0, 2, :4] = True  # hits steps 0..3: 2 of 4 right, 2 of 4 targets found
    assert onset_f(g, h) == pytest.approx(0.5)
    assert onset_f(h, h) == 1.0


def test_bars_never_depend_on_future_rhythm_and_live_equals_render(tiny_run):
    out, _, _ = tiny_run
    model = Rhythm2Drum.load(out)
    rng = np.random.default_rng(5)
    rhythm = rng.random(16 * 4) < 0.4
    other = rhythm.copy()
    other[32:] = ~other[32:]  # bars 2 and 3 change
    a = model.generate(rhythm, sampling=SamplingConfig(seed=9))
    b = model.generate(other, sampling=SamplingConfig(seed=9))
    assert np.array_equal(a.hits[:, :32], b.hits[:, :32])
    assert np.allclose(a.velocities[:, :32], b.velocities[:, :32])
    # The live path: one next_bar call per bar gives the same performance.
    perf = model.performer(SamplingConfig(seed=9))
    bars = [perf.next_bar(rhythm[i * 16 : (i + 1) * 16]) for i in range(4)]
    assert np.array_equal(np.concatenate([g.hits for g in bars], axis=1), a.hits)
    perf.reset()
    assert np.array_equal(perf.next_bar(rhythm[:16]).hits, a.hits[:, :16])
    # Many streams at once (POP909's drums): one stream gives generate's drums, several keep the shapes.
    h, v, o = model.generate_batch(rhythm[None], sampling=SamplingConfig(seed=9))
    assert np.array_equal(h[0], a.hits) and np.allclose(v[0], a.velocities) and np.allclose(o[0], a.offsets)
    h, v, o = model.generate_batch(np.stack([rhythm, other, rhythm]), sampling=SamplingConfig(seed=9))
    assert h.shape == v.shape == o.shape == (3, 9, 64) and not v[~h.astype(bool)].any()
    with pytest.raises(ValueError, match="bars"):
        model.generate_batch(rhythm[None, :20])


def test_chance_corrected_agreement():
    from rhythmicnet.offline.eval_drums import accent_following, cohen_kappa

    a = np.array([True, False, True, False] * 10)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(a, ~a) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    assert abs(cohen_kappa(rng.random(20000) < 0.3, rng.random(20000) < 0.7)) < 0.03
    hits = np.zeros((1, 9, 16), bool)
    rhythm = np.zeros((1, 16), bool)
    rhythm[0, [2, 6]] = True
    hits[0, 0, [2, 6]] = True  # kicks exactly on the accents
    assert accent_following(hits, rhythm) == pytest.approx(1.0)


def test_onset_f_gain_is_density_fair():
    from rhythmicnet.offline.eval_drums import mismatched_pairs, onset_f_gain

    grid_index = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pair = mismatched_pairs(grid_index)
    assert np.all(grid_index[pair] != grid_index)
    rng = np.random.default_rng(3)
    targets = rng.random((400, 9, 32)) < 0.05  # ~37 % of steps hit
    gi = np.repeat(np.arange(100), 4)
    pair = mismatched_pairs(gi)
    # A copy of each target gains a lot; an all-on output, however high its F, gains nothing;
    # drums independent of the target gain ~0.
    assert onset_f_gain(targets, targets, pair) > 0.4
    assert onset_f_gain(np.ones_like(targets), targets, pair) == pytest.approx(0.0, abs=0.02)
    assert abs(onset_f_gain(rng.random((400, 9, 32)) < 0.05, targets, pair)) < 0.02
