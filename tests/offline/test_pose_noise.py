"""Pose-noise measurement (offline/pose_noise.py) on signals with known noise and swaps, and the synthetic
dancer's observation model 2 measured by it (issue 16, item 5)."""

import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import savgol_coeffs

from rhythmicnet.offline import pose_noise as pn
from rhythmicnet.offline.beat_eval_set import EVAL_CONFIG, EVAL_SEED_BASE, TRAIN_CONFIG
from rhythmicnet.offline.synthetic_dancer import generate_clip
from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "measure_pose_noise.py"


def figure(t: np.ndarray, rng: np.random.Generator, h: float = 300.0) -> np.ndarray:
    """A standing figure ``h`` px tall that sways and bounces smoothly: keypoints (T, 17, 2) px."""
    base = np.array([[0, 0], [-5, -5], [5, -5], [-10, -3], [10, -3], [-40, 40], [40, 40], [-55, 90], [55, 90],
                     [-60, 140], [60, 140], [-25, 150], [25, 150], [-30, 225], [30, 225], [-30, 300], [30, 300]],
                    np.float64) * h / 300.0 + [400.0, 100.0]
    sway = 20.0 * np.sin(2 * np.pi * 0.4 * t)[:, None] * [1.0, 0.0]
    bounce = 8.0 * np.sin(2 * np.pi * 1.7 * t + 1.0)[:, None] * [0.0, 1.0]
    arms = np.zeros((len(t), 17, 2))
    arms[:, [7, 8, 9, 10], 1] = (25.0 * np.sin(2 * np.pi * 1.1 * t))[:, None]
    return base[None] + (sway + bounce)[:, None, :] + arms + rng.normal(0, 1e-6, (len(t), 17, 2))


