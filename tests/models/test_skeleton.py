import numpy as np
import pytest

from rhythmicnet.models.skeleton import (
    COCO17_EDGES,
    COCO17_NAMES,
    MEDIAPIPE_TO_COCO17,
    NUM_JOINTS,
    RunningBodyFrame,
    adjacency,
    clip_body_frame,
    hop_distance,
    normalize_clip,
    spatial_partition,
)

# mediapipe Pose landmark names, index = landmark id (from the mediapipe Pose model card).
MEDIAPIPE_NAMES = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]  # fmt: skip


def test_mediapipe_mapping_names_match():
    assert len(MEDIAPIPE_NAMES) == 33
    assert [MEDIAPIPE_NAMES[i] for i in MEDIAPIPE_TO_COCO17] == list(COCO17_NAMES)


def test_adjacency_symmetric_connected():
    a = adjacency()
    assert a.shape == (NUM_JOINTS, NUM_JOINTS)
    assert np.array_equal(a, a.T)
    assert np.all(np.diag(a) == 0)
    assert a.sum() == 2 * len(COCO17_EDGES)
    assert np.isfinite(hop_distance(a, NUM_JOINTS)).all(), "skeleton graph must be connected"


def test_spatial_partition_sums_to_normalised_adjacency():
    parts = spatial_partition()
    assert parts.shape == (3, NUM_JOINTS, NUM_JOINTS)
    total = parts.sum(axis=0)
    # Column-normalised adjacency with self loops: every column sums to 1.
    np.testing.assert_allclose(total.sum(axis=0), np.ones(NUM_JOINTS), atol=1e-6)
    # Self loops are all in the root subset.
    assert np.all(np.diag(parts[0]) > 0)
    # Wrist (9) -> elbow (7): the elbow is closer to the centre, so it is in the centripetal subset of the wrist.
    assert parts[1][7, 9] > 0 and parts[2][7, 9] == 0


def _figure(t: int, bounce: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from rhythmicnet.offline.synthetic_motion import STANDING_TEMPLATE_PX

    kp = np.repeat(STANDING_TEMPLATE_PX[None], t, axis=0).astype(np.float32)
    kp[:, :, 1] += bounce[:, None]
    return kp, np.ones((t, NUM_JOINTS), np.float32)


def test_clip_normalisation_keeps_the_bounce():
    t = np.arange(90)
    bounce = 10 * np.sin(2 * np.pi * t / 15)
    kp, conf = _figure(90, bounce)
    norm = normalize_clip(kp, conf)
    frame = clip_body_frame(kp, conf)
    assert frame.scale == pytest.approx(110.0, rel=1e-3)  # shoulder mid (y=160) to hip mid (y=270)
    hip_y = norm[:, 11, 1]
    np.testing.assert_allclose(hip_y - hip_y.mean(), (bounce - bounce.mean()) / 110.0, atol=1e-5)
    # Aspect ratio kept: the same pixel distance is the same normalised distance along x and y.
    assert norm[0, 5, 0] - norm[0, 6, 0] == pytest.approx(60 / 110.0, rel=1e-5)


def test_running_body_frame_is_slow():
    rb = RunningBodyFrame(tau_s=3.0)
    t = np.arange(300)
    bounce = 10 * np.sin(2 * np.pi * t / 15)  # 2 Hz bounce at 30 fps
    kp, conf = _figure(300, bounce)
    out = np.stack([rb.process_online(kp[i], conf[i], 1 / 30) for i in range(300)])
    hip_y = out[150:, 11, 1]
    # The 2 Hz bounce (amplitude 10 px = 0.09 body units) survives nearly whole.
    assert (hip_y.max() - hip_y.min()) > 0.8 * (20 / 110.0)
    rb.reset()
    assert rb.centre is None and rb.scale is None


def test_normalize_running_is_the_live_frame_over_a_clip_and_causal():
    from rhythmicnet.models.skeleton import RunningBodyFrame, normalize_running

    rng = np.random.default_rng(0)
    kp = (rng.random((60, 17, 2)) * 200 + 100).astype(np.float32)
    conf = np.ones((60, 17), np.float32)
    frame = RunningBodyFrame()
    live = np.stack([frame.process_online(kp[t], conf[t], 1 / 30) for t in range(60)])
    assert np.array_equal(normalize_running(kp, conf, 30.0), live)
    later = kp.copy()
    later[40:] += 500.0  # the future changes
    assert np.array_equal(normalize_running(later, conf, 30.0)[:40], live[:40])
