"""Synthetic dancers: determinism, shapes, beat labels that match the motion, the frozen eval set, the CLI."""

import dataclasses
import json
import time

import cv2
import numpy as np
import pytest

from rhythmicnet.cli import build_parser, main
from rhythmicnet.models.keypoints import prepare_for_model
from rhythmicnet.models.skeleton import normalize_clip
from rhythmicnet.offline.beat_eval_set import (
    EVAL_FINGERPRINT,
    EVAL_SEED_BASE,
    EVAL_SET,
    TRAIN_CONFIG,
    TRAIN_SEED_LIMIT,
    VALIDATION_SEED_BASE,
    clip_fingerprint,
    eval_clips,
    training_clip,
    validation_clip,
)
from rhythmicnet.offline.keypoint_io import load_keypoints
from rhythmicnet.offline.synthetic_dancer import (
    GENERATOR_VERSION,
    DancerConfig,
    generate_clip,
    preview_frame_times,
)

#: Only the bounce carries the beat to the hips: no distractors, no off-beat knee dips, no half/double time,
#: no jumps, no generator 2.0 steps (their landings dip the hips at the step rate, off the beat).
BOUNCE_ONLY = dataclasses.replace(
    TRAIN_CONFIG, distractor_share=(0.0, 0.0), syncopation_prob=0.0, rate_change_prob=0.0, bounce_prob=1.0,
    jump_prob=0.0, dance_vocabulary=1,
    timing_jitter_s=(0.010, 0.010), dancer_offset_s=(0.0, 0.0), noise_frac=(0.0, 0.0), outlier_prob=(0.0, 0.0),
    joint_drop_prob=(0.0, 0.0), frame_drop_prob=(0.0, 0.0), person_lost_share=0.0, observation_model=1,
)


def test_same_seed_same_clip_and_seeds_differ():
    a, b, c = generate_clip(TRAIN_CONFIG, 7), generate_clip(TRAIN_CONFIG, 7), generate_clip(TRAIN_CONFIG, 8)
    for x, y in ((a.sequence.keypoints, b.sequence.keypoints), (a.sequence.confidence, b.sequence.confidence),
                 (a.sequence.times, b.sequence.times), (a.beats, b.beats), (a.downbeats, b.downbeats)):
        np.testing.assert_array_equal(x, y)
    assert a.metadata.to_dict() == b.metadata.to_dict()
    assert a.tempo_bpm != c.tempo_bpm or a.sequence.num_frames != c.sequence.num_frames
    assert not np.array_equal(a.beats[:5], c.beats[:5])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_shapes_rates_and_times(seed):
    d = generate_clip(TRAIN_CONFIG, seed)
    seq, m = d.sequence, d.metadata
    t = seq.num_frames
    assert seq.keypoints.shape == (t, 17, 2) and seq.keypoints.dtype == np.float32
    assert seq.confidence.shape == (t, 17) and seq.confidence.dtype == np.float32
    assert seq.times.dtype == np.float64 and seq.times[0] == 0.0 and np.all(np.diff(seq.times) > 0)
    assert 24.0 <= m.fps <= 60.0
    assert t == pytest.approx(30.0 * m.fps - m.dropped_frames, abs=1)
    assert seq.times[-1] == pytest.approx(30.0, abs=2.0 / m.fps)
    assert seq.image_size in TRAIN_CONFIG.image_sizes
    conf, kp = seq.confidence, seq.keypoints
    assert np.all((conf >= 0) & (conf <= 1))
    assert np.all(kp[conf == 0] == 0)  # unseen joints carry no coordinates
    w, h = seq.image_size
    seen = kp[conf > 0]
    assert np.all((seen[:, 0] >= 0) & (seen[:, 0] < w) & (seen[:, 1] >= 0) & (seen[:, 1] < h))
    assert 0.7 < seq.person_fraction() <= 1.0 and m.unseen_share < 0.2
    assert abs(m.camera.yaw_deg) <= 60.0
    assert np.all(d.beats >= 0) and np.all(d.beats <= seq.times[-1] + 1 / m.fps)
    assert len(m.hit_times) == len(d.beats)


