"""Beat-network input features: channels, unseen joints, causal stream == offline."""

from __future__ import annotations

import numpy as np
import pytest

from rhythmicnet.models.beat_features import (
    FEATURE_CHANNELS,
    FEATURE_NAMES,
    POSITION_CLIP,
    VELOCITY_CLIP,
    VELOCITY_SCALE,
    BeatFeatureStream,
    beat_input_features,
)


def random_clip(t: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kp = np.cumsum(rng.normal(0, 0.02, (t, 17, 2)), axis=0).astype(np.float32)
    conf = rng.uniform(0.3, 1.0, (t, 17)).astype(np.float32)
    conf[rng.uniform(size=(t, 17)) < 0.1] = 0.0  # dropped joints
    return kp, conf


def test_channels_are_velocity_position_confidence() -> None:
    assert FEATURE_NAMES == ("vx", "vy", "x", "y", "confidence") and FEATURE_CHANNELS == 5
    kp, conf = random_clip()
    conf[:] = 1.0
    f = beat_input_features(kp, conf)
    assert f.shape == (40, 17, 5) and f.dtype == np.float32
    np.testing.assert_allclose(f[1:, :, :2], (kp[1:] - kp[:-1]) * VELOCITY_SCALE, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(f[0, :, :2], 0.0)  # no previous frame
    np.testing.assert_allclose(f[:, :, 2:4], kp, atol=1e-7)
    np.testing.assert_array_equal(f[:, :, 4], 1.0)


def test_unseen_joints_give_zeros_and_glitches_are_clipped() -> None:
    kp, conf = random_clip()
    conf[:] = 1.0
    conf[10, 3] = 0.0
    kp[20, 5] = [100.0, -100.0]  # a glitch far outside the body
    f = beat_input_features(kp, conf)
    np.testing.assert_array_equal(f[10, 3], 0.0)  # unseen: velocity, position and confidence 0
    np.testing.assert_array_equal(f[11, 3, :2], 0.0)  # previous frame unseen: no velocity
    assert f[11, 3, 4] == 1.0 and np.any(f[11, 3, 2:4] != 0)
    assert np.all(np.abs(f[..., :2]) <= VELOCITY_CLIP) and np.all(np.abs(f[..., 2:4]) <= POSITION_CLIP)
    assert f[20, 5, 0] == VELOCITY_CLIP and f[20, 5, 2] == POSITION_CLIP


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="keypoints must have shape"):
        beat_input_features(np.zeros((5, 16, 2)), np.zeros((5, 16)))
    with pytest.raises(ValueError, match="confidence must have shape"):
        beat_input_features(np.zeros((5, 17, 2)), np.zeros((5, 16)))
    assert beat_input_features(np.zeros((0, 17, 2)), np.zeros((0, 17))).shape == (0, 17, 5)


def test_stream_frame_by_frame_equals_offline_and_keeps_state() -> None:
    kp, conf = random_clip()
    stream = BeatFeatureStream()
    offline = stream.process_offline(kp, conf)
    online = np.concatenate([stream.process_online(kp[i], conf[i]) for i in range(len(kp))])
    np.testing.assert_array_equal(online, offline)
    # chunks after a reset give the same again
    stream.reset()
    chunks = np.concatenate([stream.process_online(kp[a : a + 7], conf[a : a + 7]) for a in range(0, 40, 7)])
    np.testing.assert_array_equal(chunks, offline)
    # a second pass without reset differs (the first frame now has a predecessor)
    again = stream.process_online(kp, conf)
    assert not np.array_equal(again[0], offline[0])
    np.testing.assert_array_equal(again[1:], offline[1:])
