"""The fixed-lag Viterbi beat tracker: Viterbi's beats at a long lag, causal decisions, streaming API."""

from __future__ import annotations

import numpy as np
import pytest

from rhythmicnet.models.beat_hmm import BeatTrackerConfig, OnlineBeatTracker, beat_times, decode_beats
from rhythmicnet.models.fixed_lag_beats import DEFAULT_LAG, FixedLagBeatTracker
from tests.models.test_beat_hmm import FPS, SEEDS, TEMPI, f_measure, synthetic_activation


@pytest.fixture(scope="module")
def hard_set() -> list[tuple[np.ndarray, np.ndarray]]:
    """Noisier clips than test_beat_hmm's set, where the causal decoders and Viterbi part ways."""
    return [synthetic_activation(bpm, 7000 + seed * 100 + int(bpm), jitter=0.03, dropout=0.3, spurious_rate=0.8)
            for bpm in TEMPI for seed in SEEDS]


@pytest.mark.parametrize("config", [
    BeatTrackerConfig(octave_check=False),
    BeatTrackerConfig(octave_check=False, tempo_prior_bpm=120.0, tempo_prior_per_s=30.0),
], ids=["plain", "tempo-prior"])
def test_a_lag_longer_than_the_clip_gives_viterbis_beats(hard_set, config):
    # without the octave check: its streaming form reads a running periodicity, the offline one the whole clip
    for act, _ in hard_set:
        np.testing.assert_allclose(FixedLagBeatTracker(config, lag=len(act)).process_offline(act),
                                   decode_beats(act, config))


def test_lagged_decisions_sit_between_the_filter_and_viterbi(hard_set):
    f = {name: np.mean([f_measure(ref, decode(act)) for act, ref in hard_set]) for name, decode in (
        ("filter", OnlineBeatTracker().process_offline),
        ("lag", FixedLagBeatTracker().process_offline),
        ("viterbi", decode_beats))}
    print(f"\n[fixed lag] mean F: forward filter {f['filter']:.3f}, lag {DEFAULT_LAG} {f['lag']:.3f}, "
          f"Viterbi {f['viterbi']:.3f}")
    assert f["lag"] >= f["filter"] - 0.005
    assert f["lag"] <= f["viterbi"] + 0.005
    assert f["viterbi"] - f["lag"] < 0.05


def test_beats_are_reported_at_least_lag_frames_after_they_happen():
    act, ref = synthetic_activation(110.0, seed=5)
    lag = 20
    estimates = FixedLagBeatTracker(lag=lag).process_online(act)
    reported = [e for e in estimates if e.is_beat]
    assert len(reported) >= 0.8 * len(ref)
    for e in reported:
        assert e.time - e.beat_time >= lag / FPS - 1e-9
    assert all(np.isnan(e.beat_time) for e in estimates if not e.is_beat)


def test_streaming_in_chunks_and_flush_equal_process_offline():
    act, _ = synthetic_activation(137.0, seed=11, spurious_rate=0.6)
    tracker = FixedLagBeatTracker(lag=12)
    whole = tracker.process_offline(act)
    assert tracker.state.frame == 0  # process_offline leaves the kept state alone
    got: list[float] = []
    for chunk in np.array_split(act, 7):
        got.extend(beat_times(tracker.process_online(chunk)))
    got.extend(tracker.flush())
    np.testing.assert_allclose(got, whole)
    # flush keeps the state (its frames are DBN steps: the first activation frame one, every later one u)
    u = tracker.config.upsample
    assert tracker.state.frame == (len(act) - 1) * u + 1 and tracker.state.decided == tracker.state.frame - 12 * u
    # a second pass without reset carries the first pass's state, and so differs; after reset it does not
    second = beat_times(tracker.process_online(act))
    assert len(second) != len(whole) or not np.allclose(second, whole)
    tracker.reset()
    np.testing.assert_allclose(list(beat_times(tracker.process_online(act))) + list(tracker.flush()), whole)


def test_step_is_pure():
    tracker = FixedLagBeatTracker(lag=3)
    state = tracker.init_state()
    for a in (0.1, 0.9, 0.2, 0.1, 0.1):
        state, _ = tracker.step(state, a)
    before = (state.log_delta.copy(), state.backpointers.copy(), state.frame, state.decided)
    new, est = tracker.step(state, 0.8)
    again, est2 = tracker.step(state, 0.8)
    np.testing.assert_array_equal(state.log_delta, before[0])
    np.testing.assert_array_equal(state.backpointers, before[1])
    assert (state.frame, state.decided) == before[2:] and new.frame == state.frame + tracker.config.upsample
    np.testing.assert_array_equal(new.log_delta, again.log_delta)
    assert est.phase == est2.phase and not new.log_delta.flags.writeable


def test_tempo_and_next_beats_follow_a_steady_input():
    act, _ = synthetic_activation(120.0, seed=3, dropout=0.0, jitter=0.0, spurious_rate=0.0)
    estimates = FixedLagBeatTracker().process_online(act)
    steady = estimates[int(10 * FPS):]
    assert all(e.tempo_bpm == pytest.approx(120.0) for e in steady)
    for e in steady:
        assert e.next_beats.shape == (4,) and e.next_beats[0] > e.time
        np.testing.assert_allclose(np.diff(e.next_beats), 0.5)


def test_missing_frames_coast_and_bad_arguments_raise():
    act, ref = synthetic_activation(100.0, seed=2, dropout=0.0)
    gappy = act.copy()
    gappy[300:330] = np.nan  # one second without a pose
    assert f_measure(ref, FixedLagBeatTracker().process_offline(gappy)) > 0.8
    assert FixedLagBeatTracker().flush().size == 0
    with pytest.raises(TypeError):
        FixedLagBeatTracker({"fps": 30})
    with pytest.raises(ValueError, match="lag"):
        FixedLagBeatTracker(lag=-1)
    with pytest.raises(ValueError, match="threshold"):
        FixedLagBeatTracker(BeatTrackerConfig(threshold=0.2))
    with pytest.raises(ValueError, match="1-D"):
        FixedLagBeatTracker().process_offline(np.zeros((3, 2)))


def test_tentative_beats_are_what_flush_would_add_and_leave_the_state_alone():
    """Every frame: the tentative beats (the undecided frames' beats on the current best path) equal what
    ``flush`` of that state returns, NaN gaps included, and the state is not changed."""
    act, _ = synthetic_activation(128.0, seed=21, spurious_rate=0.6)
    act = act.copy()
    act[200:215] = np.nan
    for lag in (0, 15):
        tracker = FixedLagBeatTracker(lag=lag)
        state, n_tentative = tracker.init_state(), 0
        for a in act:
            state, _ = tracker.step(state, float(a))
            frame, decided = state.frame, state.decided
            got = tracker.tentative_beats(state)
            np.testing.assert_array_equal(got, tracker.flush(state))
            assert (state.frame, state.decided) == (frame, decided)
            n_tentative += len(got)
        assert n_tentative > (len(act) // 10 if lag else 0)
    assert FixedLagBeatTracker().tentative_beats(FixedLagBeatTracker().init_state()).size == 0
