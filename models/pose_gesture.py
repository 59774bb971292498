"""The hands-free start/stop gesture of live play: both wrists held above the head for a second.

A frame shows the pose (:func:`arms_up`) when both wrists are seen (confidence >= ``min_confidence``) and
both lie above the highest seen face joint (nose, eyes, ears; image y grows downwards) by at least
``margin`` torso lengths. :class:`ArmsUpGesture` fires once the pose has lasted ``hold_s`` (1 s) without a
break longer than ``dropout_s``, and not again until the arms have been down for ``rearm_s``.

Why a second: in jumping jacks the arms go overhead on every jump, for under half a second each (at most
13 frames, 0.43 s, on the bundled clip as the live pose estimator sees it), so a short hold would stop the
music on every jump; a deliberate "hands up" is held longer.

Streaming contract: :class:`ArmsUpState` is frozen, :meth:`ArmsUpGesture.step` is pure, and ``reset`` /
``process_online`` / ``process_offline`` follow the design notes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rhythmicnet.models.keypoints import KeypointSequence

__all__ = ["ArmsUpConfig", "ArmsUpGesture", "ArmsUpState", "arms_up"]

FACE = (0, 1, 2, 3, 4)
WRISTS = (9, 10)
SHOULDERS = (5, 6)
HIPS = (11, 12)


@dataclass(frozen=True)
class ArmsUpConfig:
    hold_s: float = 1.0
    margin: float = 0.1  # torso lengths above the head
    min_confidence: float = 0.5
    dropout_s: float = 0.15
    rearm_s: float = 0.5


@dataclass(frozen=True)
class ArmsUpState:
    """``up_since``: start of the current arms-up stretch; ``last_up``: the last frame with the pose;
    ``armed``: may fire (False after firing until the arms have been down ``rearm_s``);
    ``down_since``: start of the current arms-down stretch."""

    up_since: float | None = None
    last_up: float | None = None
    armed: bool = True
    down_since: float | None = None


def arms_up(keypoints: np.ndarray, confidence: np.ndarray, config: ArmsUpConfig = ArmsUpConfig()) -> bool:  # noqa: B008
    """Whether one frame (keypoints (17, 2) px, confidence (17,)) shows both wrists above the head."""
    c = config
    if min(float(confidence[w]) for w in WRISTS) < c.min_confidence:
        return False
    face = [float(keypoints[j, 1]) for j in FACE if confidence[j] >= c.min_confidence]
    if not face:
        return False
    torso = 0.0
    if min(float(confidence[j]) for j in (*SHOULDERS, *HIPS)) >= c.min_confidence:
        torso = float(np.linalg.norm(keypoints[list(SHOULDERS)].mean(0) - keypoints[list(HIPS)].mean(0)))
    top = min(face) - c.margin * torso
    return all(float(keypoints[w, 1]) < top for w in WRISTS)


class ArmsUpGesture:
    """Fires when the arms-up pose is held (see the module docstring)."""

    def __init__(self, config: ArmsUpConfig = ArmsUpConfig()) -> None:  # noqa: B008
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.state = ArmsUpState()

    def step(self, state: ArmsUpState, time: float, keypoints: np.ndarray, confidence: np.ndarray
             ) -> tuple[ArmsUpState, bool]:
        """One frame at ``time`` (s) -> the new state and whether the gesture fires on it."""
        c = self.config
        if arms_up(keypoints, confidence, c):
            since = state.up_since
            if since is None or state.last_up is None or time - state.last_up > c.dropout_s:
                since = time
            fire = state.armed and time - since >= c.hold_s
            return ArmsUpState(since, time, state.armed and not fire, None), fire
        if state.last_up is not None and time - state.last_up <= c.dropout_s:
            return state, False  # a short dropout inside a hold
        down = state.down_since if state.down_since is not None else time
        armed = state.armed or time - down >= c.rearm_s
        return ArmsUpState(None, state.last_up, armed, down), False

    def process_online(self, time: float, keypoints: np.ndarray, confidence: np.ndarray) -> bool:
        self.state, fired = self.step(self.state, time, keypoints, confidence)
        return fired

    def process_offline(self, sequence: KeypointSequence) -> np.ndarray:
        """The frames of a whole clip on which the gesture fires, from a fresh state. Shape: (T,) bool."""
        state, out = ArmsUpState(), np.zeros(sequence.num_frames, bool)
        for i, (t, kp, conf) in enumerate(zip(sequence.times, sequence.keypoints, sequence.confidence, strict=True)):
            state, out[i] = self.step(state, float(t), kp, conf)
        return out
