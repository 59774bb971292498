import numpy as np
import pytest

from rhythmicnet.models.skeleton import normalize_clip
from rhythmicnet.models.style_stream import (
    HOP,
    StyleConfig,
    StyleStream,
    extract_style,
    highest_bin_magnitude,
    stft_highest_bin,
)
from rhythmicnet.offline.style_eval import evaluate_detectors
from rhythmicnet.offline.synthetic_motion import SyntheticMotionConfig, random_jerk_times, synthesize


def test_highest_bin_is_nyquist_with_centred_hann():
    # An impulse at the window centre (sample 8) gives the full window weight 1; smooth input cancels.
    x = np.zeros(16)
    x[8] = 1.0
    assert highest_bin_magnitude(x[None])[0] == pytest.approx(1.0)
    assert highest_bin_magnitude(np.ones((1, 16)))[0] < 1e-12


def test_frames_are_centred_on_every_fourth_sample():
    ko = np.zeros(41)
    ko[20] = 1.0  # 15 fps sample 20 = the centre of frame 5
    mag = stft_highest_bin(ko)
    assert len(mag) == (41 - 1) // HOP + 1
    assert int(np.argmax(mag)) == 20 // HOP
    assert mag[5] == pytest.approx(1.0)
    # The causal form has only complete frames (frame m needs sample 4m + 7).
    assert len(stft_highest_bin(ko, pad_end=False)) == (41 - 8) // HOP + 1


def _mover(seed=1, n_jerks=8, duration=60.0, bounce=3.0):
    rng = np.random.default_rng(seed)
    m = synthesize(SyntheticMotionConfig(duration_s=duration, jerk_times=random_jerk_times(duration, n_jerks, 3.0, rng),
                                         bounce_px=bounce, seed=seed))
    return m, normalize_clip(m.sequence.keypoints, m.sequence.confidence)


def test_style_times_match_known_sudden_movements():
    m, kp = _mover()
    res = extract_style(kp, m.sequence.confidence, m.sequence.times)
    assert res.mask.shape == (m.sequence.num_frames,)
    hits = [np.min(np.abs(res.times - t)) for t in m.jerk_times]
    assert np.mean(np.asarray(hits) <= 0.17) >= 0.85, hits
    # The paper's binary stream marks about the top 10 % of STFT frames, repeated over the hop.
    assert 0.02 < res.mask.mean() < 0.12
    # One event per local peak: no two events in adjacent STFT frames.
    assert np.all(np.diff(res.times) > 1.5 * HOP / 15.0)


def test_still_person_has_no_style():
    m = synthesize(SyntheticMotionConfig(duration_s=20, bounce_px=0, sway_px=0, noise_px=0.3, seed=5))
    kp = normalize_clip(m.sequence.keypoints, m.sequence.confidence)
    assert len(extract_style(kp, m.sequence.confidence, m.sequence.times).times) <= 2


def test_causal_stream_contract():
    m, kp = _mover(seed=2, duration=30.0, n_jerks=4)
    conf, times = m.sequence.confidence, m.sequence.times
    stream = StyleStream()
    whole = stream.process_online(kp, conf, times)
    offline = stream.process_offline(kp, conf, times)
    np.testing.assert_allclose(whole, offline)
    stream.reset()
    by_frame = np.concatenate([stream.process_online(kp[i : i + 1], conf[i : i + 1], times[i : i + 1])
                               for i in range(len(times))])
    np.testing.assert_allclose(by_frame, offline)
    # A second pass without reset continues the running threshold and buffers: a different output.
    again = stream.process_online(kp, conf, times)
    assert len(again) != len(offline) or not np.allclose(again, offline)
    assert len(offline) >= 3


def test_config_validation():
    with pytest.raises(ValueError, match="whole"):
        StyleConfig(model_fps=30.0, style_fps=20.0)


def test_detectors_on_synthetic_movements():
    scores = {s.name: s for s in evaluate_detectors(seeds=(1, 2, 3))}
    for s in scores.values():
        print(s.row())
    off, causal, onset = scores["style (offline)"], scores["style (causal)"], scores["movement onset"]
    assert off.hit_rate >= 0.85 and off.false_alarms_per_minute <= 6 and off.timing <= 0.1
    assert causal.hit_rate >= 0.85 and causal.false_alarms_per_minute <= 8
    assert onset.hit_rate >= 0.95 and onset.timing <= 2.0 and onset.false_alarms_per_minute <= 4
