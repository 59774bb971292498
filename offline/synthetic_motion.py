"""Synthetic movers: COCO-17 keypoint sequences with known beats and known sudden movements.

Used to test the style stream, the movement-onset detector and the beat decoding on motion whose
ground truth is known exactly. A standing figure (pixels, facing the camera, ~310 px tall in a
640x480 frame) bounces on the beat like a dancer landing — ``y = A (1 - |sin(pi phi)|)`` with the
lowest point and an abrupt reversal of velocity on each beat — sways slowly, shakes with pixel noise,
and at given times jerks one arm: wrist and elbow move ``jerk_px`` within ``jerk_frames`` frames,
hold, then return smoothly (the return is slow and must not count as a sudden movement).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rhythmicnet.models.keypoints import KeypointSequence

#: A standing figure facing the camera, COCO-17 order, pixels (the person's left is image right).
STANDING_TEMPLATE_PX = np.array(
    [
        (320, 120), (328, 112), (312, 112), (338, 116), (302, 116),  # nose, eyes, ears
        (350, 160), (290, 160), (362, 220), (278, 220), (366, 276), (274, 276),  # shoulders, elbows, wrists
        (340, 270), (300, 270), (342, 350), (298, 350), (342, 430), (298, 430),  # hips, knees, ankles
    ],
    dtype=np.float64,
)  # fmt: skip

_LEFT_ARM = (7, 9)
_RIGHT_ARM = (8, 10)
_UPPER_BODY = tuple(range(0, 13))
_KNEES = (13, 14)


@dataclass(frozen=True)
class SyntheticMotionConfig:
    duration_s: float = 30.0
    fps: float = 30.0
    tempo_bpm: float = 120.0
    bounce_px: float = 14.0
    sway_px: float = 10.0
    sway_hz: float = 0.23
    noise_px: float = 0.4
    jerk_times: tuple[float, ...] = ()
    jerk_px: float = 70.0
    jerk_frames: int = 2
    jerk_hold_s: float = 0.35
    jerk_return_s: float = 0.9
    first_beat_s: float = 0.5
    image_size: tuple[int, int] = (640, 480)
    seed: int = 0


@dataclass(frozen=True)
class SyntheticMotion:
    sequence: KeypointSequence
    beat_times: np.ndarray  # (B,) seconds
    jerk_times: np.ndarray  # (E,) seconds: the frame time at which each jerk starts moving
    jerk_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # (E,) first moving frame


def random_jerk_times(duration_s: float, count: int, min_gap_s: float, rng: np.random.Generator,
                      margin_s: float = 2.5) -> tuple[float, ...]:
    """``count`` times in [margin, duration - margin] at least ``min_gap_s`` apart (rejection sampling)."""
    times: list[float] = []
    for _ in range(100 * max(count, 1)):
        if len(times) == count:
            break
        t = float(rng.uniform(margin_s, duration_s - margin_s))
        if all(abs(t - u) >= min_gap_s for u in times):
            times.append(t)
    return tuple(sorted(times))


def synthesize(config: SyntheticMotionConfig = SyntheticMotionConfig()) -> SyntheticMotion:
    """Render the mover. Returns keypoints (T, 17, 2) px with full confidence and the ground truth."""
    rng = np.random.default_rng(config.seed)
    n = int(round(config.duration_s * config.fps))
    t = np.arange(n) / config.fps
    period = 60.0 / config.tempo_bpm
    kp = np.repeat(STANDING_TEMPLATE_PX[None], n, axis=0)  # (T, 17, 2)

    phase = (t - config.first_beat_s) / period
    bounce = config.bounce_px * (1.0 - np.abs(np.sin(np.pi * phase)))  # peaks (lowest) on beats
    bounce[t < config.first_beat_s - period / 2] = 0.0
    kp[:, list(_UPPER_BODY), 1] += bounce[:, None]
    kp[:, list(_KNEES), 1] += 0.5 * bounce[:, None]
    sway = config.sway_px * np.sin(2 * np.pi * config.sway_hz * t + rng.uniform(0, 2 * np.pi))
    kp[:, :, 0] += sway[:, None]

    jerk_frames = []
    for i, jt in enumerate(config.jerk_times):
        f0 = int(np.ceil(jt * config.fps - 1e-9))
        jerk_frames.append(f0)
        arm = _LEFT_ARM if i % 2 == 0 else _RIGHT_ARM
        angle = rng.uniform(-np.pi, 0)  # up and out
        direction = np.array([np.cos(angle), np.sin(angle)])
        if arm == _RIGHT_ARM:
            direction[0] = -abs(direction[0])
        else:
            direction[0] = abs(direction[0])
        rise = config.jerk_frames
        hold = int(round(config.jerk_hold_s * config.fps))
        ret = int(round(config.jerk_return_s * config.fps))
        env = np.zeros(n)
        for k in range(rise):  # frames f0 .. f0+rise-1 move; frame f0 already differs from f0-1
            if f0 + k < n:
                env[f0 + k] = (k + 1) / rise
        env[f0 + rise : f0 + rise + hold] = 1.0
        r = np.arange(ret)
        end = min(n, f0 + rise + hold + ret)
        env[f0 + rise + hold : end] = (0.5 * (1 + np.cos(np.pi * (r + 1) / ret)))[: end - (f0 + rise + hold)]
        for j, scale in zip(arm, (0.6, 1.0), strict=True):
            kp[:, j] += scale * config.jerk_px * env[:, None] * direction[None]

    kp += rng.normal(0.0, config.noise_px, kp.shape)
    conf = np.ones(kp.shape[:2], np.float32)
    n_beats = int(np.floor((config.duration_s - config.first_beat_s) / period)) + 1
    beats = config.first_beat_s + period * np.arange(n_beats)
    beats = beats[beats < config.duration_s]
    seq = KeypointSequence(kp.astype(np.float32), conf, t.astype(np.float64), config.image_size)
    jf = np.asarray(jerk_frames, int)
    return SyntheticMotion(seq, beats, jf / config.fps, jf)
