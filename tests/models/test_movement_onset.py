import numpy as np

from rhythmicnet.models.movement_onset import MovementOnsetDetector
from rhythmicnet.models.skeleton import normalize_clip
from rhythmicnet.offline.synthetic_motion import SyntheticMotionConfig, synthesize


def _mover():
    m = synthesize(SyntheticMotionConfig(duration_s=20, jerk_times=(5.0, 9.3, 14.1), bounce_px=2, seed=7))
    return m, normalize_clip(m.sequence.keypoints, m.sequence.confidence), m.sequence.confidence


def test_onsets_within_two_frames():
    m, kp, conf = _mover()
    onsets = np.flatnonzero(MovementOnsetDetector().process_offline(kp, conf))
    for f in m.jerk_frames:
        lag = onsets - f
        assert np.any((lag >= 0) & (lag <= 2)), (f, onsets)
    assert len(onsets) <= len(m.jerk_frames) + 1


def test_streaming_contract():
    m, kp, conf = _mover()
    det = MovementOnsetDetector()
    whole = det.process_online(kp, conf)
    np.testing.assert_array_equal(whole, det.process_offline(kp, conf))
    det.reset()
    by_frame = np.concatenate([det.process_online(kp[i : i + 1], conf[i : i + 1]) for i in range(len(kp))])
    np.testing.assert_array_equal(by_frame, whole)
    # Without reset the running statistics and warm-up carry over: the first jerk-free second differs.
    again = det.process_online(kp, conf)
    assert not np.array_equal(again, whole) or det._state.frame == 2 * len(kp)


def test_still_person_never_fires():
    m = synthesize(SyntheticMotionConfig(duration_s=10, bounce_px=0, sway_px=0, noise_px=0.5, seed=3))
    kp = normalize_clip(m.sequence.keypoints, m.sequence.confidence)
    assert not MovementOnsetDetector().process_offline(kp, m.sequence.confidence).any()