def test_tempo_within_range_and_drift_is_slow():
    tempi = []
    for seed in range(30):
        d = generate_clip(dataclasses.replace(TRAIN_CONFIG, duration_s=(10.0, 10.0)), seed)
        local = 60.0 / np.diff(d.beats)
        assert 60.0 - 1e-6 <= d.tempo_bpm <= 180.0 + 1e-6
        assert np.all((local > 60.0 - 1e-6) & (local < 180.0 + 1e-6))
        assert np.max(np.abs(np.diff(local))) / d.tempo_bpm < 0.01  # drift, not jumps
        tempi.append(d.tempo_bpm)
    assert np.ptp(tempi) > 40  # the range is used
    fixed = generate_clip(dataclasses.replace(TRAIN_CONFIG, tempo_bpm=(97.0, 97.0), tempo_drift=(0.0, 0.0)), 3)
    np.testing.assert_allclose(60.0 / np.diff(fixed.beats), 97.0, rtol=1e-3)


def test_downbeats_are_every_fourth_beat():
    for seed in range(5):
        d = generate_clip(TRAIN_CONFIG, seed)
        idx = np.flatnonzero(np.isin(d.beats, d.downbeats))
        assert len(idx) == len(d.downbeats) >= 5
        assert idx[0] < 4 and np.all(np.diff(idx) == 4)


def test_hips_are_lowest_on_the_labelled_beats():
    """The beat-locked bounce really lands on the labels: hips lowest (image y largest) within 2 frames."""
    hits = total = 0
    for seed in range(8):
        d = generate_clip(BOUNCE_ONLY, seed)
        seq = d.sequence
        t = seq.times
        hip_y = seq.keypoints[:, 11:13, 1].mean(axis=1)
        half = 0.5 * 60.0 / d.tempo_bpm
        for b in d.beats:
            win = (t > b - half) & (t < b + half)
            if win.sum() < 5 or b - half < 0 or b + half > t[-1]:
                continue
            total += 1
            hits += abs(t[win][np.argmax(hip_y[win])] - b) <= 2.0 / seq.fps + 1e-9
    print(f"hips lowest within 2 frames of the labelled beat: {hits}/{total}")
    assert total > 200 and hits / total >= 0.9


JUMPS_ONLY = dataclasses.replace(BOUNCE_ONLY, bounce_prob=0.0, jump_prob=1.0, step_prob=0.0, accent_prob=0.0,
                                 camera_shake_deg=(0.0, 0.0), pitch_deg=(0.0, 10.0))


def test_jumps_land_on_the_labelled_beats_and_the_hips_bottom_out_after():
    """A jumper's beat is the landing: the ankles come back to the floor at the label (within 2
    frames), the feet are well up in the half beat before it, and the hips are lowest 30-200 ms after
    it (knees absorbing)."""
    landed = bottom_after = total = 0
    lifts = []
    for seed in range(6):
        d = generate_clip(JUMPS_ONLY, seed)
        assert all("jump" in s.moves or "jack" in s.moves for s in d.metadata.sections)
        seq = d.sequence
        t = seq.times
        ankle_y = seq.keypoints[:, 15:17, 1].mean(axis=1)  # image y grows downwards
        hip_y = seq.keypoints[:, 11:13, 1].mean(axis=1)
        height = np.ptp(seq.keypoints[:, :, 1], axis=1).mean()
        period = 60.0 / d.tempo_bpm
        for b in d.beats:
            if b - period < 0 or b + period > t[-1]:
                continue
            around = (t > b - period) & (t < b + period)
            floor = ankle_y[around].max()
            before = (t > b - 0.6 * period) & (t < b)
            after = (t >= b - 0.5 / seq.fps) & (t < b + 0.45 * period)
            if before.sum() < 3 or after.sum() < 4:
                continue
            total += 1
            lifts.append((floor - ankle_y[before].min()) / height)
            # the first frame, after the highest point of the jump, with the ankles back on the floor
            top = np.flatnonzero(before)[np.argmin(ankle_y[before])]
            down = top + np.flatnonzero(ankle_y[top:] >= floor - 0.002 * height)[0]
            landed += abs(t[down] - b) <= 2.0 / seq.fps + 1e-9
            lag = t[after][np.argmax(hip_y[after])] - b
            bottom_after += 0.03 <= lag <= 0.2 + 2.0 / seq.fps
    print(f"jumps: landed within 2 frames {landed}/{total}, hips lowest 30-200 ms after {bottom_after}/{total}, "
          f"median foot lift {np.median(lifts):.3f} of the figure's height")
    assert total > 100 and landed / total >= 0.85 and bottom_after / total >= 0.8
    assert np.median(lifts) > 0.015


