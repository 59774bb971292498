"""The beat predictor: a Kalman filter over decided beats that extrapolates the live beat grid."""

from __future__ import annotations

import numpy as np
import pytest

from rhythmicnet.models.beat_predictor import BeatGrid, BeatPredictor, BeatPredictorConfig, BeatPredictorState


def _beats(period: float, n: int, jitter: float = 0.0, seed: int = 0, start: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start + period * np.arange(n) + rng.normal(0.0, jitter, n)


def _grid_error(grid: BeatGrid, true_period: float, start: float, after: float) -> float:
    """|error| of the grid's next beat after ``after`` to the true beat nearest it."""
    nxt = grid.next_beats(after, 1)[0]
    k = round((nxt - start) / true_period)
    return abs(nxt - (start + k * true_period))


def test_nothing_before_init_beats_then_the_grid_of_a_steady_dancer():
    p = BeatPredictor()
    beats = _beats(0.5, 40, jitter=0.03)
    assert p.process_online(beats[0]) is None and p.process_online(None) is None
    grids = [p.process_online(b) for b in beats[1:]]
    n = p.config.init_beats  # the n-th beat starts it
    assert grids[:n - 2] == [None] * (n - 2) and grids[n - 2] is not None
    g = grids[-1]
    assert g is not None and abs(g.period - 0.5) < 0.005
    # two beats ahead of the last decided beat, the grid is closer to the true beat than one beat's jitter
    errors = [_grid_error(BeatPredictor().process_offline(_beats(0.5, n, 0.03, seed)), 0.5, 1.0, 1.0 + 0.5 * (n + 1))
              for seed in range(20) for n in (16, 24)]
    assert np.median(errors) < 0.02, np.median(errors)


def test_missed_beats_are_bridged_and_an_outlier_is_not_used():
    beats = list(_beats(0.6, 20))
    del beats[8:10]  # the tracker missed two beats
    beats.insert(12, beats[11] + 0.25)  # and reported one off the beat
    p = BeatPredictor()
    for b in beats:
        p.process_online(b)
    g = BeatPredictor.grid(p.state)
    assert g is not None and abs(g.period - 0.6) < 1e-3 and _grid_error(g, 0.6, 1.0, 20.0) < 1e-3
    assert p.state.rejected == 1


def test_a_new_tempo_and_phase_is_followed():
    first = _beats(0.5, 12)
    second = first[-1] + 0.25 + 0.8 * np.arange(1, 10)  # the dancer changes tempo and phase
    p = BeatPredictor()
    for b in first:
        p.process_online(b)
    for b in second:
        g = p.process_online(b)
    assert g is not None and abs(g.period - 0.8) < 0.01 and _grid_error(g, 0.8, second[0], second[-1] + 1) < 0.02


def test_a_grid_at_double_tempo_restarts_at_the_beats_tempo():
    """Decided beats at twice the tempo while the tracker settles, then at the dancer's tempo: each of those
    lies on the double-tempo grid, so only the missing grid beats tell; the filter restarts at 90 BPM."""
    fast = _beats(60 / 180, 6)
    slow = fast[-1] + 60 / 90 * np.arange(1, 10)
    p = BeatPredictor()
    for b in fast:
        p.process_online(b)
    assert abs(BeatPredictor.grid(p.state).tempo_bpm - 180) < 1  # type: ignore[union-attr]
    for b in slow:
        g = p.process_online(b)
    assert g is not None and abs(g.tempo_bpm - 90) < 1


def test_step_is_pure_and_offline_equals_online():
    p = BeatPredictor()
    beats = _beats(0.55, 15, jitter=0.02, seed=3)
    state = BeatPredictorState()
    for b in beats:
        new = p.step(state, b)
        assert new is not state
        state = new
    before = (state.mean, state.cov.copy(), state.used)
    p.step(state, beats[-1] + 0.55)
    assert (state.mean, state.used) == before[::2] and np.array_equal(state.cov, before[1])
    assert not state.cov.flags.writeable
    for b in beats:
        p.process_online(b)
    assert p.process_offline(beats) == BeatPredictor.grid(p.state) == BeatPredictor.grid(state)


def test_the_tempo_range_bounds_the_grid():
    cfg = BeatPredictorConfig(min_period_s=60 / 150, max_period_s=60 / 70)
    assert BeatPredictor(cfg).process_offline(_beats(0.3, 8)) is None  # 200 BPM: outside the range
    with pytest.raises(ValueError):
        BeatPredictorConfig(init_beats=1)


def test_next_beats():
    g = BeatGrid(10.0, 0.5)
    np.testing.assert_allclose(g.next_beats(10.2, 3), [10.5, 11.0, 11.5])
    np.testing.assert_allclose(g.next_beats(9.0, 2), [9.5, 10.0])
    assert g.tempo_bpm == 120.0


def test_the_first_grid_waits_for_beats_on_one_grid():
    """A tracker settling at a tempo 3/2 of the dancer's puts beats off the grid; the grid starts only once
    init_beats decided beats lie on one line (each within fit_tolerance of the period)."""
    settling = [1.0, 1.4, 1.73, 2.1, 2.5, 2.8]  # intervals 0.30-0.40 s: no steady grid
    steady = 2.8 + 0.55 * np.arange(1, 12)
    p = BeatPredictor(BeatPredictorConfig(fit_tolerance=0.08, fit_patience=99))  # no patience: it waits
    assert all(p.process_online(b) is None for b in settling)
    assert BeatPredictor(BeatPredictorConfig(fit_tolerance=0.0)).process_offline(settling) is not None  # before
    grids = [p.process_online(b) for b in steady]
    first = next(i for i, g in enumerate(grids) if g is not None)
    assert first == p.config.init_beats - 2  # six beats on the steady grid: 2.8 (the last settling one) and 5 more
    g = grids[-1]
    assert g is not None and abs(g.period - 0.55) < 1e-3 and _grid_error(g, 0.55, steady[0], steady[-1] + 1) < 1e-3


def test_a_restart_needs_beats_on_one_grid():
    """With restarts from three beats (``reinit_after`` 3, no re-phasing): three rejected beats in a row that
    do not lie on one grid (the tracker between two tempi) do not restart the filter."""
    beats = list(_beats(0.5, 12))
    p = BeatPredictor(BeatPredictorConfig(fit_tolerance=0.08, reinit_after=3, rephase_after=0))
    for b in beats:
        p.process_online(b)
    for b in (beats[-1] + 0.27, beats[-1] + 0.66, beats[-1] + 1.23):  # off the grid, intervals 0.39 / 0.57
        g = p.process_online(b)
    assert p.state.rejected == 3 and g is not None and abs(g.period - 0.5) < 1e-3
    with pytest.raises(ValueError):
        BeatPredictorConfig(fit_tolerance=-0.1)


def test_the_first_grid_starts_after_fit_patience_beats_that_never_lie_on_one_grid():
    """A tracker whose beats never settle (intervals 0.30 / 0.42 s in turn) still gets a grid, from the
    latest window, once fit_patience windows have failed: a performer is not kept waiting."""
    wobbly = 1.0 + np.cumsum(np.tile([0.30, 0.42], 10))
    cfg = BeatPredictorConfig()
    assert cfg.fit_tolerance > 0 and cfg.fit_patience == 8  # the defaults
    grids = [BeatPredictor(cfg).process_offline(wobbly[:n]) for n in range(1, len(wobbly) + 1)]
    first = next(i for i, g in enumerate(grids) if g is not None)
    assert first == cfg.init_beats - 1 + cfg.fit_patience  # init_beats, then fit_patience failed windows
    assert all(g is not None for g in grids[first:])
    strict = BeatPredictor(BeatPredictorConfig(fit_patience=99))
    assert strict.process_offline(wobbly) is None
    with pytest.raises(ValueError):
        BeatPredictorConfig(fit_patience=-1)


def test_a_grid_at_a_wrong_tempo_restarts_from_beats_that_all_disagree_with_it():
    """A grid started while the tracker ran at 4/3 of the dancer's tempo catches every later decided beat
    inside its gate, one grid beat apart, so it is never restarted by rejected or bridged beats (retempo
    off: after 15 beats it is still at 0.375-0.4 s, whether restarts take three beats or two). With the tempo
    check, retempo_beats decided beats on one grid at a period more than 20 % away restart it at theirs."""
    start = 1.0 + 0.375 * np.arange(6)
    steady = start[-1] + 0.5 * np.arange(1, 16)
    for cfg in (BeatPredictorConfig(retempo_beats=0),
                BeatPredictorConfig(retempo_beats=0, reinit_after=3, rephase_after=0)):
        stuck = BeatPredictor(cfg).process_offline([*start, *steady])
        assert stuck is not None and 0.37 < stuck.period < 0.4
    p = BeatPredictor()
    for b in start:
        p.process_online(b)
    grids = [p.process_online(b) for b in steady]
    fixed = next(i for i, g in enumerate(grids) if g is not None and abs(g.period - 0.5) < 0.005)
    assert fixed == p.config.retempo_beats - 2  # the last settling beat lies on the new grid too
    assert all(g is not None and abs(g.period - 0.5) < 0.005 for g in grids[fixed:])
    last = grids[-1]
    assert last is not None and _grid_error(last, 0.5, steady[0], steady[-1] + 0.1) < 1e-3


def test_a_short_run_of_beats_a_little_off_tempo_does_not_restart_the_grid():
    """Five decided beats 10 % slower than the grid (the tracker drifting for a moment) lie on one grid but
    within retempo_ratio (20 %): the filter goes on as without the check (it follows them by its gain, not by
    a restart at 0.55 s); five 30 % slower restart it at theirs."""
    beats = _beats(0.5, 16)
    drift = [*beats, *(beats[-1] + 0.55 * np.arange(1, 6))]
    g, without = BeatPredictor().process_offline(drift), BeatPredictor(BeatPredictorConfig(retempo_beats=0)
                                                                      ).process_offline(drift)
    assert g is not None and g == without and abs(g.period - 0.55) > 0.01
    slower = [*beats, *(beats[-1] + 0.65 * np.arange(1, 6))]
    g = BeatPredictor().process_offline(slower)
    assert g is not None and abs(g.period - 0.65) < 1e-6
    with pytest.raises(ValueError):
        BeatPredictorConfig(retempo_beats=2)
    with pytest.raises(ValueError):
        BeatPredictorConfig(retempo_ratio=0.0)


def test_a_restart_is_as_unsure_of_its_period_as_its_beats_are():
    """The (re)start covariance is the least-squares one of the beats it was fitted to, with their spread
    the larger of the configured beat noise and the fit's residuals."""
    from rhythmicnet.models.beat_predictor import _fit_covariance, _fit_line

    beats = (1.0, 1.53, 2.0, 2.56, 3.0)
    last, period, _ = _fit_line(beats)
    k = np.round((np.asarray(beats) - beats[-1]) / period)
    x = np.stack([np.ones_like(k), k], 1)
    resid = np.asarray(beats) - x @ np.array([last, period])
    s2 = max(0.03 ** 2, float(resid @ resid) / (len(beats) - 2))
    np.testing.assert_allclose(_fit_covariance(beats, last, period, 0.03), s2 * np.linalg.inv(x.T @ x), rtol=1e-9)
    # beats on a line: the configured noise sets the spread
    clean = tuple(1.0 + 0.5 * np.arange(4))
    last, period, _ = _fit_line(clean)
    assert np.isclose(_fit_covariance(clean, last, period, 0.03)[1, 1], 0.03 ** 2 / 5.0)


def test_a_restart_from_scattered_beats_takes_the_next_beats_tempo_at_once(monkeypatch):
    """Three scattered decided beats (re)start the grid with a period 5 % slow; the next, exact beats
    correct it within two beats. With the earlier restart covariance ((beat noise / n)^2 for the period, half
    the least-squares variance for 3 beats and blind to the scatter) the grid held the wrong tempo longer."""
    import rhythmicnet.models.beat_predictor as bp

    true = 1.0 + 0.55 * np.arange(8)
    scatter = tuple(true[:3] + np.array([-0.03, 0.03, 0.03]))

    def period_errors() -> list[float]:
        p = BeatPredictor()
        p.state = p._start(scatter)
        assert p.state is not None and abs(p.state.mean[1] - 0.55) > 0.025  # type: ignore[index]
        return [abs(p.process_online(float(b)).period - 0.55) for b in true[3:]]  # type: ignore[union-attr]

    now = period_errors()
    monkeypatch.setattr(bp, "_fit_covariance", lambda beats, last, period, noise: np.diag(
        [noise ** 2, (noise / len(beats)) ** 2]))
    before = period_errors()
    assert now[1] < 0.5 * before[1], (now, before)


def test_lookahead_takes_only_tentative_beats_old_enough_and_after_the_latest_beat():
    """lookahead steps the tentative beats that are at least tentative_min_age_s old and more than half a
    period after the filter's latest beat; it changes nothing in the state it is given, nor before the
    filter starts, nor with tentative_min_age_s None."""
    beats = _beats(0.5, 10)  # the latest at 5.5
    p = BeatPredictor()
    state = p.state
    for b in beats:
        state = p.step(state, b)
    empty = BeatPredictorState()
    assert p.lookahead(empty, np.array([6.0]), 7.0) is empty
    late = 6.04  # the dancer a little late: the next beat
    ahead = p.lookahead(state, np.array([5.52, late, 6.45]), now=late + 0.12)  # 5.52: the latest again; 6.45: too new
    one = p.step(state, late)
    assert ahead.mean == one.mean and ahead.used == one.used and np.array_equal(ahead.cov, one.cov)
    assert ahead.mean != state.mean and ahead.used == state.used + 1
    assert p.lookahead(state, np.array([late]), now=late + 0.05) is state  # younger than 0.1 s
    off = BeatPredictor(BeatPredictorConfig(tentative_min_age_s=None))
    assert off.lookahead(state, np.array([late]), now=late + 1.0) is state
    with pytest.raises(ValueError):
        BeatPredictorConfig(tentative_min_age_s=-0.1)


def test_two_rejected_beats_on_the_grids_period_move_its_phase_and_keep_its_period():
    """The tracker jumps phase (0.4 of a period) at the same tempo: after two rejected beats the grid is on
    the new phase at its old period (rephase_after); two rejected beats off its period restart it from
    them instead (reinit_after 2), unsure of their period, so the next beats on the old tempo pull it back."""
    beats = _beats(0.5, 12)  # the latest at 6.5
    jumped = beats[-1] + 0.2 + np.array([0.5, 1.02])  # 0.52 apart: on the period to within fit_tolerance
    p = BeatPredictor()
    for b in [*beats, *jumped]:
        g = p.process_online(b)
    assert g is not None and g.period == pytest.approx(p.process_offline(beats).period)
    assert _grid_error(g, 0.5, jumped[0], jumped[-1] + 0.1) < 0.02
    no_rephase = BeatPredictor(BeatPredictorConfig(rephase_after=0, reinit_after=3))
    for b in [*beats, *jumped]:
        g3 = no_rephase.process_online(b)
    assert g3 is not None and _grid_error(g3, 0.5, jumped[0], jumped[-1] + 0.1) > 0.1  # still on the old phase
    off = [beats[-1] + 0.27, beats[-1] + 0.66]  # interval 0.39: not on the grid's period
    r = BeatPredictor()
    for b in [*beats, *off]:
        g = r.process_online(b)
    assert g is not None and g.period == pytest.approx(0.39) and r.state.cov[1, 1] > 0.02 ** 2
    for b in off[-1] + 0.5 * np.arange(1, 5):
        g = r.process_online(b)
    assert g is not None and abs(g.period - 0.5) < 0.02
    with pytest.raises(ValueError):
        BeatPredictorConfig(rephase_after=1)


def test_the_line_fit_is_numpys_least_squares():
    """_fit_line (plain Python, for speed) gives np.linalg.lstsq's line and misfit on the same indices,
    on beats near a grid and on scattered ones."""
    from rhythmicnet.models.beat_predictor import _beat_indices, _fit_line

    rng = np.random.default_rng(3)
    checked = 0
    for trial in range(300):
        n = int(rng.integers(2, 9))
        b = np.sort(rng.uniform(0, 5, n)) if trial % 3 == 0 else _beats(0.5, n, jitter=0.03, seed=trial)
        beats = tuple(b.tolist())
        bb, period, k = _beat_indices(beats)
        last, slope, misfit = _fit_line(beats)
        if period <= 0 or np.ptp(k) == 0:
            assert misfit == np.inf
            continue
        a = np.stack([np.ones_like(k), k], 1)
        (l_ref, s_ref), *_ = np.linalg.lstsq(a, bb, rcond=None)
        assert last == pytest.approx(l_ref, abs=1e-9) and slope == pytest.approx(s_ref, abs=1e-9)
        assert misfit == pytest.approx(np.max(np.abs(a @ [l_ref, s_ref] - bb)) / abs(s_ref), rel=1e-6)
        checked += 1
    assert checked > 250
