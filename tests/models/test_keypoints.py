import numpy as np
import pytest

from rhythmicnet.models.keypoints import KeypointSequence, fill_gaps, prepare_for_model, resample


def _seq(times, values=None, conf=None):
    t = np.asarray(times, dtype=np.float64)
    n = len(t)
    kp = np.zeros((n, 17, 2), np.float32)
    kp[..., 0] = (t if values is None else np.asarray(values))[:, None]
    kp[..., 1] = 2 * kp[..., 0]
    c = np.ones((n, 17), np.float32) if conf is None else np.asarray(conf, np.float32)
    return KeypointSequence(kp, c, t)


def test_schema_checked():
    with pytest.raises(ValueError, match="keypoints"):
        KeypointSequence(np.zeros((3, 33, 2)), np.zeros((3, 33)), np.arange(3.0))
    with pytest.raises(ValueError, match="increasing"):
        KeypointSequence(np.zeros((3, 17, 2)), np.zeros((3, 17)), np.array([0.0, 0.1, 0.1]))


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0])
def test_resample_to_model_rate_by_timestamps(fps):
    t = np.arange(int(2 * fps)) / fps + 5.0  # clip times need not start at 0
    seq = _seq(t, values=10 * (t - 5.0))  # x = 10 px per second
    out = resample(seq, 30.0)
    assert out.times[0] == 0.0
    np.testing.assert_allclose(np.diff(out.times), 1 / 30.0)
    np.testing.assert_allclose(out.keypoints[:, 0, 0], 10 * out.times, atol=1e-4)
    np.testing.assert_allclose(out.keypoints[:, 0, 1], 20 * out.times, atol=1e-4)
    assert out.times[-1] <= t[-1] - t[0] + 1e-9


def test_resample_variable_rate():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.02, 0.05, 100))
    out = resample(_seq(t, values=3 * t), 30.0)
    np.testing.assert_allclose(out.keypoints[:, 3, 0], 3 * (out.times + t[0]), atol=1e-4)


def test_gap_interpolation_short_and_long():
    t = np.arange(60) / 30.0
    conf = np.ones((60, 17), np.float32)
    conf[10:20] = 0  # 11 frame steps = 0.37 s gap -> filled
    conf[30:50] = 0  # 0.7 s gap -> stays empty
    vals = np.where(conf[:, 0] > 0, t * 30, 0.0)
    out = fill_gaps(_seq(t, values=vals, conf=conf))
    assert np.all(out.confidence[10:20] > 0)
    np.testing.assert_allclose(out.keypoints[10:20, 0, 0], np.arange(10, 20), atol=1e-4)
    assert np.all(out.confidence[30:50] == 0)
    assert out.confidence[5, 0] == 1.0  # observed frames keep their confidence


def test_prepare_unseen_frames_stay_unseen():
    t = np.arange(90) / 30.0
    conf = np.ones((90, 17), np.float32)
    conf[:, 4] = 0  # one joint never seen
    out = prepare_for_model(_seq(t, conf=conf))
    assert np.all(out.confidence[:, 4] == 0)
    assert out.person_fraction() == 1.0
