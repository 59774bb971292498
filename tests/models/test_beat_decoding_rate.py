"""Beat decoding finer than a frame (``beat_hmm``, "Finer than a frame"): the DBN at ``upsample`` steps per
activation frame, and each beat at the parabolic peak of the activation."""

from __future__ import annotations

import numpy as np
import pytest

from rhythmicnet.models.beat_hmm import (
    BeatTrackerConfig,
    OnlineBeatTracker,
    build_beat_hmm,
    decode_beats,
    decode_beats_and_tempo,
    subframe_offset,
    tempo_from_beats,
    upsample_activation,
)
from rhythmicnet.models.fixed_lag_beats import FixedLagBeatTracker
from tests.models.test_beat_hmm import FPS, MADMOM_RATE, synthetic_activation
from tests.models.test_tempo_ambiguity import steps_between_beats


def test_upsampling_keeps_the_frames_and_interpolates_between_them():
    a = np.array([0.0, 1.0, 0.5, np.nan, 0.2])
    up = upsample_activation(a, 2)
    assert up.shape == (9,)
    np.testing.assert_array_equal(up[::2], a)  # the frames themselves, the NaN one included
    assert up[1] == 0.5 and up[3] == 0.75
    assert np.isnan(up[5]) and np.isnan(up[7])  # either side of a missing frame is missing
    np.testing.assert_allclose(upsample_activation(np.array([0.0, 3.0, 0.0]), 3), [0, 1, 2, 3, 2, 1, 0])
    np.testing.assert_array_equal(upsample_activation(a, 1), a)
    assert upsample_activation(np.empty(0), 3).shape == (0,) and upsample_activation(np.ones(1), 3).shape == (1,)


@pytest.mark.parametrize("vertex", [-0.5, -0.3, 0.0, 0.1, 0.45])
def test_the_subframe_offset_is_the_parabolas_vertex(vertex):
    left, peak, right = (1.0 - (x - vertex) ** 2 for x in (-1.0, 0.0, 1.0))
    assert subframe_offset(left, peak, right) == pytest.approx(vertex)


def test_the_subframe_offset_is_zero_without_a_peak():
    assert subframe_offset(0.2, 0.1, 0.3) == 0.0  # a valley
    assert subframe_offset(0.5, 0.5, 0.5) == 0.0  # flat
    assert subframe_offset(0.1, 0.5, 0.9) == 0.0  # rising: the middle is no peak
    assert subframe_offset(np.nan, 1.0, 0.2) == 0.0 and subframe_offset(0.2, np.nan, 0.2) == 0.0
    assert subframe_offset(0.1, 1.0, 1.0) == 0.5  # a shoulder: half-way to the equal neighbour


def test_the_madmom_rate_has_whole_frame_beats_and_the_default_does_not():
    act, _ = synthetic_activation(128.0, seed=2)
    coarse = decode_beats(act, BeatTrackerConfig(**MADMOM_RATE)) * FPS
    np.testing.assert_allclose(coarse, np.round(coarse), atol=1e-9)
    for beats in (decode_beats(act), FixedLagBeatTracker().process_offline(act)):
        frames = beats * FPS
        assert np.mean(np.abs(frames - np.round(frames)) > 0.01) > 0.5


@pytest.mark.parametrize("bpm", [157.0, 171.4, 173.0])
def test_a_tempo_between_whole_frame_periods_survives(bpm):
    """At 30 fps 171.4 BPM is 10.5 frames a beat: whole-frame beats are 10 and 11 frames apart and their
    median interval is 163.6 or 180 BPM, 4.5-5 % off (Acc1 allows 4 %); 157 and 173 BPM fall 4.0-4.2 % off."""
    for seed in range(3):
        act, _ = synthetic_activation(bpm, seed=seed, jitter=0.0, dropout=0.0, spurious_rate=0.0)
        coarse = tempo_from_beats(decode_beats(act, BeatTrackerConfig(**MADMOM_RATE)))
        assert abs(coarse / bpm - 1.0) > 0.039
        for beats in (decode_beats(act), FixedLagBeatTracker().process_offline(act),
                      FixedLagBeatTracker(lag=15).process_offline(act)):
            assert tempo_from_beats(beats) == pytest.approx(bpm, rel=0.01)
        # the path's own tempo is read at the DBN rate: within half a step of 60 per second
        _, path_tempo = decode_beats_and_tempo(act)
        assert path_tempo == pytest.approx(bpm, rel=0.025)