def test_kinematic_offsets_peak_on_beats_at_the_model_rate():
    """Default choreography (all moves, no distractors): joint accelerations concentrate on the beat
    phase; without jumps the hips are lowest on it (a jump's hips bottom out after its landing, which
    ``test_jumps_land_on_the_labelled_beats_and_the_hips_bottom_out_after`` checks)."""
    cfg = dataclasses.replace(TRAIN_CONFIG, distractor_share=(0.0, 0.0), noise_frac=(0.0, 0.0), outlier_prob=(0.0, 0.0),
                              observation_model=1)  # the choreography's own accelerations, without pose noise
    energy, count = np.zeros(16), np.zeros(16)
    hip_fold, hip_count = np.zeros(16), np.zeros(16)
    for seed in range(10):
        for config, what in ((cfg, "acceleration"), (dataclasses.replace(cfg, jump_prob=0.0), "hips")):
            d = generate_clip(config, seed)
            seq = prepare_for_model(d.sequence)
            x = normalize_clip(seq.keypoints, seq.confidence)
            ok = (seq.confidence > 0).all(axis=1)
            acc = np.linalg.norm(np.diff(x, 2, axis=0), axis=-1).mean(axis=1)
            tt = seq.times[1:-1]
            ok = ok[1:-1] & ok[2:] & ok[:-2] & (tt >= d.beats[0]) & (tt < d.beats[-1])
            i = np.clip(np.searchsorted(d.beats, tt, side="right") - 1, 0, len(d.beats) - 2)
            phase = (tt - d.beats[i]) / (d.beats[i + 1] - d.beats[i])
            k = np.round(phase * 16).astype(int) % 16
            if what == "acceleration":
                np.add.at(energy, k[ok], acc[ok])
                np.add.at(count, k[ok], 1)
            else:
                np.add.at(hip_fold, k[ok], x[1:-1, 11:13, 1].mean(axis=1)[ok])
                np.add.at(hip_count, k[ok], 1)
    e = energy / count
    print("acceleration by beat phase (16ths, beat first):", np.round(e / e.mean(), 2))
    assert np.argmax(e) == 0 and e[0] > 1.8 * np.median(e)
    assert np.argmax(hip_fold / hip_count) == 0  # hips lowest (largest image y) on the beat


