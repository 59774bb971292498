"""The streaming resampler: online == its offline form; == keypoints.resample for sources >= 0.9 x 30 fps."""

import numpy as np
import pytest

from rhythmicnet.models.keypoints import KeypointSequence, resample
from rhythmicnet.models.stream_resampler import ResamplerState, StreamResampler


def moving_body(times: np.ndarray, seed: int = 0, unseen: float = 0.05) -> KeypointSequence:
    """17 joints swaying at 2 Hz (pixels), some joints unseen now and then."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 500, (17, 2))
    phase = rng.uniform(0, 2 * np.pi, (17, 2))
    kp = base + 40 * np.sin(2 * np.pi * 2.0 * times[:, None, None] + phase)
    conf = rng.uniform(0.5, 1.0, (len(times), 17))
    conf[rng.random(conf.shape) < unseen] = 0.0
    return KeypointSequence(kp.astype(np.float32), conf.astype(np.float32), times)


def camera_times(fps: float, seconds: float, jitter: float, drop: float, seed: int = 1) -> np.ndarray:
    """Frame times of a camera at ``fps`` with timing jitter and dropped frames, on a clock that starts at 12.5 s."""
    rng = np.random.default_rng(seed)
    base = np.arange(0, seconds, 1 / fps)
    t = np.sort(base + rng.uniform(-jitter, jitter, len(base)))
    keep = rng.random(len(t)) >= drop
    keep[0] = True
    t = t[keep]
    return (t - t[0] + 12.5).astype(np.float64)


def test_online_frame_by_frame_equals_offline_and_state_is_pure():
    seq = moving_body(camera_times(60, 4.0, 0.004, 0.1))
    r = StreamResampler()
    offline = r.process_offline(seq)
    state = r.state
    assert state == ResamplerState()  # process_offline leaves the kept state alone
    parts = [r.process_online(t, k, c) for t, k, c in zip(seq.times, seq.keypoints, seq.confidence, strict=True)]
    times = np.concatenate([p.times for p in parts])
    np.testing.assert_array_equal(times, offline.times)
    np.testing.assert_array_equal(np.concatenate([p.keypoints for p in parts]), offline.keypoints)
    np.testing.assert_array_equal(np.concatenate([p.confidence for p in parts]), offline.confidence)
    np.testing.assert_allclose(np.diff(offline.times), 1 / 30, atol=1e-9)
    # a second pass without reset continues the first clip's clock instead of starting at 0
    again = r.process_online(seq.times[0], seq.keypoints[0], seq.confidence[0])
    assert len(again.times) == 0  # an old timestamp is dropped
    kept = r.state
    later = r.process_online(seq.times[-1] + 0.1, seq.keypoints[0], seq.confidence[0])
    assert later.times[0] > offline.times[-1]
    assert kept.next_tick == r.state.next_tick - len(later.times)  # step returned a new state, kept one intact


@pytest.mark.parametrize("fps,jitter,drop", [(60, 0.003, 0.0), (30, 0.004, 0.15), (29.97, 0.0, 0.0), (48, 0.002, 0.3)])
def test_equals_the_offline_resample_for_sources_near_or_above_the_model_rate(fps, jitter, drop):
    seq = moving_body(camera_times(fps, 5.0, jitter, drop))
    if seq.fps < 0.9 * 30:
        pytest.skip("the offline path uses a spline below 27 fps (tested below)")
    live = StreamResampler().process_offline(seq)
    ref = resample(seq)
    assert len(live.times) == len(ref.times)
    np.testing.assert_allclose(live.times, ref.times, atol=1e-9)
    np.testing.assert_allclose(live.keypoints, ref.keypoints, atol=1e-3)  # px, float32
    np.testing.assert_array_equal(live.confidence, ref.confidence)


def test_slow_source_stays_linear_live_and_the_gap_to_the_offline_spline_is_small():
    """25 fps: offline fits a cubic spline per run of seen joints (it needs later frames); live stays linear.
    On a 2 Hz sway of 40 px the two differ by at most a couple of pixels."""
    seq = moving_body(camera_times(25, 5.0, 0.0, 0.0), unseen=0.0)
    live = StreamResampler().process_offline(seq)
    ref = resample(seq)
    np.testing.assert_allclose(live.times, ref.times, atol=1e-9)
    gap = np.abs(live.keypoints - ref.keypoints).max()
    print(f"25 fps source: max |linear - spline| = {gap:.3f} px")
    assert 0.01 < gap < 3.0


def test_bad_frames_are_refused():
    r = StreamResampler()
    with pytest.raises(ValueError, match="17"):
        r.process_online(0.0, np.zeros((16, 2)), np.zeros(16))
    with pytest.raises(ValueError):
        StreamResampler(fps=0)
