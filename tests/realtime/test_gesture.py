"""The start/stop gesture on real keypoints: the bundled jumping-jacks clip as the live pose estimator sees it
(arms overhead on every jump: must not fire), and the same clip with two 1.2 s arms-up holds edited in
(must fire twice). How the fixtures were made: tests/data/gestures/make_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.models.pose_gesture import ArmsUpGesture, arms_up
from rhythmicnet.offline.keypoint_io import load_keypoints

DATA = Path(__file__).resolve().parents[1] / "data" / "gestures"


def looped(seq: KeypointSequence, times: int) -> KeypointSequence:
    period = float(seq.times[-1] + np.median(np.diff(seq.times)))
    return KeypointSequence(np.concatenate([seq.keypoints] * times), np.concatenate([seq.confidence] * times),
                            np.concatenate([seq.times + k * period for k in range(times)]), seq.image_size)


def test_does_not_fire_on_jumping_jacks_though_the_arms_go_overhead():
    seq = load_keypoints(DATA / "jumping_jacks_live.npz")
    up = np.array([arms_up(k, c) for k, c in zip(seq.keypoints, seq.confidence, strict=True)])
    assert up.sum() >= 20  # the pose is there, on every jump...
    assert not ArmsUpGesture().process_offline(looped(seq, 4)).any()  # ...but never held for a second


def test_fires_on_the_recorded_start_stop_motion_once_per_hold():
    seq = load_keypoints(DATA / "arms_up_start_stop.npz")
    fired = seq.times[ArmsUpGesture().process_offline(seq)]
    period = 230 / 30
    # holds from 2.6 s in each of the two passes: it fires 1 s into each, and nowhere else
    assert np.allclose(fired, [2.6 + 1.0, period + 2.6 + 1.0], atol=0.05), fired


def test_streaming_matches_offline_and_state_carries_over():
    seq = load_keypoints(DATA / "arms_up_start_stop.npz")
    g = ArmsUpGesture()
    online = np.array([g.process_online(float(t), k, c) for t, k, c in
                       zip(seq.times, seq.keypoints, seq.confidence, strict=True)])
    assert np.array_equal(online, g.process_offline(seq))
    # a hold that was already 0.9 s long when the clip ends fires 0.1 s into the next one, not 1 s in
    cut = int(np.searchsorted(seq.times, 3.5))
    g.reset()
    for t, k, c in zip(seq.times[:cut], seq.keypoints[:cut], seq.confidence[:cut], strict=True):
        assert not g.process_online(float(t), k, c)
    assert g.state.up_since is not None and 3.5 - g.state.up_since > 0.8