def test_eval_set_is_disjoint_harder_and_frozen():
    seeds = EVAL_SET.seeds
    assert len(seeds) >= 200 and len(set(seeds)) == len(seeds) and min(seeds) >= EVAL_SEED_BASE > TRAIN_SEED_LIMIT
    assert EVAL_SEED_BASE > VALIDATION_SEED_BASE >= TRAIN_SEED_LIMIT
    cfg = EVAL_SET.config
    assert cfg.duration_s == (30.0, 30.0) and cfg.timing_jitter_s == (0.03, 0.03)
    assert cfg.distractor_share[0] >= 0.3
    assert cfg.yaw_deg[0] >= TRAIN_CONFIG.yaw_deg[1]  # camera yaws outside the training range
    # frozen with generator 1.0; 1.1 only added jumps and 2.0 the dance vocabulary, which the set leaves out
    # (same clips to the byte)
    assert EVAL_SET.generator_version == "1.0" and GENERATOR_VERSION == "2.0" and cfg.jump_prob == 0.0
    assert cfg.dance_vocabulary == 1
    for d in eval_clips(12):
        m = d.metadata
        assert 60.0 <= abs(m.camera.yaw_deg) <= 80.0
        assert m.distractor_share >= 0.3 - 1e-9 and m.timing_jitter_s == 0.03 and m.duration_s == 30.0
        assert m.seed >= EVAL_SEED_BASE
    # Frozen: the first clips still match what the repo recorded (bump GENERATOR_VERSION when this changes).
    got = tuple(clip_fingerprint(d) for d in eval_clips(len(EVAL_FINGERPRINT)))
    assert got == EVAL_FINGERPRINT
    assert training_clip(5).metadata.seed == 5 and validation_clip(2).metadata.seed == VALIDATION_SEED_BASE + 2
    with pytest.raises(ValueError):
        training_clip(TRAIN_SEED_LIMIT)


def test_generation_is_fast():
    cfg = dataclasses.replace(TRAIN_CONFIG, fps=(60.0, 60.0))  # the most frames per 30 s clip
    generate_clip(cfg, 0)
    t0 = time.perf_counter()
    n = 10
    for seed in range(n):
        generate_clip(cfg, seed)
    per_clip = (time.perf_counter() - t0) / n
    print(f"generation: {1000 * per_clip:.1f} ms per 30 s clip at 60 fps")
    assert per_clip < 1.0  # lenient (shared CPU); the target is well under 0.1 s


def test_config_validation():
    with pytest.raises(ValueError):
        DancerConfig(tempo_bpm=(180.0, 60.0))
    with pytest.raises(ValueError):
        DancerConfig(distractor_kinds=(("moonwalk", 1.0),))


def test_synth_dance_help_explains_every_flag():
    sub = build_parser()._subparsers._group_actions[0].choices["synth-dance"]
    for action in sub._actions:
        assert action.help, f"flag {action.option_strings or action.dest} has no help"


def test_synth_dance_writes_preview_keypoints_and_beats(tmp_path, capsys):
    video, kp_path = tmp_path / "dance.mp4", tmp_path / "dance.npz"
    assert main(["synth-dance", "--seed", "5", "--duration", "3", "--tempo", "120", "--preview", str(video),
                 "--keypoints", str(kp_path)]) == 0
    out = capsys.readouterr().out
    assert "BPM" in out and "wrote" in out
    expected = generate_clip(dataclasses.replace(TRAIN_CONFIG, duration_s=(3.0, 3.0), tempo_bpm=(120.0, 120.0),
                                                 tempo_drift=(0.0, 0.0)), 5)
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == len(preview_frame_times(expected)) > 0
    seq = load_keypoints(kp_path)
    np.testing.assert_allclose(seq.keypoints, expected.sequence.keypoints)
    rec = json.loads((tmp_path / "dance.beats.json").read_text())
    np.testing.assert_allclose(rec["beats"], expected.beats, atol=1e-5)
    np.testing.assert_allclose(rec["downbeats"], expected.downbeats, atol=1e-5)
    assert rec["tempo_bpm"] == pytest.approx(120.0, abs=0.1) and rec["generator_version"] == GENERATOR_VERSION
    assert not list(tmp_path.glob(".*part*"))  # atomic writes leave no temporary files


def test_synth_dance_bad_output_folder_is_one_line(tmp_path, capsys):
    assert main(["synth-dance", "--duration", "2", "--preview", str(tmp_path / "missing" / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rhythmicnet: error: ") and "\n" not in err