def test_beats_land_nearer_the_truth_at_the_default_rate():
    """Mean absolute error of the matched beats on the tests' synthetic activations (jittered bumps at any
    time): whole frames cost up to half a frame (17 ms) each."""
    errors: dict[str, list[float]] = {"madmom rate": [], "default": []}
    for seed in range(6):
        act, ref = synthetic_activation(97.0 + 13 * seed, seed=seed, jitter=0.0, dropout=0.0, spurious_rate=0.0)
        for name, cfg in (("madmom rate", BeatTrackerConfig(**MADMOM_RATE)), ("default", BeatTrackerConfig())):
            est = decode_beats(act, cfg)
            errors[name].extend(np.min(np.abs(est[:, None] - ref[None, :]), axis=1))
    mean = {k: 1000 * float(np.mean(v)) for k, v in errors.items()}
    print(f"\n[decoding rate] mean |beat error| {mean['madmom rate']:.1f} ms whole-frame, {mean['default']:.1f} ms")
    assert mean["default"] < 0.5 * mean["madmom rate"]


def test_streaming_trackers_step_upsample_times_per_frame_and_keep_their_contract():
    act, _ = synthetic_activation(111.0, seed=9, spurious_rate=0.6)
    act[200:230] = np.nan  # the pose lost for a second: the trackers coast
    for tracker in (FixedLagBeatTracker(BeatTrackerConfig(upsample=3), lag=10),
                    OnlineBeatTracker(BeatTrackerConfig(upsample=3))):
        whole = tracker.process_offline(act)
        assert whole.size > 40 and np.all(np.diff(whole) > 0)
        state = tracker.init_state()
        for a in act[:5]:
            state, est = tracker.step(state, a)
        assert state.frame == 1 + 4 * 3 and est.time == pytest.approx(4 / FPS)  # DBN steps; the frame's time
    # the forward filter at one step per frame is unchanged by the rate machinery: madmom's behaviour
    filt = OnlineBeatTracker(BeatTrackerConfig(**MADMOM_RATE), peak_correction=False)
    reports = filt.process_offline(act) * FPS
    np.testing.assert_allclose(reports, np.round(reports), atol=1e-9)


@pytest.mark.parametrize("upsample", [0, 1.5, True])
def test_a_bad_upsample_is_refused(upsample):
    with pytest.raises(ValueError, match="upsample"):
        BeatTrackerConfig(upsample=upsample)


def test_each_step_carries_a_third_of_a_frames_evidence_at_three_steps():
    """A frame is one observation however many DBN steps it is spread over: the densities of one step are
    those of one-step decoding to the power 1 / upsample (the log-densities of a frame's steps sum to one
    frame's)."""
    one = build_beat_hmm(BeatTrackerConfig(upsample=1)).om
    three = build_beat_hmm(BeatTrackerConfig(upsample=3)).om
    assert one.evidence_weight == 1.0 and three.evidence_weight == pytest.approx(1 / 3)
    a = np.array([0.0, 0.02, 0.3, 0.97, 1.0, np.nan])
    np.testing.assert_allclose(3 * three.log_densities(a), one.log_densities(a), atol=1e-12)  # log(1 - 1e-12)
    for v in a:
        np.testing.assert_allclose(np.array(three.frame_densities(float(v))) ** 3, one.frame_densities(float(v)))


def test_the_streaming_octave_penalty_is_per_activation_frame():
    act = steps_between_beats(20.0, weak=0.35)
    for upsample in (1, 3):
        tracker = FixedLagBeatTracker(BeatTrackerConfig(upsample=upsample), lag=15)
        state = tracker.init_state()
        for a in act[:300]:
            state, _ = tracker.step(state, a)
        w = state.octave_log_weight
        assert w is not None and w.min() < 0
        # spread over a frame's steps: per frame the same penalty at any rate
        np.testing.assert_allclose(np.unique(w), [-tracker.config.octave_penalty / upsample, 0.0])
