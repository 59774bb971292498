"""The causal rhythm stage: online == offline, and == its stages run one after another over the clip."""

import numpy as np

from rhythmicnet.models.beat_features import BeatFeatureStream
from rhythmicnet.models.beat_net import BeatNetStream
from rhythmicnet.models.beat_predictor import BeatPredictor
from rhythmicnet.models.fixed_lag_beats import FixedLagBeatTracker
from rhythmicnet.models.keypoints import MODEL_FPS
from rhythmicnet.models.live_rhythm import LIVE_LAG, LiveRhythm
from rhythmicnet.models.movement_onset import MovementOnsetDetector
from rhythmicnet.models.skeleton import normalize_running
from rhythmicnet.models.stream_resampler import StreamResampler
from tests.models.test_beat_net import make_model
from tests.models.test_stream_resampler import camera_times, moving_body


def _fields(frames):
    return (np.array([f.time for f in frames]), np.array([f.activation for f in frames]),
            np.array([f.downbeat for f in frames]), np.array([f.estimate.tempo_bpm for f in frames]),
            np.array([f.estimate.phase for f in frames]), np.array([f.estimate.is_beat for f in frames]),
            np.array([f.onset for f in frames]))


def test_online_equals_offline_and_each_stage_in_turn():
    seq = moving_body(camera_times(60, 6.0, 0.003, 0.1), unseen=0.02)
    stage = LiveRhythm(make_model(causal=True))
    offline = stage.process_offline(seq)
    online = []
    for t, k, c in zip(seq.times, seq.keypoints, seq.confidence, strict=True):
        online += stage.process_online(t, k, c)
    for a, b in zip(_fields(online), _fields(offline), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(offline) == int(np.floor((seq.times[-1] - seq.times[0]) * MODEL_FPS + 1e-6)) + 1

    # the stages one after another over the whole clip give the same figures
    frames = StreamResampler().process_offline(seq)
    norm = normalize_running(frames.keypoints, frames.confidence, MODEL_FPS)
    feats = BeatFeatureStream().process_offline(norm, frames.confidence)
    act = BeatNetStream(stage.beat_model).process_offline(feats)
    times, activation, downbeat, tempo, _, is_beat, onset = _fields(offline)
    np.testing.assert_allclose(times, frames.times, atol=1e-12)
    np.testing.assert_allclose(activation, act.beat, atol=1e-5)
    np.testing.assert_allclose(downbeat, act.downbeat, atol=1e-5)
    tracker = FixedLagBeatTracker(lag=LIVE_LAG)
    expected = tracker.process_online(activation)
    np.testing.assert_array_equal(tempo, [e.tempo_bpm for e in expected])
    np.testing.assert_array_equal(is_beat, [e.is_beat for e in expected])
    assert [f.grid for f in offline] == _expected_grids(stage, activation, times)
    np.testing.assert_array_equal(onset, MovementOnsetDetector().process_offline(norm, frames.confidence))


def _expected_grids(stage: LiveRhythm, activation: np.ndarray, times: np.ndarray) -> list:
    """The grid of each frame from the tracker and the predictor run by hand: the predictor's state over the
    decided beats, looked ahead with the tracker's tentative beats of that frame."""
    tracker, predictor = FixedLagBeatTracker(lag=stage.lag), BeatPredictor(stage.predictor.config)
    shift = stage.beat_model.config.output_delay / MODEL_FPS  # a delayed model's tracker runs behind the clock
    ts, ps, grids = tracker.init_state(), predictor.state, []
    for a, t in zip(activation, times, strict=True):
        ts, e = tracker.step(ts, float(a))
        if e.is_beat:
            ps = predictor.step(ps, e.beat_time - shift)
        grids.append(predictor.grid(predictor.lookahead(ps, tracker.tentative_beats(ts) - shift, float(t))))
    return grids


def test_the_grid_looks_ahead_with_the_tentative_beats():
    """On a synthetic dancer with the shipped causal model: every frame's grid is the predictor's over the
    decided beats plus that frame's tentative beats; the tentative beats move it on some frames (it would
    otherwise lag the decided beats by the decision lag), and without them it is the decided beats' grid."""
    from dataclasses import replace

    from rhythmicnet.models.beat_model import load_beat_model
    from rhythmicnet.offline.beat_eval_set import EVAL_CONFIG, validation_clip

    seq = validation_clip(2000, EVAL_CONFIG).sequence
    model = load_beat_model("full_causal")
    stage = LiveRhythm(model)
    frames = stage.process_offline(seq)
    act, times = np.array([f.activation for f in frames]), np.array([f.time for f in frames])
    grids = [f.grid for f in frames]
    assert sum(g is not None for g in grids) > len(grids) // 2
    assert grids == _expected_grids(stage, act, times)
    off = LiveRhythm(model, predictor=replace(stage.predictor.config, tentative_min_age_s=None))
    plain = [f.grid for f in off.process_offline(seq)]
    differ = sum(a != b for a, b in zip(grids, plain, strict=True))
    assert differ > 0.1 * len(grids)
    decided = BeatPredictor(stage.predictor.config)
    assert plain == [decided.process_online(f.estimate.beat_time if f.estimate.is_beat else None) for f in frames]


def test_step_is_pure_and_a_second_pass_without_reset_differs():
    seq = moving_body(camera_times(30, 3.0, 0.0, 0.0))
    stage = LiveRhythm(make_model(causal=True))
    state = stage.initial_state()
    new, frames = stage.step(state, seq.times[0], seq.keypoints[0], seq.confidence[0])
    assert state.resampler.origin is None and new.resampler.origin == seq.times[0] and len(frames) == 1
    first = [stage.process_online(t, k, c) for t, k, c in zip(seq.times, seq.keypoints, seq.confidence,
                                                              strict=True)]
    first_act = np.array([f.activation for fr in first for f in fr])
    shifted = seq.times + (seq.times[-1] - seq.times[0]) + 1.0  # the same motion again, later
    again = [stage.process_online(t, k, c) for t, k, c in zip(shifted, seq.keypoints, seq.confidence, strict=True)]
    again_act = np.array([f.activation for fr in again for f in fr])
    n = min(len(first_act), len(again_act))
    assert np.abs(again_act[:n] - first_act[:n]).max() > 1e-4  # the carried state changes what comes out
    stage.reset()
    fresh = np.array([f.activation for t, k, c in zip(seq.times, seq.keypoints, seq.confidence, strict=True)
                      for f in stage.process_online(t, k, c)])
    np.testing.assert_array_equal(fresh, first_act)


def test_a_delayed_model_runs_its_tracker_behind_the_clock():
    """A beat model whose output lags its input by ``output_delay`` frames: its activation at frame t scores
    frame t - delay, so the tracker's lag shrinks by the delay (the decision comes as late as the strictly
    causal model's) and every tracker time is moved back by delay / fps: the beats it decides, the estimate
    the engine sees and the tentative beats the grid looks ahead with."""
    delay = 4
    seq = moving_body(camera_times(60, 6.0, 0.003, 0.1), unseen=0.02)
    stage = LiveRhythm(make_model(causal=True, output_delay=delay))
    assert stage.lag == LIVE_LAG - delay and stage.tracker.lag == LIVE_LAG - delay
    offline = stage.process_offline(seq)
    times, activation, *_ = _fields(offline)
    tracker = FixedLagBeatTracker(lag=LIVE_LAG - delay)
    expected = tracker.process_online(activation)
    shift = delay / MODEL_FPS
    for f, e in zip(offline, expected, strict=True):
        assert f.estimate.is_beat == e.is_beat and f.estimate.tempo_bpm == e.tempo_bpm
        np.testing.assert_allclose(f.estimate.time, e.time - shift, atol=1e-12)
        np.testing.assert_allclose(f.estimate.next_beats, e.next_beats - shift, atol=1e-12)
        if e.is_beat:
            np.testing.assert_allclose(f.estimate.beat_time, e.beat_time - shift, atol=1e-12)
    # the frame times stay the clock's; only the tracker's are shifted
    np.testing.assert_allclose(times, [e.time for e in expected], atol=1e-9)
    assert any(e.is_beat for e in expected)

    assert [f.grid for f in offline] == _expected_grids(stage, activation, times)
    # an explicit lag is the tracker's own
    assert LiveRhythm(make_model(causal=True, output_delay=delay), lag=7).tracker.lag == 7
