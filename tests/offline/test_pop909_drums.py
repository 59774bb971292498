"""Drums for POP909 by Rhythm2Drum: the piano's rhythm, the shipped model on real songs, the cache."""

import numpy as np
import pytest

from rhythmicnet.models.remi import BarNote
from rhythmicnet.offline import music_dataset as md
from rhythmicnet.offline import pop909_drums as pd


def _song(bars):
    n = len(bars)
    return md.SongBars("s", "pop909", "MIT", "train", "piano", 0, np.full(n, 100.0), None, None,
                       [[BarNote(step, pitch, 80, 2) for step, pitch in bar] for bar in bars])


def test_piano_rhythm_is_beats_plus_bass_and_chord_stresses():
    bar = [(0, 48), (2, 72), (3, 40), (6, 60), (6, 64), (6, 67), (9, 76), (10, 80), (14, 50)]
    song = _song([bar, bar])
    class KeepAll:  # draws that drop no accent
        def random(self, n):
            return np.ones(n)

    r = pd.piano_rhythm(song, KeepAll())
    assert r.shape == (32,)
    expected = np.zeros(16, bool)
    expected[[0, 4, 8, 12]] = True  # beats
    expected[[3, 6, 14]] = True  # bass notes on 3 and 14, a 3-note chord on 6; lone high notes are no stress
    np.testing.assert_array_equal(r, np.tile(expected, 2))
    # the accents are thinned at DROP_RATE, the beats never
    long = _song([bar] * 200)
    r = pd.piano_rhythm(long, np.random.default_rng(1)).reshape(200, 16)
    assert r[:, [0, 4, 8, 12]].all()
    assert abs(r[:, [3, 6, 14]].mean() - (1 - pd.DROP_RATE)) < 0.07
    assert not r[:, [1, 2, 5, 7, 9, 10, 11, 13, 15]].any()


@pytest.fixture(scope="module")
def two_songs():
    try:
        songs = md.read_pop909("train", limit=2)
    except Exception:  # noqa: BLE001
        pytest.skip("../shared/data/pop909 is not there")
    return [md.segments(s, length=6, hop=6)[0] for s in songs]


def test_shipped_rhythm2drum_drums_real_songs_and_the_cache_returns_them(two_songs, tmp_path, monkeypatch):
    out = pd.write_drums(two_songs, cache_dir=tmp_path, progress=False)
    assert [s.n_bars for s in out] == [s.n_bars for s in two_songs]
    for src, s in zip(two_songs, out, strict=True):
        assert s.notes == src.notes and src.drum_hits is None  # the piano is untouched, the input not changed
        assert s.drum_hits.shape == (s.n_bars, 9, 16) and s.drum_velocity.shape == s.drum_hits.shape
        np.testing.assert_array_equal(s.drum_hits, s.drum_velocity > 0)
        assert 0.0 < s.drum_velocity.max() <= 1.0
        on_steps = s.drum_hits.any(axis=1)
        assert on_steps.mean() > 0.3  # a drummer plays most steps (Groove: ~80 %)
        assert on_steps[:, [0, 4, 8, 12]].mean() > 0.8  # and the beats of the song's rhythm
    assert len(list(tmp_path.glob("pop909_drums_*.npz"))) == 1

    def no_playing(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(pd, "_play", no_playing)
    again = pd.write_drums(two_songs, cache_dir=tmp_path, progress=False)
    for a, b in zip(out, again, strict=True):
        np.testing.assert_array_equal(a.drum_velocity, b.drum_velocity)
    with pytest.raises(AssertionError, match="cache"):  # another seed is another key
        pd.write_drums(two_songs, cache_dir=tmp_path, progress=False, seed=1)
