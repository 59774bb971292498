"""Performer tracking on synthetic detections: the start rule, following, never jumping, the gate, and the
per-frame conversion of a pose result to candidates and COCO-17 keypoints (no mediapipe needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rhythmicnet.models.performer_tracking import (
    MEDIAPIPE_COCO17_INDEX,
    PerformerTracker,
    PoseCandidate,
    box_iou,
    performer_keypoints,
    pose_candidates,
)
from rhythmicnet.models.skeleton import MEDIAPIPE_TO_COCO17, NUM_JOINTS


def person(cx: float, cy: float, torso: float = 100.0) -> PoseCandidate:
    """A stick figure: 33 landmarks spread around a torso centred at (cx, cy)."""
    lm = np.zeros((33, 2))
    lm[:, 0] = cx + np.linspace(-0.6, 0.6, 33) * torso
    lm[:, 1] = cy + np.linspace(-1.2, 2.0, 33) * torso
    lm[[11, 12], 1] = cy - torso / 2
    lm[[23, 24], 1] = cy + torso / 2
    lm[[11, 23], 0] = cx - 0.3 * torso
    lm[[12, 24], 0] = cx + 0.3 * torso
    return PoseCandidate(landmarks=lm, visibility=np.ones(33))


def test_tracker_starts_on_largest_most_central_person() -> None:
    tr = PerformerTracker(image_size=(1000, 800))
    small_centre, big_side, big_centre = person(500, 400, 40), person(150, 400, 120), person(560, 380, 120)
    assert tr.update([small_centre, big_side, big_centre], 0.0) == 2


def test_tracker_follows_and_never_jumps() -> None:
    tr = PerformerTracker(image_size=(1000, 800))
    fps = 30.0
    assert tr.update([person(300, 300)], 0.0) == 0
    # The performer drifts right; a second person walks past 3.5 torso lengths below.
    for i in range(1, 60):
        t = i / fps
        other = person(900 - 10 * i, 650)
        me = person(300 + 2 * i, 300)
        assert tr.update([other, me], t) == 1
    # The performer disappears: the other person is never picked up, even right where they stand.
    for i in range(60, 200):
        assert tr.update([person(450, 650)], i / fps) is None
    # A short dropout: reappearing nearby (within the gate) is accepted again.
    assert tr.update([person(430, 310)], 200 / fps) == 0
    tr.reset()
    assert not tr.started


def test_tracker_gate_widens_while_lost_but_is_capped() -> None:
    tr = PerformerTracker(image_size=(1000, 800))
    tr.update([person(300, 300)], 0.0)
    assert tr.gate(1 / 30) == pytest.approx(100 * (1.0 + 2.0 / 30))
    assert tr.gate(10.0) == pytest.approx(100 * tr.gate_max)
    assert tr.update([person(300 + 150, 300)], 1 / 30) is None  # 1.5 torsos in one frame: too far
    assert tr.update([person(300 + 150, 300)], 0.5) == 0  # after half a second lost: plausible


def test_box_iou() -> None:
    a = np.array([0.0, 0.0, 2.0, 2.0])
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, np.array([1.0, 0.0, 3.0, 2.0])) == pytest.approx(2.0 / 6.0)
    assert box_iou(a, np.array([5.0, 5.0, 6.0, 6.0])) == 0.0


def _landmark(x: float, y: float, visibility: float | None) -> SimpleNamespace:
    return SimpleNamespace(x=x, y=y, visibility=visibility)


def test_pose_candidates_read_a_pose_result_in_pixels() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (33, 2))
    vis = rng.uniform(-0.2, 1.2, 33)
    good = [_landmark(x, y, v) for (x, y), v in zip(xy, vis, strict=True)]
    no_vis = [_landmark(x, y, None) for x, y in xy]
    short = good[:20]
    nan = [*good[:-1], _landmark(float("nan"), 0.5, 1.0)]
    result = SimpleNamespace(pose_landmarks=[good, short, no_vis, nan])
    cands = pose_candidates(result, 640, 480)
    assert len(cands) == 2  # the 20-landmark and the non-finite person are skipped
    assert cands[0].landmarks.shape == (33, 2)
    assert np.allclose(cands[0].landmarks, xy * [640, 480])
    assert np.allclose(cands[0].visibility, np.clip(vis, 0, 1))
    assert np.all(cands[1].visibility == 1.0)


def test_performer_keypoints_map_to_coco17() -> None:
    c = person(300, 300)
    kp, conf = performer_keypoints(c)
    assert kp.shape == (NUM_JOINTS, 2) and conf.shape == (NUM_JOINTS,)
    assert kp.dtype == conf.dtype == np.float32
    assert np.array_equal(MEDIAPIPE_COCO17_INDEX, np.asarray(MEDIAPIPE_TO_COCO17))
    assert np.allclose(kp, c.landmarks[list(MEDIAPIPE_TO_COCO17)])
    kp0, conf0 = performer_keypoints(None)
    assert kp0.shape == (NUM_JOINTS, 2) and not kp0.any() and not conf0.any()
