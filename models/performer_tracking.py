"""One performer through a stream of pose detections: per-frame candidates, the tracker, COCO-17 keypoints.

Per frame, the pose estimator (mediapipe's PoseLandmarker, run by ``offline/pose_estimation.py`` for a
video file and by ``realtime/video_input.py`` live) detects a few people. :func:`pose_candidates` turns its
result into :class:`PoseCandidate` (33 landmarks in pixels), :class:`PerformerTracker` picks the performer
among them (the largest, most central person first, then whoever is nearest their last position; never
somebody else), and :func:`performer_keypoints` maps the chosen one to COCO-17. No I/O and no mediapipe
import here: the estimator's result is read by duck typing. Causal and per frame, so the offline
extraction and the live path keep the same person by the same rule.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rhythmicnet.models.skeleton import MEDIAPIPE_TO_COCO17

__all__ = ["MEDIAPIPE_COCO17_INDEX", "PerformerTracker", "PoseCandidate", "box_iou", "performer_keypoints",
           "pose_candidates"]

#: mediapipe's shoulders and hips: the torso the tracker follows.
MP_TORSO = (11, 12, 23, 24)
#: Index into mediapipe's 33 landmarks for each COCO-17 joint. Shape (17,) int.
MEDIAPIPE_COCO17_INDEX = np.asarray(MEDIAPIPE_TO_COCO17, dtype=np.intp)


@dataclass(frozen=True)
class PoseCandidate:
    """One detected person in one frame, in pixels. ``landmarks``: (33, 2); ``visibility``: (33,)."""

    landmarks: np.ndarray
    visibility: np.ndarray

    @property
    def box(self) -> np.ndarray:
        """Landmark bounding box (x0, y0, x1, y1). Shape: (4,)."""
        return np.concatenate([self.landmarks.min(axis=0), self.landmarks.max(axis=0)])

    @property
    def centre(self) -> np.ndarray:
        """Torso centre: the mean of both shoulders and both hips. Shape: (2,)."""
        return self.landmarks[list(MP_TORSO)].mean(axis=0)

    @property
    def torso_length(self) -> float:
        """Shoulder-midpoint to hip-midpoint distance in pixels."""
        sh = self.landmarks[[11, 12]].mean(axis=0)
        hp = self.landmarks[[23, 24]].mean(axis=0)
        return float(np.linalg.norm(sh - hp))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1), shapes (4,), (4,); 0 when they do not overlap."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class PerformerTracker:
    """Keeps one performer through a video; never switches to somebody else.

    Rule:

    1. **Start**: in the first frame with any detection, take the person with the highest
       ``sqrt(box_area / image_area) * (1 - d)``, where ``d`` is the distance from the box centre
       to the image centre divided by half the image diagonal: the largest, most central person.
    2. **Follow**: in every later frame, a candidate is eligible only if its torso centre (mean of
       shoulders and hips) lies within a *gate* of the performer's last seen torso centre. The gate
       is measured in torso lengths (median shoulder-hip distance over the last ``history`` matched
       frames, at least ``min_scale_frac`` of the image diagonal): ``gate_base`` right after the
       last match, widening by ``gate_growth_per_s`` per second the performer stays unseen, capped
       at ``gate_max`` (a person occluded or mis-detected for a moment may have moved a little,
       never across the scene). Among eligible candidates the one with the lowest
       ``distance / torso - IoU(box, last box)`` wins; with none eligible the frame has no performer.
    3. **Never jump**: a performer lost for good (left the frame, a hard cut) stays lost unless a
       detection reappears within the capped gate of where they were last seen; nobody else is
       ever picked up, so such frames keep confidence 0.

    Streaming form: ``reset()``, then ``update(candidates, t)`` per frame (causal). ``image_size`` is
    (width, height) in pixels.
    """

    image_size: tuple[int, int]
    gate_base: float = 1.0
    gate_growth_per_s: float = 2.0
    gate_max: float = 2.0
    history: int = 30
    min_scale_frac: float = 0.02
    last_box: np.ndarray | None = field(default=None, init=False)
    last_centre: np.ndarray | None = field(default=None, init=False)
    last_time: float | None = field(default=None, init=False)
    torso_lengths: deque[float] = field(default_factory=deque, init=False)

    def reset(self) -> None:
        self.last_box = None
        self.last_centre = None
        self.last_time = None
        self.torso_lengths.clear()

    @property
    def started(self) -> bool:
        return self.last_centre is not None

    def _scale(self) -> float:
        w, h = self.image_size
        floor = self.min_scale_frac * math.hypot(w, h)
        med = float(np.median(self.torso_lengths)) if self.torso_lengths else 0.0
        return max(med, floor)

    def gate(self, t: float) -> float:
        """The gate radius in pixels at time ``t`` (seconds)."""
        lost_s = max(0.0, t - (self.last_time if self.last_time is not None else t))
        return min(self.gate_max, self.gate_base + self.gate_growth_per_s * lost_s) * self._scale()

    def _initial(self, candidates: Sequence[PoseCandidate]) -> int:
        w, h = self.image_size
        centre = np.array([w / 2.0, h / 2.0])
        half_diag = 0.5 * math.hypot(w, h)
        scores = []
        for c in candidates:
            box = c.box
            area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
            d = float(np.linalg.norm((box[:2] + box[2:]) / 2.0 - centre)) / half_diag
            scores.append(math.sqrt(area / (w * h)) * max(0.0, 1.0 - d))
        return int(np.argmax(scores))

    def _accept(self, c: PoseCandidate, t: float) -> None:
        self.last_box = c.box
        self.last_centre = c.centre
        self.last_time = t
        self.torso_lengths.append(c.torso_length)
        while len(self.torso_lengths) > self.history:
            self.torso_lengths.popleft()

    def update(self, candidates: Sequence[PoseCandidate], t: float) -> int | None:
        """Index of the performer among this frame's ``candidates`` (or None). ``t`` in seconds."""
        if not candidates:
            return None
        if not self.started:
            idx = self._initial(candidates)
        else:
            assert self.last_centre is not None and self.last_box is not None
            gate = self.gate(t)
            scale = self._scale()
            best, best_cost = None, math.inf
            for i, c in enumerate(candidates):
                dist = float(np.linalg.norm(c.centre - self.last_centre))
                if dist > gate:
                    continue
                cost = dist / scale - box_iou(c.box, self.last_box)
                if cost < best_cost:
                    best, best_cost = i, cost
            if best is None:
                return None
            idx = best
        self._accept(candidates[idx], t)
        return idx


