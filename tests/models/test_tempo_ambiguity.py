"""Tempo that survives ambiguity: the DBN's log-normal tempo prior, the octave check of the decoded tempo
against the clip's periodicity, and the streaming check of the fixed-lag tracker (issue 16, item 4)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rhythmicnet.models.beat_hmm import (
    BeatTrackerConfig,
    OnlineBeatTracker,
    beat_times,
    build_beat_hmm,
    decode_beats_and_tempo,
    tempo_from_beats,
    tempo_log_prior,
    tempo_prior_masses,
)
from rhythmicnet.models.fixed_lag_beats import FixedLagBeatTracker
from rhythmicnet.models.tempo_periodicity import (
    OctaveCheck,
    RunningPeriodicity,
    autocorrelation,
    clip_periodicity,
    octave_relative,
)

FPS = 30.0
PRIOR = {"tempo_prior_bpm": 120.0, "tempo_prior_octaves": 1.0}
OFF = BeatTrackerConfig(octave_check=False)
#: The decoder before "finer than a frame" (one DBN step per 30 fps frame, whole-frame beats, lambda 30): it counts
#: the steps of ``steps_between_beats(weak=0.35)`` where the default rate alone finds the beat.
WHOLE = {"upsample": 1, "subframe": False, "transition_lambda": 30.0}


def steps_between_beats(period: float, weak: float, seconds: float = 30.0, strong: float = 0.9) -> np.ndarray:
    """A beat activation (T,) at 30 fps: pulses of ``strong`` every ``period`` frames (the beats) and weaker
    pulses of ``weak`` half-way between them (a dancer stepping on the 'and')."""
    t = np.arange(int(seconds * FPS), dtype=np.float64)
    act = np.full(t.size, 0.02)
    for b in np.arange(3.0, t.size, period):
        act += strong * np.exp(-0.5 * ((t - b) / 0.7) ** 2) + weak * np.exp(-0.5 * ((t - b - period / 2) / 0.7) ** 2)
    return np.clip(act, 0.01, 0.99)


# ------------------------------------------------------------------------------------------ the prior
def test_prior_masses_are_a_distribution_peaking_at_the_centre():
    cfg = BeatTrackerConfig(**PRIOR, upsample=1)  # one DBN step per frame: intervals in 30 fps frames
    hmm = build_beat_hmm(cfg)
    k, s = hmm.st.num_intervals, hmm.st.num_states
    mass = tempo_prior_masses(hmm.st.intervals, FPS, 120.0, 1.0)
    assert mass.shape == (k,) and np.all(mass > 0) and math.isclose(mass.sum(), 1.0)
    assert hmm.st.intervals[np.argmax(mass / np.abs(np.gradient(np.log2(60 * FPS / hmm.st.intervals))))] == 15
    # the initial distribution spreads each chain's mass evenly over its positions
    init = hmm.initial_distribution
    assert init.shape == (s,) and math.isclose(init.sum(), 1.0)
    np.testing.assert_allclose(np.bincount(hmm.st.state_chains, weights=init), mass)
    first = hmm.st.first_states
    np.testing.assert_allclose(init[first], mass / hmm.st.intervals)
    # a narrower prior puts more of its mass near 120 BPM
    narrow = tempo_prior_masses(hmm.st.intervals, FPS, 120.0, 0.25)
    near = np.abs(np.log2(60 * FPS / hmm.st.intervals / 120.0)) < 0.1
    assert narrow[near].sum() > mass[near].sum()


def test_log_prior_is_a_log_normal_in_octaves():
    bpm = np.array([60.0, 90.0, 120.0, 180.0, 240.0])
    lp = tempo_log_prior(bpm, 120.0, 1.0)
    assert lp.shape == (5,) and lp[2] == 0.0 and np.all(lp[[0, 1, 3, 4]] < 0)
    assert math.isclose(lp[0], lp[4]) and math.isclose(lp[0], -0.5)  # one octave either side
    assert math.isclose(tempo_log_prior(np.array([60.0]), 120.0, 0.5)[0], -2.0)


def test_per_frame_weight_is_constant_in_a_chain_and_scales_with_its_rate():
    hmm = build_beat_hmm(BeatTrackerConfig(**PRIOR, tempo_prior_per_s=30.0, upsample=1))  # one step per frame
    w = hmm.state_log_weight
    assert w is not None and w.shape == (hmm.st.num_states,) and not w.flags.writeable
    chain = tempo_log_prior(60 * FPS / hmm.st.intervals, 120.0, 1.0)  # at 30 per second: once per frame
    np.testing.assert_allclose(w, chain[hmm.st.state_chains])
    assert hmm.st.intervals[hmm.st.state_chains[np.argmax(w)]] == 15
    w3 = build_beat_hmm(BeatTrackerConfig(**PRIOR, tempo_prior_per_s=3.0, upsample=1)).state_log_weight
    np.testing.assert_allclose(w3, w / 10)
    # at two DBN steps per frame each step carries half of it: the same weight per second
    w2 = build_beat_hmm(BeatTrackerConfig(**PRIOR, tempo_prior_per_s=30.0, upsample=2)).state_log_weight
    hmm2 = build_beat_hmm(BeatTrackerConfig(**PRIOR, upsample=2))
    assert w2 is not None
    np.testing.assert_allclose(w2, 0.5 * tempo_log_prior(60 * 2 * FPS / hmm2.st.intervals, 120.0, 1.0)[
        hmm2.st.state_chains])
    # the initial distribution only, and no prior at all (madmom's uniform start)
    assert build_beat_hmm(BeatTrackerConfig(**PRIOR)).state_log_weight is None
    plain = build_beat_hmm(BeatTrackerConfig())
    assert plain.state_log_weight is None and np.ptp(plain.initial_distribution) == 0


def test_prior_config_is_checked():
    for kwargs in ({"tempo_prior_bpm": 0.0}, {"tempo_prior_octaves": -1.0}, {"tempo_prior_per_s": -1.0},
                   {"octave_margin": 0.0}, {"octave_window_s": float("nan")}, {"octave_penalty": -0.5}):
        with pytest.raises(ValueError):
            BeatTrackerConfig(**kwargs)


# ---------------------------------------------------------------------------------- the octave check
def test_periodicity_peaks_at_the_beat_period():
    act = steps_between_beats(20.0, weak=0.0)
    acf = autocorrelation(act, 90)
    assert acf.shape == (91,) and acf[0] == 1.0
    assert acf[20] > 0.9 and acf[40] > 0.9 and acf[10] < 0.0 and acf[30] < 0.0
    per = clip_periodicity(act, 10.0, 30.0)
    assert per.at(20.0) > 0.9 and per.at(10.0) < 0.0 and per.at(30.0) < 0.0
    # a pulse train repeats at twice its period too: the check does not halve a clean tempo ...
    assert octave_relative(per, 20.0, 10.0, 30.0, margin=1.5, floor=0.1) is None
    # ... and sends a decode at twice the tempo back to the beat period
    assert abs(octave_relative(per, 10.0, 10.0, 30.0, margin=1.5, floor=0.1) - 20.0) <= 0.8
    assert np.all(autocorrelation(np.full(50, 0.3), 10) == 0.0)


def test_steps_between_beats_decode_at_the_beat_with_the_check_and_the_prior():
    period = 20.0  # 90 BPM; steps on the 'and' at 0.35 of the beats' height
    act = steps_between_beats(period, weak=0.35)
    tempo = {name: decode_beats_and_tempo(act, cfg)[1] for name, cfg in (
        ("plain", BeatTrackerConfig(octave_check=False, **WHOLE)),
        ("prior", BeatTrackerConfig(octave_check=False, **PRIOR, tempo_prior_per_s=30.0, **WHOLE)),
        ("check", BeatTrackerConfig(**WHOLE)),
        ("both", BeatTrackerConfig(**PRIOR, tempo_prior_per_s=30.0, **WHOLE)),
        ("finer", OFF))}
    assert tempo["plain"] == pytest.approx(180.0, rel=0.04)  # one DBN step per frame alone counts the steps
    for name in ("prior", "check", "both", "finer"):  # the default rate finds the beat without either
        assert tempo[name] == pytest.approx(90.0, rel=0.04), name
    beats, _ = decode_beats_and_tempo(act, BeatTrackerConfig())
    assert tempo_from_beats(beats) == pytest.approx(90.0, rel=0.04)
    assert np.all(np.abs((beats * FPS - 3.0 + period / 2) % period - period / 2) <= 1.01)  # on the strong pulses
    # equal steps are a real ambiguity: the check leaves them to the DBN
    even = steps_between_beats(period, weak=0.9)
    assert decode_beats_and_tempo(even, BeatTrackerConfig())[1] == pytest.approx(180.0, rel=0.04)


# ------------------------------------------------------------------------------ the streaming check
def test_running_periodicity_follows_the_clip():
    act = steps_between_beats(20.0, weak=0.35, seconds=20.0)
    rp = RunningPeriodicity(FPS, 10.0, 30.0, window_s=8.0)
    state = rp.init_state()
    for a in act:
        new = rp.step(state, a)
        assert new is not state and not new.products.flags.writeable and not new.history.flags.writeable
        state = new
    assert state.frames == act.size
    check = OctaveCheck(np.array([10.0, 20.0]), 10.0, 30.0)
    np.testing.assert_array_equal(check.dominated(rp.autocorrelation(state), 1.5, 0.1), [True, False])
    np.testing.assert_array_equal(check.dominated(autocorrelation(act, rp.max_lag), 1.5, 0.1), [True, False])
    assert rp.periodicity(state).at(20.0) > 1.5 * rp.periodicity(state).at(10.0)


def test_streaming_check_moves_the_tracker_to_the_beat():
    act = steps_between_beats(20.0, weak=0.35)
    second_half = slice(act.size // 2, None)
    for cfg, bpm in ((BeatTrackerConfig(octave_check=False, **WHOLE), 180.0), (BeatTrackerConfig(**WHOLE), 90.0),
                     (OFF, 90.0), (BeatTrackerConfig(), 90.0)):
        estimates = FixedLagBeatTracker(cfg, lag=15).process_online(act)
        assert np.median([e.tempo_bpm for e in estimates[second_half]]) == pytest.approx(bpm, rel=0.04)
        late = beat_times(estimates)
        assert tempo_from_beats(late[late > 15.0]) == pytest.approx(bpm, rel=0.04)


def test_streaming_check_keeps_the_contract():
    act = steps_between_beats(17.0, weak=0.4, seconds=14.0)
    act[200:206] = np.nan  # missing frames coast
    tracker = FixedLagBeatTracker(BeatTrackerConfig(), lag=12)
    whole = tracker.process_offline(act)
    assert whole.size > 10
    got: list[float] = []
    for chunk in np.array_split(act, 5):
        got.extend(beat_times(tracker.process_online(chunk)))
    got.extend(tracker.flush())
    np.testing.assert_allclose(got, whole)
    # pure step: a state is never changed, and replaying from a saved state gives the same result
    state = tracker.init_state()
    for a in act[:300]:
        state, _ = tracker.step(state, a)
    assert state.periodicity is not None and state.octave_log_weight is not None
    saved = dataclasses.replace(state)
    snapshot = (state.log_delta.copy(), state.periodicity.products.copy(), state.octave_log_weight.copy())
    s1, e1 = tracker.step(state, 0.5)
    s2, e2 = tracker.step(saved, 0.5)
    np.testing.assert_array_equal(s1.log_delta, s2.log_delta)
    assert e1.tempo_bpm == e2.tempo_bpm and e1.is_beat == e2.is_beat
    np.testing.assert_array_equal(state.log_delta, snapshot[0])
    np.testing.assert_array_equal(state.periodicity.products, snapshot[1])
    np.testing.assert_array_equal(state.octave_log_weight, snapshot[2])
    for arr in (s1.log_delta, s1.periodicity.products, s1.periodicity.history):
        assert not arr.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        s1.frame = 0  # type: ignore[misc]


def test_the_forward_filter_takes_the_prior():
    act = steps_between_beats(20.0, weak=0.35)
    plain = OnlineBeatTracker(BeatTrackerConfig(octave_check=False, **WHOLE)).process_online(act)
    prior = OnlineBeatTracker(BeatTrackerConfig(**PRIOR, tempo_prior_per_s=30.0, **WHOLE)).process_online(act)
    tail = slice(act.size // 2, None)
    assert np.median([e.tempo_bpm for e in plain[tail]]) == pytest.approx(180.0, rel=0.04)
    assert np.median([e.tempo_bpm for e in prior[tail]]) == pytest.approx(90.0, rel=0.04)
    # at the default rate the filter finds the beat with or without the prior
    for cfg in (OFF, BeatTrackerConfig(**PRIOR, tempo_prior_per_s=30.0)):
        tempi = [e.tempo_bpm for e in OnlineBeatTracker(cfg).process_online(act)[tail]]
        assert np.median(tempi) == pytest.approx(90.0, rel=0.04)
