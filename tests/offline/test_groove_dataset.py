import csv
import shutil

import numpy as np
import pytest

from rhythmicnet.errors import InputError
from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.hits_vocabulary import HitsVocabulary, read_reference_words
from rhythmicnet.offline.groove_dataset import (
    SPLITS,
    beat_mask,
    density_report,
    derive_rhythm,
    derive_rhythms,
    epoch_rng,
    find_groove_root,
    load_split,
    make_windows,
    split_entries,
)


@pytest.fixture(scope="module")
def groove_root(shared_dir):
    d = shared_dir / "data" / "groove_midi"
    if not (d / "groove" / "info.csv").is_file():
        pytest.skip(f"{d} not found")
    return d


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("groove_cache")


@pytest.fixture(scope="module")
def splits(groove_root, cache_dir):
    """Every split parsed once per test module (about 9 s), through the cache."""
    return {s: load_split(s, groove_root, cache_dir=cache_dir) for s in SPLITS}


def test_split_counts_match_info_csv(groove_root, splits):
    with (groove_root / "groove" / "info.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1150
    for s in SPLITS:
        expected = [r["midi_filename"] for r in rows if r["split"] == s and r["time_signature"] == "4-4"]
        assert [e.midi_filename for e in split_entries(s, groove_root)] == expected
        assert len(splits[s]) == len(expected)
    assert [len(splits[s]) for s in SPLITS] == [887, 122, 129]
    assert len(split_entries("train", groove_root, four_four_only=False)) == 897
    with pytest.raises(ValueError, match="split"):
        split_entries("valid", groove_root)


def test_root_lookup_and_errors(groove_root, tmp_path):
    assert find_groove_root(groove_root) == find_groove_root(groove_root / "groove")
    with pytest.raises(InputError, match="not found"):
        find_groove_root(tmp_path)


def test_cache_round_trip_and_invalidation(groove_root, tmp_path):
    first = load_split("test", groove_root, limit=3, cache_dir=tmp_path)
    files = list(tmp_path.glob("groove_test_*.npz"))
    assert len(files) == 1
    again = load_split("test", groove_root, limit=3, cache_dir=tmp_path)
    uncached = load_split("test", groove_root, limit=3, cache=False)
    assert len(first) == 3
    for a, b, c in zip(first, again, uncached, strict=True):
        assert a.equals(b) and a.equals(c)
    # a different file set has its own cache entry
    load_split("test", groove_root, limit=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("groove_test_*.npz"))) == 2
    # a changed file invalidates the cache (its size/mtime is in the key)
    copy = tmp_path / "data"
    shutil.copytree(groove_root / "groove", copy, ignore=shutil.ignore_patterns("drummer[2-9]*", "drummer10"))
    name = split_entries("test", copy, limit=1)[0].midi_filename
    load_split("test", copy, limit=1, cache_dir=tmp_path / "c")
    src = copy / split_entries("train", copy, limit=1)[0].midi_filename
    shutil.copyfile(src, copy / name)
    changed = load_split("test", copy, limit=1, cache_dir=tmp_path / "c")[0]
    assert changed.equals(load_split("train", copy, limit=1, cache=False)[0])


def test_unwritable_cache_only_warns(groove_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="cache not written"):
        grids = load_split("test", groove_root, limit=1, cache_dir=blocker)
    assert len(grids) == 1


def test_windows_shapes_and_positions(splits):
    grids = splits["train"][:3]
    w = make_windows(grids)
    assert w.hits.shape == (len(w), 9, 32) and w.hits.dtype == bool
    assert w.velocities.shape == w.offsets.shape == w.hits.shape and w.velocities.dtype == np.float32
    assert np.all(w.start % 16 == 0)
    assert len(w) == sum(max(0, g.num_steps // 16 - 1) for g in grids)  # every 2-bar window, hop 1 bar
    k = len(w) // 2
    g = grids[int(w.grid_index[k])]
    assert w.grid(k).equals(g.window(int(w.start[k]), 32))
    assert np.array_equal(w.hits[1, :, :16], w.hits[0, :, 16:])  # consecutive windows overlap by a bar
    one_bar = make_windows(grids, steps=16, hop=16)
    assert len(one_bar) == sum(g.num_steps // 16 for g in grids)
    short = DrumGrid.from_hits(np.ones((9, 16), dtype=bool))
    assert len(make_windows([short])) == 0
    silent = DrumGrid.empty(64)
    assert len(make_windows([silent])) == 0 and len(make_windows([silent], drop_silent=False)) == 3


def test_rhythm_beats_density_and_reproducibility(splits):
    w = make_windows(splits["train"])
    assert 15000 < len(w) < 18000
    r = derive_rhythms(w.hits, 0)
    assert r.shape == (len(w), 32) and r.dtype == bool
    assert r[:, beat_mask(32)].all()  # beats on every 4th step, always
    assert 0.30 <= r.mean() <= 0.45
    report = density_report(w, 0)
    assert report["rhythm_density"] == pytest.approx(r.mean())
    assert report["any_drum_density"] > 0.6  # what the input must not be
    assert report["accents_from_drums"] > 0.7  # most accents are real kick/snare onsets
    # reproducible with a seed, different across epochs
    assert np.array_equal(derive_rhythms(w.hits[:200], 7), derive_rhythms(w.hits[:200], 7))
    assert np.array_equal(derive_rhythms(w.hits[:200], epoch_rng(3, 1)), derive_rhythms(w.hits[:200], epoch_rng(3, 1)))
    assert not np.array_equal(derive_rhythms(w.hits[:200], epoch_rng(3, 1)),
                              derive_rhythms(w.hits[:200], epoch_rng(3, 2)))
    one = derive_rhythm(w.grid(5), np.random.default_rng(1))
    assert np.array_equal(one, derive_rhythms(w.hits[5:6], np.random.default_rng(1))[0])


def test_rhythm_rates_behave():
    rng = np.random.default_rng(0)
    hits = rng.random((400, 9, 32)) < 0.3
    off = ~beat_mask(32)
    ks = hits[:, :2].any(axis=1)
    none = derive_rhythms(hits, 0, drop_rate=1.0, insert_rate=0.0)
    assert np.array_equal(none, np.broadcast_to(beat_mask(32), none.shape))
    full = derive_rhythms(hits, 0, drop_rate=0.0, insert_rate=0.0)
    assert np.array_equal(full[:, off], ks[:, off])
    ins = derive_rhythms(hits, 0, drop_rate=1.0, insert_rate=0.2)
    assert ins[:, off][ks[:, off]].sum() == 0
    assert ins[:, off][~ks[:, off]].mean() == pytest.approx(0.2, abs=0.02)
    half = derive_rhythms(hits, 0, drop_rate=0.5, insert_rate=0.0)
    assert half[:, off][ks[:, off]].mean() == pytest.approx(0.5, abs=0.03)


def test_vocabulary_against_reference(splits, shared_dir):
    ref_path = shared_dir / "data" / "rhythmicnet_reference" / "hits_vocab_152.json"
    if not ref_path.is_file():
        pytest.skip(f"{ref_path} not found")
    ref = read_reference_words(ref_path)
    assert len(ref) == 152
    ours = HitsVocabulary.build([g.hits for g in splits["train"]])
    assert len(ours.masks) == 150 and ours.size == 152
    assert len(set(ours.words) & set(ref)) == 149
    every = HitsVocabulary.build([g.hits for s in SPLITS for g in splits[s]])
    assert set(ref) <= set(every.words)  # the reference's words are the whole dataset's combinations
    assert ours.coverage([g.hits for g in splits["test"]]) > 0.9999