def pose_candidates(result: Any, width: int, height: int) -> list[PoseCandidate]:
    """The people of one pose-estimator result, in pixels.

    ``result.pose_landmarks``: one sequence of 33 landmarks per person, each with ``x``, ``y`` (normalised
    to the image, as mediapipe gives them) and ``visibility`` (None reads as 1). A person whose landmarks
    are not 33 or not finite is skipped. -> candidates with landmarks (33, 2) px, visibility (33,) in [0, 1].
    """
    out = []
    for pose in result.pose_landmarks:
        arr = np.array(
            [(lm.x, lm.y, lm.visibility if lm.visibility is not None else 1.0) for lm in pose],
            dtype=np.float64,
        )
        if arr.shape != (33, 3) or not np.all(np.isfinite(arr)):
            continue
        px = arr[:, :2] * np.array([width, height], dtype=np.float64)
        out.append(PoseCandidate(landmarks=px, visibility=np.clip(arr[:, 2], 0.0, 1.0)))
    return out


def performer_keypoints(candidate: PoseCandidate | None) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 keypoints (17, 2) px and confidence (17,) (the landmark visibility) of the chosen candidate,
    both float32; zeros when there is no performer in the frame (``None``)."""
    if candidate is None:
        n = len(MEDIAPIPE_COCO17_INDEX)
        return np.zeros((n, 2), np.float32), np.zeros(n, np.float32)
    return (candidate.landmarks[MEDIAPIPE_COCO17_INDEX].astype(np.float32),
            candidate.visibility[MEDIAPIPE_COCO17_INDEX].astype(np.float32))