def ar1(rng: np.random.Generator, n: int, a: float, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty((n, *shape))
    out[0] = rng.standard_normal(shape)
    for k in range(1, n):
        out[k] = a * out[k - 1] + np.sqrt(1 - a * a) * rng.standard_normal(shape)
    return out


def test_savgol_weights_are_scipys_and_the_white_factor():
    for window, order in ((5, 2), (7, 2), (9, 4)):
        np.testing.assert_allclose(pn.savgol_weights(window, order), savgol_coeffs(window, order), atol=1e-12)
    w = pn.savgol_weights(7, 2)
    assert pn.white_residual_factor(7, 2) == pytest.approx(np.sqrt(1 - w[3]))
    level, lag1 = pn.noise_residual_moments(0.0, 0.0, 7, 2)  # white noise: level 1 by construction
    assert float(level) == pytest.approx(1.0) and -0.6 < float(lag1) < -0.4
    with pytest.raises(ValueError):
        pn.savgol_weights(6, 2)


def test_white_jitter_is_recovered_in_figure_heights():
    rng = np.random.default_rng(0)
    t = np.arange(900) / 30.0
    clean = figure(t, rng)
    h = pn.figure_height_px(clean, np.ones((900, 17)))
    assert h == pytest.approx(300.0, rel=0.01)
    conf = np.ones((900, 17))
    conf[300:320, 9] = 0.0  # a gap splits the wrist's track
    noisy = clean + rng.normal(0.0, 0.004 * 300.0, clean.shape)
    js = pn.measure_jitter([(noisy, conf, t)], 7, 2)
    assert js.figure_px == pytest.approx(300.0, rel=0.02)
    np.testing.assert_allclose(js.sigma, 0.004, rtol=0.12)  # per joint, about 1700 samples each
    assert js.groups["all"][0] == pytest.approx(0.004, rel=0.04)
    assert js.groups["all"][1] == pytest.approx(float(pn.noise_residual_moments(0.0, 0.0, 7, 2)[1]), abs=0.04)
    assert js.count[9] < js.count[0]  # the gap and its run ends carry no residual
    assert pn.measure_jitter([(clean, conf, t)], 7, 2).groups["all"][0] < 0.0005  # the motion leaks little


def test_correlated_jitter_is_told_from_white_and_fitted():
    rng = np.random.default_rng(1)
    t = np.arange(3000) / 30.0
    clean = figure(t, rng)
    conf = np.ones((3000, 17))
    sigma, a = 0.01, 0.5
    noisy = clean + sigma * 300.0 * ar1(rng, 3000, a, (17, 2))
    windows = (5, 7, 9)
    stats = [pn.measure_jitter([(noisy, conf, t)], w, 2).groups["all"] for w in windows]
    fit = pn.fit_noise_model(windows, np.array([s[0] for s in stats]), np.array([s[1] for s in stats]), 30.0)
    assert fit.a == pytest.approx(a, abs=0.12) and fit.white_share <= 0.3
    # what the residual identifies: the innovation per frame
    assert fit.sigma * np.sqrt(1 - fit.a**2) == pytest.approx(sigma * np.sqrt(1 - a * a), rel=0.15)
    white = [pn.measure_jitter([(clean + sigma * 300 * rng.standard_normal(clean.shape), conf, t)], w, 2).groups["all"]
             for w in windows]
    fit_w = pn.fit_noise_model(windows, np.array([s[0] for s in white]), np.array([s[1] for s in white]), 30.0)
    assert fit_w.white_share >= 0.8 or fit_w.a <= 0.15
    assert fit_w.sigma == pytest.approx(sigma, rel=0.1)


def swapped_copy(kp: np.ndarray, frames: np.ndarray, pairs=range(8)) -> np.ndarray:
    out = kp.copy()
    for i in pairs:
        l, r = pn.LR_PAIRS[i]
        out[frames, l], out[frames, r] = kp[frames, r], kp[frames, l]
    return out


def test_swaps_and_flips_are_found_where_they_are():
    rng = np.random.default_rng(2)
    t = np.arange(600) / 30.0
    clean = figure(t, rng) + rng.normal(0, 0.004 * 300, (600, 17, 2))
    conf = np.ones((600, 17))
    truth = np.zeros(600, bool)
    for a, n in ((40, 1), (100, 2), (200, 6), (330, 3), (480, 12)):
        truth[a : a + n] = True
    flipped = swapped_copy(clean, truth)
    sw = pn.detect_swaps(flipped, conf, t)
    for i, name in enumerate(pn.PAIR_NAMES):
        if name == "eye":  # 10 px apart on a 300 px figure: too close to call
            assert not sw[:, i].any()
            continue
        np.testing.assert_array_equal(sw[:, i], truth, err_msg=name)
    assert not pn.detect_swaps(clean, conf, t).any()  # no false swap on the clean figure
    stats = pn.measure_swaps([(flipped, conf, t)])
    assert len(stats.flip_durations_s) == 5 and stats.flips_per_minute == pytest.approx(15.0)
    assert sorted(np.round(np.array(stats.flip_durations_s) * 30).astype(int)) == [1, 2, 3, 6, 12]
    legs = swapped_copy(clean, truth, pairs=(6, 7))  # knees and ankles only: swaps, not flips
    ls = pn.measure_swaps([(legs, conf, t)])
    assert ls.events[6] == ls.events[7] == 5 and ls.events[:6].sum() == 0 and not ls.flip_durations_s


def test_feet_that_meet_and_part_are_not_a_swap():
    """A jumping jack's feet come together and part again (a V): exchanging them would make an X, which
    fits a straight line better, but where the joints meet nothing tells the two apart."""
    t = np.arange(300) / 30.0
    rng = np.random.default_rng(3)
    kp = figure(t, rng)
    spread = 60.0 * np.abs(np.sin(2 * np.pi * 0.8 * t))  # apart, together, apart ...
    kp[:, 15, 0], kp[:, 16, 0] = 400 - spread, 400 + spread
    kp[:, 13, 0], kp[:, 14, 0] = 400 - 0.5 * spread - 5, 400 + 0.5 * spread + 5
    kp += rng.normal(0, 1.0, kp.shape)
    assert not pn.detect_swaps(kp, np.ones((300, 17)), t).any()


def test_eval_set_keeps_generator_1_observation_to_the_byte():
    """The frozen held-out set: observation model 1 set explicitly, and its first clips are those generator
    1.0 made (sums and samples recorded from the 1.x code, before observation model 2)."""
    assert EVAL_CONFIG.observation_model == 1 and EVAL_CONFIG.noise_frac == (0.0005, 0.005)
    assert TRAIN_CONFIG.observation_model == 2
    recorded = ((8216194.734, 2961633418.9, 9780.9975, 242.5654, 0.988831),
                (16529080.14, 9765233514.6, 13002.4579, 625.0862, 0.598996))
    for k, want in enumerate(recorded):
        d = generate_clip(EVAL_CONFIG, EVAL_SEED_BASE + k)
        kp, c = d.sequence.keypoints.astype(np.float64), d.sequence.confidence.astype(np.float64)
        got = (kp.sum(), (kp * kp).sum(), c.sum(), kp[100, 9, 1], c[200, 15])
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-4)


def test_observation_model_2_draws_from_its_own_stream():
    one = dataclasses.replace(TRAIN_CONFIG, duration_s=(10.0, 10.0), observation_model=1)
    two = dataclasses.replace(one, observation_model=2)
    a, b = generate_clip(one, 21), generate_clip(two, 21)
    np.testing.assert_array_equal(a.sequence.times, b.sequence.times)
    np.testing.assert_array_equal(a.beats, b.beats)
    assert a.metadata.sections == b.metadata.sections and a.metadata.camera == b.metadata.camera
    assert not np.array_equal(a.sequence.keypoints, b.sequence.keypoints)
    c = b.sequence.confidence
    assert np.median(c[:, :7][c[:, :7] > 0]) > 0.98  # mediapipe-like: head and shoulders near 1
    with pytest.raises(ValueError):
        dataclasses.replace(TRAIN_CONFIG, observation_model=3)


def clips30(cfg, seeds) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    cfg = dataclasses.replace(cfg, fps=(30.0, 30.0), irregular_times_share=0.0, frame_drop_prob=(0.0, 0.0),
                              duration_s=(30.0, 30.0))
    return [(s.keypoints, s.confidence, s.times) for s in (generate_clip(cfg, k).sequence for k in seeds)]


def test_generated_jitter_and_flips_have_the_configured_level_and_rate():
    cfg = dataclasses.replace(TRAIN_CONFIG, noise_frac=(0.0, 0.0), outlier_prob=(0.0, 0.0), distractor_share=(0.0, 0.0),
                              jitter_frac=(0.008, 0.008), flip_share=1.0, flip_rate_per_min=(30.0, 30.0),
                              flip_duration_s=(0.1, 0.1), yaw_deg=(0.0, 20.0), travel_prob=0.0)
    # jitter: the head's, through the fit's residual, is the OU level (a = exp(-1 / (30 fps * 0.15 s))); the
    # generator's unit (nose to ankle at the target distance) is about 10 % over the measured figure height
    head = pn.measure_jitter(clips30(dataclasses.replace(cfg, flip_share=0.0), range(100, 103)), 7, 2).groups["head"][0]
    want = 0.008 * float(pn.noise_residual_moments(np.exp(-1.0 / (30.0 * cfg.jitter_time_s)), 0.0, 7, 2)[0])
    assert want < head < 1.25 * want
    clips = clips30(cfg, range(100, 106))
    sw = pn.measure_swaps(clips)
    print(f"flips per minute {sw.flips_per_minute:.1f} (configured 30), "
          f"mean length {np.mean(sw.flip_durations_s):.3f} s (configured 0.1)")
    assert 0.7 * 30 <= sw.flips_per_minute <= 1.15 * 30
    assert np.mean(sw.flip_durations_s) == pytest.approx(0.1, abs=0.025)
    none = pn.measure_swaps(clips30(dataclasses.replace(cfg, flip_share=0.0), range(106, 109)))
    assert none.flips_per_minute < 1.0


def test_measure_script_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--jumping-jacks", "--squats", "--cache", "--synthetic", "--seed"):
        assert flag in out


@pytest.mark.slow
def test_real_clips_show_mediapipes_noise_and_flips(tmp_path, shared_dir):
    """The real example clips through the pose stage: the figures the observation model was fitted to."""
    spec = importlib.util.spec_from_file_location("measure_pose_noise", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = mod._parser().parse_args(["--cache", str(tmp_path), "--squats", str(shared_dir / mod.SQUATS)])
    real = mod.real_clips(args)
    jitter = pn.measure_jitter([real["jumper"], real["walker"]], 7, 2).groups
    assert 0.003 < jitter["head"][0] < 0.006 and 0.007 < jitter["legs"][0] < 0.014
    assert -0.45 < jitter["all"][1] < -0.25  # correlated: white noise would give -0.49
    assert len(pn.measure_swaps([real["jumper"]]).flip_durations_s) >= 3  # the backlit jumper flips
    assert not pn.measure_swaps([real["squats"]]).flip_durations_s


def test_ou_jitter_runs_match_the_recursion():
    """The generator's OU processes: linear filters over runs of equal frame steps, exactly the recursion."""
    from rhythmicnet.offline.synthetic_dancer import _ou

    t = np.delete(np.arange(400) / 30.0, [50, 51, 300])  # dropped frames split the runs
    tau = np.array([0.05, 0.6, 0.15, 0.15])
    got = _ou(np.random.default_rng(1), t, tau)
    e = np.random.default_rng(1).standard_normal((len(t), 4))
    rho = np.exp(-np.diff(t)[:, None] / tau)
    want = e.copy()
    for k in range(1, len(t)):
        want[k] = rho[k - 1] * want[k - 1] + np.sqrt(1 - rho[k - 1] ** 2) * e[k]
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert abs(np.corrcoef(got[1:100, 1], got[:99, 1])[0, 1] - np.exp(-1 / 18)) < 0.1  # 0.6 s at 30 fps
