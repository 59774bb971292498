"""Synthetic dancers with known beats: procedural COCO-17 keypoint clips whose beat times are ground truth.

Training data for the beat network (issue 5, "Training data"). AIST++ is not on this machine, so the
network learns from a procedural dancer whose music beats are known exactly. One call,
``generate_clip(config, seed)``, makes one clip (about 10 ms for 30 s at 30 fps), so training can
generate on the fly; the same seed always gives the same clip.

How a clip is made
------------------
1. **Music.** A tempo (60-180 BPM; by default half the clips follow the AIST++ music table, 80-135
   BPM, the other half are log-uniform over the range) with a slow drift (a smooth random curve,
   a few percent), a random phase and a random bar offset. Its beats are the labels ``beats``; every
   4th beat is a downbeat (4/4).
2. **The dancer's clock.** The dancer hits beat *k* at ``beats[k] + offset + jitter_k``: a per-clip
   lead/lag (default within +-15 ms) and human timing jitter (Gaussian, sigma 10-30 ms). A warped phase
   ``psi(t)`` (piecewise linear through those hit times; ``psi`` is an integer exactly on a hit) drives
   every beat-locked movement, so the movements carry the jitter and the labels do not.
3. **Choreography.** The clip is cut into sections of 2-8 bars starting on downbeats. Each section
   draws its beat-locked movements (cross-faded over half a beat at section boundaries):

   * ``bounce`` - knee bend (pelvis drop, feet planted, knees by two-link IK): the hips are **lowest on
     the beat** (``bounce-half``: on beats 1 and 3 only; ``bounce-double``: on beats and off-beats);
   * ``accent`` - a deeper drop, an arm raise and a nod on the **downbeat**;
   * steps landing on the beat - ``march`` (alternate feet in place), ``step-touch`` (side step, close,
     back: a 4-beat pattern), ``tap`` (forward tap and back);
   * arms - ``swing1``/``swing2``/``swing4`` (shoulder swings with 1-, 2- and 4-beat periods whose turning
     points fall on beats; 2/4-beat swings alternate or move together), ``pump`` (elbow pumps peaking on
     the beat), ``clap`` (hands meet on the beat), ``punch`` (alternate arms extend on alternate beats);
   * ``nod`` (head down on the beat), ``head-tilt`` (2-beat side tilt), ``sway`` (2-beat weight shift),
     ``twist`` (2-beat torso twist), ``chest`` (chest pump on the beat), ``shrug`` (shoulders up on the beat);
   * ``syncopation`` - an extra sharp hit (arm, head, shoulders or a knee dip) on the off-beat "and"
     (or the 16th "e"/"a"): movement that is **not** a beat;
   * jumps (``jump_prob``, generator 1.1): ``jump`` (both feet leave the floor, the whole body rises
     and falls) and ``jack`` (a jumping jack: feet apart and arms overhead on alternate jumps) **land on
     the beat**; the knees then absorb the landing, so the hips are lowest 60-180 ms *after* the beat.
     This is the real-world case the bounce gets wrong: a jumper's beat is the landing, not the
     lowest hip (the two real example clips showed models trained on bounces alone putting the beats
     ~150 ms after each landing). A section that jumps drops its bounce and steps.

   Generator 2.0 (``dance_vocabulary=2``, the training default; ``dance_vocabulary.py``) adds what real
   dancers do and 1.x never showed: step patterns whose steps are not the beats (``double``, ``and-steps``,
   ``cha-cha``, ``kick-ball-change`` in training; ``triple``, ``quick-quick-slow``, ``six-over-eight``,
   ``skip`` held out), each landing dipping the hips at the step rate; ``arm-phrase`` (arm poses over 2- or
   4-bar phrases at times unrelated to the beat); travel across the floor and turns while dancing; and a
   per-dancer style: which body part carries the beat (hips, arms, head, torso or feet) and how sharp the
   accents are.

   Pulse shapes vary per clip from a sharp cusp (an abrupt velocity reversal on the beat, like a
   landing) to a smooth raised cosine (where the only cue is that the bottom, not the top, is on the
   beat); amplitudes and the limbs used vary per clip and per section.
4. **Distractors** (non-beat motion) cover a drawn share of the clip in intervals of 1.5-6 s:
   ``walk`` (walking across with a step cadence unrelated to the tempo, with its own hip bob),
   ``turn`` (a spin or a turn away and back), ``gesture`` (slow, aperiodic arm movement and head
   turns), ``wave`` (hand waving at a random non-beat rate), ``idle`` (dancing stops, small weight
   shifts), ``drift`` (slow translation, lean and rocking), ``jerks`` (sudden moves at random times),
   ``off-tempo`` (bouncing at a rate unrelated to the beat). While one is active the beat-locked
   dancing is scaled by a gain (0.3-1.0 by default; 0-0.15 for ``idle``; 0-0.3 for ``off-tempo``).
   Slow background drift (position, lean, heading) is always present.
5. **Body and camera.** A 3D stick figure (height 1.5-1.95 m, bone lengths from standard body
   proportions with +-4 % per bone) in world metres (x: the dancer's left, y: up, z: forward),
   projected through a pinhole camera at a random yaw (relative to the dancer's facing; the training
   default is |yaw| <= 60 deg), pitch, roll, distance and focal length (the standing figure fills 35-85 %
   of the image height) at a random image position, image size (landscape or portrait) and slow
   hand-held shake.
6. **Observation.** Frame rates 24-60 fps (mostly common rates; some clips with irregular
   timestamps), pixel noise proportional to the figure's size, occasional outliers, confidences
   lower for the far side of the body, dropped joints (confidence 0, coordinates 0), joints outside the
   image at confidence 0, a stretch with no person in some clips, and dropped frames (missing rows:
   ``times`` always carry the true times). ``times[0] == 0``.

   Observation model 2 (``observation_model=2``, the training default; the held-out set keeps 1) is
   fitted to mediapipe on the real example clips (``offline/pose_noise.py`` measures both;
   ``scripts/measure_pose_noise.py`` prints real and synthetic side by side): confidences like
   mediapipe's visibility (head and torso 0.99-1.0, limbs mostly 0.9-1.0 with dips of about a second,
   far-side limbs lower); jitter that is temporally correlated (an Ornstein-Uhlenbeck process, 0.15 s)
   rather than white, per clip 0.3-2.2 % of the figure's height for the head (log-uniform), 1.5 / 1.4 /
   2x that for the torso / arms / legs and up to 1.6x at low confidence; and whole-body left/right
   flips (the estimator takes the dancer to face the other way: every left joint exchanged with its
   right one) in 40 % of clips, 10-80 a minute, 0.025-0.2 s each. Its draws come from their own
   stream (``[seed, 0x5D4C, 5]``), and it makes the same draws from the main stream as model 1.

The strongest beat cue is the vertical motion of the hips (most sections bounce); arms, head,
torso and steps carry it in others. ``beat_targets`` (``models/clip_preparation.py``) turns the
labels into per-frame training targets at the model rate. ``render_preview`` draws a clip with beat
flashes; ``rhythmicnet synth-dance`` exposes both. The frozen held-out evaluation set is in ``beat_eval_set.py``.

Bump ``GENERATOR_VERSION`` whenever a change alters the clips a seed produces.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.models.skeleton import COCO17_EDGES, NUM_JOINTS
from rhythmicnet.offline.dance_vocabulary import (
    BEAT_CARRIERS,
    STEP_FAMILIES,
    TRAIN_STEP_FAMILIES,
    DancerStyle,
    arm_phrase,
    draw_style,
    step_channels,
    step_events,
    travel_and_turns,
)

#: 1.1 added the jump moves; a config with ``jump_prob=0`` (the held-out set's) gives the 1.0 clips,
#: unchanged to the byte, because the jump draws come after all others and only when ``jump_prob > 0``.
#: 2.0 added the dance vocabulary (``dance_vocabulary.py``) and observation model 2 (mediapipe-like noise,
#: confidences and left/right flips, fitted by ``pose_noise.py``); ``dance_vocabulary=1`` with
#: ``observation_model=1`` gives the 1.1 clips.
GENERATOR_VERSION = "2.0"

#: The AIST++ music tempi (shared/data/aist_music_tempo/aist_music_bpm.csv, 60 pieces) as (bpm, count):
#: nine genres at 80..130 BPM in steps of 10, House at 110..135.
AIST_TEMPO_COUNTS: tuple[tuple[float, int], ...] = (
    (80.0, 9), (90.0, 9), (100.0, 9), (110.0, 10), (115.0, 1), (120.0, 10), (125.0, 1), (130.0, 10), (135.0, 1),
)  # fmt: skip
COMMON_FPS: tuple[float, ...] = (24.0, 25.0, 30.0, 50.0, 60.0)

BEAT_MOVES: tuple[str, ...] = (
    "bounce", "bounce-half", "bounce-double", "accent", "march", "step-touch", "tap", "swing1", "swing2", "swing4",
    "pump", "clap", "punch", "nod", "head-tilt", "sway", "twist", "chest", "shrug", "syncopation", "jump", "jack",
)  # fmt: skip
STEP_MOVES: tuple[str, ...] = ("march", "step-touch", "tap")  #: the moves that step (see ``_steps``)
#: Generator 2.0's moves (``dance_vocabulary.py``): step families whose steps are not the beats, and arm phrases.
VOCABULARY_MOVES: tuple[str, ...] = (*STEP_FAMILIES, "arm-phrase")
DISTRACTOR_KINDS: tuple[str, ...] = ("walk", "turn", "gesture", "wave", "idle", "drift", "jerks", "off-tempo")

_L, _R = 0, 1  # arm/leg side indices; the dancer's left is +x in the body frame


@dataclass(frozen=True)
class DancerConfig:
    """Ranges the generator draws from, per clip (``(lo, hi)`` tuples are uniform unless noted).

    The defaults are the training distribution. Every field is part of a clip's identity: the same
    config and seed give the same clip.
    """

    duration_s: tuple[float, float] = (30.0, 30.0)  #: clip length, seconds
    tempo_bpm: tuple[float, float] = (60.0, 180.0)  #: tempo range; the drifting tempo is clipped to it
    aist_tempo_share: float = 0.5  #: share of clips whose base tempo follows the AIST++ table (+-2 %)
    tempo_drift: tuple[float, float] = (0.0, 0.04)  #: peak relative tempo deviation of the slow drift
    timing_jitter_s: tuple[float, float] = (0.010, 0.030)  #: sigma of the dancer's per-beat timing error
    dancer_offset_s: tuple[float, float] = (-0.015, 0.015)  #: per-clip lead (-) or lag (+) of the dancer
    fps: tuple[float, float] = (24.0, 60.0)  #: frame-rate range
    common_fps_share: float = 0.7  #: share of clips at a common rate (24, 25, 30, 50, 60) inside the range
    irregular_times_share: float = 0.15  #: share of clips with +-15 % frame-time jitter (variable-rate webcams)
    image_sizes: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720), (1920, 1080), (720, 1280), (480, 640))
    yaw_deg: tuple[float, float] = (0.0, 60.0)  #: |camera yaw| from the dancer's facing; the sign is random
    pitch_deg: tuple[float, float] = (-5.0, 25.0)  #: camera elevation (positive: above, looking down)
    roll_deg: float = 3.0  #: camera roll within +-this
    distance_m: tuple[float, float] = (2.5, 6.0)  #: camera distance to the dancer
    person_frac: tuple[float, float] = (0.35, 0.85)  #: standing height over image height (sets focal length)
    camera_shake_deg: tuple[float, float] = (0.0, 0.6)  #: peak slow pan/tilt of a hand-held camera
    person_height_m: tuple[float, float] = (1.5, 1.95)
    amplitude: tuple[float, float] = (0.6, 1.4)  #: per-clip scale of all beat-locked amplitudes
    bounce_prob: float = 0.85  #: per section: knee-bend bounce
    step_prob: float = 0.35  #: per section: a step pattern
    arm_prob: float = 0.7  #: per section: an arm movement
    head_prob: float = 0.45  #: per section: nod or tilt
    torso_prob: float = 0.45  #: per section: sway, twist, chest pump or shrug
    accent_prob: float = 0.5  #: per section: downbeat accents
    rate_change_prob: float = 0.25  #: per section: half- or double-time bounce instead of on every beat
    syncopation_prob: float = 0.25  #: per section: off-beat hits
    jump_prob: float = 0.15  #: per section: jumps or jumping jacks landing on the beat (instead of bounce/steps)
    jump_height_m: tuple[float, float] = (0.03, 0.12)  #: peak rise of the feet off the floor
    jump_air: tuple[float, float] = (0.3, 0.55)  #: airborne share of a beat (capped at 0.45 s)
    landing_dip_s: tuple[float, float] = (0.06, 0.18)  #: landing to the lowest hips (knees absorbing)
    section_bars: tuple[int, int] = (2, 8)  #: section length in bars (inclusive)
    distractor_share: tuple[float, float] = (0.0, 0.5)  #: share of the clip covered by distractor intervals
    distractor_kinds: tuple[tuple[str, float], ...] = (
        ("walk", 1.0), ("turn", 1.0), ("gesture", 1.0), ("wave", 1.0), ("idle", 1.0), ("drift", 1.0),
        ("jerks", 1.0), ("off-tempo", 0.5),
    )  # fmt: skip
    distractor_len_s: tuple[float, float] = (1.5, 6.0)  #: typical distractor interval length
    distractor_dance_gain: tuple[float, float] = (0.3, 1.0)  #: beat-locked dancing kept during a distractor
    idle_dance_gain: tuple[float, float] = (0.0, 0.15)  #: ... during ``idle``
    off_tempo_dance_gain: tuple[float, float] = (0.0, 0.3)  #: ... during ``off-tempo``
    background_drift: tuple[float, float] = (0.0, 1.0)  #: scale of the always-on slow drift
    noise_frac: tuple[float, float] = (0.0, 0.001)  #: white keypoint noise sigma over the figure's pixel height
    outlier_prob: tuple[float, float] = (0.0, 0.002)  #: per joint and frame: a wrong detection
    joint_drop_prob: tuple[float, float] = (0.0, 0.004)  #: per joint and frame: start of a 1-10 frame dropout
    frame_drop_prob: tuple[float, float] = (0.0, 0.03)  #: per frame: the frame is missing
    person_lost_share: float = 0.1  #: share of clips with one 0.1-0.8 s stretch of no person
    #: 1: generator 1.x's observation (white noise ``noise_frac``, confidences around 0.9); 2: fitted to
    #: mediapipe on the real example clips (``offline/pose_noise.py``, ``scripts/measure_pose_noise.py``):
    #: mediapipe-like confidences, temporally correlated jitter and left/right flips, drawn from their
    #: own stream (``noise_frac`` then only adds a small white floor)
    observation_model: int = 2
    jitter_frac: tuple[float, float] = (0.003, 0.022)  #: model 2: head jitter sigma / figure height (log-uniform)
    jitter_time_s: float = 0.15  #: model 2: the jitter's time constant (Ornstein-Uhlenbeck), seconds
    jitter_group_scale: tuple[float, float, float, float] = (1.0, 1.5, 1.4, 2.0)  #: model 2: head, torso, arms, legs
    jitter_conf_gain: float = 0.6  #: model 2: jitter x (1 + gain min(1, (1 - confidence) / 0.1))
    flip_share: float = 0.4  #: model 2: share of clips where the pose estimator flips left and right at times
    flip_rate_per_min: tuple[float, float] = (10.0, 80.0)  #: model 2: flips per minute in those clips (log-uniform)
    flip_duration_s: tuple[float, float] = (0.025, 0.2)  #: model 2: length of a flip (log-uniform; >= 1 frame)
    #: 1: generator 1.x's moves only (steps on the beat); 2: generator 2.0's vocabulary as well (step
    #: patterns off the beat, arm phrases, travel and turns while dancing, a per-dancer style that sets
    #: ``bounce_prob`` / ``step_prob`` / ``arm_prob`` / ``head_prob`` / ``torso_prob`` per clip)
    dance_vocabulary: int = 2
    #: vocabulary 2: the step families a stepping section draws from, with weights (1.x's on-the-beat
    #: ``march`` / ``step-touch`` / ``tap`` included); the held-out families are not in the default
    step_families: tuple[tuple[str, float], ...] = tuple(
        (f, 0.7 if f == "double" else 1.0) for f in TRAIN_STEP_FAMILIES)
    step_prob_v2: float = 0.5  #: vocabulary 2: per section, a step pattern (0.95 when the feet carry the beat)
    arm_phrase_prob: float = 0.3  #: vocabulary 2: per section with arm movement, an arm phrase instead
    travel_prob: float = 0.25  #: vocabulary 2: per section, travel across the floor or turn while dancing
    beat_carriers: tuple[tuple[str, float], ...] = BEAT_CARRIERS  #: vocabulary 2: the per-dancer style's draw

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
                if v[0] > v[1]:
                    raise ValueError(f"DancerConfig.{f.name}: range {v} has min > max")
        if self.tempo_bpm[0] <= 0 or self.fps[0] <= 0 or self.duration_s[0] <= 0:
            raise ValueError("DancerConfig: tempo, fps and duration must be positive")
        if not 0.0 <= self.distractor_share[1] < 1.0:
            raise ValueError("DancerConfig.distractor_share must lie in [0, 1)")
        unknown = {k for k, _ in self.distractor_kinds} - set(DISTRACTOR_KINDS)
        if unknown:
            raise ValueError(f"DancerConfig.distractor_kinds: unknown kinds {sorted(unknown)}")
        unknown = {k for k, _ in self.step_families} - set(STEP_FAMILIES) - set(STEP_MOVES)
        if unknown:
            raise ValueError(f"DancerConfig.step_families: unknown families {sorted(unknown)}")
        if self.dance_vocabulary not in (1, 2):
            raise ValueError("DancerConfig.dance_vocabulary must be 1 or 2")
        if self.observation_model not in (1, 2):
            raise ValueError("DancerConfig.observation_model must be 1 or 2")


@dataclass(frozen=True)
class Camera:
    yaw_deg: float  #: camera azimuth from the dancer's facing direction (0 = frontal)
    pitch_deg: float
    roll_deg: float
    distance_m: float
    focal_px: float
    principal_point: tuple[float, float]
    image_size: tuple[int, int]  #: (width, height)
    shake_deg: float


@dataclass(frozen=True)
class Section:
    start_beat: int  #: beat index where the section starts: ``beats[k]`` for 0 <= k < B, negative before the clip
    end_beat: int  #: first beat index after the section
    start_s: float
    end_s: float
    moves: tuple[str, ...]


@dataclass(frozen=True)
class Distractor:
    start_s: float
    end_s: float
    kind: str
    dance_gain: float  #: scale of the beat-locked dancing during the interval


@dataclass(frozen=True)
class DanceMetadata:
    seed: int
    generator_version: str
    fps: float  #: nominal frame rate
    duration_s: float
    base_tempo_bpm: float
    tempo_drift: float
    timing_jitter_s: float
    dancer_offset_s: float
    camera: Camera
    person_height_m: float
    sections: tuple[Section, ...]
    moves: tuple[str, ...]  #: every beat-locked movement used in the clip
    distractors: tuple[Distractor, ...]
    distractor_share: float  #: covered share of [0, duration]
    hit_times: np.ndarray  #: (B,) when the dancer actually hits each labelled beat (jittered)
    dropped_frames: int
    unseen_share: float  #: share of joint observations with confidence 0
    style: str = ""  #: vocabulary 2: the body part that carries the beat ("" in vocabulary 1)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hit_times"] = [round(float(x), 5) for x in self.hit_times]
        return d


@dataclass(frozen=True)
class SyntheticDance:
    sequence: KeypointSequence  #: pixels at the clip's own frame rate, with confidences and true times
    beats: np.ndarray  #: (B,) music beat times, seconds, inside the clip
    downbeats: np.ndarray  #: (D,) every 4th beat (4/4), seconds
    tempo_bpm: float  #: 60 / median inter-beat interval
    metadata: DanceMetadata


# ----------------------------------------------------------------------------------------------- helpers


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _pulse(x: np.ndarray, cusp: float, sharp: float) -> np.ndarray:
    """Periodic pulse, 1 at integers and 0 at half-integers: a mix of a cusp (abrupt reversal) and cos^2k."""
    s = np.abs(np.sin(np.pi * x))
    return cusp * (1.0 - s) ** sharp + (1.0 - cusp) * (1.0 - s * s) ** sharp


def _swing(x: np.ndarray, cusp: float) -> np.ndarray:
    """Period-1 oscillation, +1 at integers, -1 at half-integers: triangle (sharp turns) mixed with cosine."""
    tri = 1.0 - 4.0 * np.abs(x - np.round(x))
    return cusp * tri + (1.0 - cusp) * np.cos(2.0 * np.pi * x)


def _bump(x: np.ndarray, width: float) -> np.ndarray:
    """Raised-cosine bump of half-width ``width`` around every integer of ``x``."""
    d = x - np.round(x)
    return np.where(np.abs(d) < width, 0.5 * (1.0 + np.cos(np.pi * d / width)), 0.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _window(t: np.ndarray, a: float, b: float, ramp: float) -> np.ndarray:
    """1 inside [a, b], smooth ramps of ``ramp`` seconds outside."""
    return _smoothstep((t - a + ramp) / ramp) * _smoothstep((b + ramp - t) / ramp)


def _smooth_noise(t: np.ndarray, rng: np.random.Generator, fmin: float, fmax: float, n: int = 3) -> np.ndarray:
    """Sum of ``n`` random sinusoids with frequencies in [fmin, fmax] Hz, peak about 1."""
    f = rng.uniform(fmin, fmax, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    a = rng.uniform(0.5, 1.0, n)
    out = (a[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(axis=0)
    return out / a.sum()


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _apply(rot: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate per-frame vectors. Shapes: (T, 3, 3), (T, 3) or (3,) -> (T, 3)."""
    if v.ndim == 1:
        return rot @ v
    return np.einsum("tij,tj->ti", rot, v)


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


# ----------------------------------------------------------------------------------------------- body


@dataclass(frozen=True)
class _Body:
    height: float
    thigh: float
    shin: float
    ankle: float
    hip_w: float
    stance_w: float
    torso: float
    shoulder_w: float
    upper_arm: float
    forearm: float
    neck: float

    @staticmethod
    def draw(rng: np.random.Generator, height: float) -> _Body:
        def j(x: float) -> float:
            return x * height * float(rng.uniform(0.96, 1.04))

        hip_w = j(0.105)
        return _Body(height=height, thigh=j(0.245), shin=j(0.245), ankle=j(0.04), hip_w=hip_w,
                     stance_w=hip_w + float(rng.uniform(0.0, 0.25)) * height, torso=j(0.29), shoulder_w=j(0.215),
                     upper_arm=j(0.17), forearm=j(0.155), neck=j(0.05))


#: Face points relative to the head pivot (top of the neck), in units of body height, head frame.
_FACE = np.array([
    (0.0, 0.045, 0.055),  # nose
    (0.018, 0.065, 0.045), (-0.018, 0.065, 0.045),  # eyes (left is +x)
    (0.042, 0.055, -0.005), (-0.042, 0.055, -0.005),  # ears
])  # fmt: skip

_CHANNELS = (
    "drop", "air", "pelvis_x", "pelvis_z", "heading", "lean_fwd", "lean_side", "twist", "shrug",
    "head_nod", "head_yaw", "head_roll",
    "flex_l", "abd_l", "elbow_l", "flex_r", "abd_r", "elbow_r",
    "foot_x_l", "foot_z_l", "lift_l", "foot_x_r", "foot_z_r", "lift_r",
)  # fmt: skip
_NEUTRAL = {"flex_l": 0.08, "flex_r": 0.08, "abd_l": 0.12, "abd_r": 0.12, "elbow_l": 0.25, "elbow_r": 0.25}


def _knee_ik(hip: np.ndarray, ankle: np.ndarray, fwd: np.ndarray, thigh: float, shin: float) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """Two-link IK: knee bending towards ``fwd``; an over-stretched leg lifts the ankle. Shapes (T, 3)."""
    d_vec = ankle - hip
    dist = np.linalg.norm(d_vec, axis=-1, keepdims=True)
    u = d_vec / np.maximum(dist, 1e-9)
    reach = np.clip(dist, 0.35 * (thigh + shin), 0.999 * (thigh + shin))
    ankle = hip + u * reach
    a = (thigh**2 - shin**2 + reach**2) / (2 * reach)
    h = np.sqrt(np.maximum(thigh**2 - a**2, 0.0))
    n = _normalise(fwd - np.sum(fwd * u, axis=-1, keepdims=True) * u)
    return hip + u * a + n * h, ankle


def _forward_kinematics(ch: dict[str, np.ndarray], root: np.ndarray, body: _Body) -> np.ndarray:
    """World joint positions (T, 17, 3) from the pose channels (all (T,)) and the floor point ``root`` (T, 3)."""
    t_len = root.shape[0]
    out = np.empty((t_len, NUM_JOINTS, 3))
    rb = _rot_y(ch["heading"])
    fwd = rb[:, :, 2]
    leg = body.thigh + body.shin
    # Feet on the floor (body frame offsets from the stance), pelvis over their mean.
    feet_off = []
    for side, sgn in (("l", 1.0), ("r", -1.0)):
        off = np.stack([sgn * body.stance_w / 2 + ch[f"foot_x_{side}"], body.ankle + ch[f"lift_{side}"],
                        ch[f"foot_z_{side}"]], -1)
        feet_off.append(off)
    h0 = body.ankle + 0.975 * leg
    pelvis_off = np.stack([0.5 * (feet_off[0][:, 0] + feet_off[1][:, 0]) + ch["pelvis_x"], h0 - ch["drop"],
                           0.5 * (feet_off[0][:, 2] + feet_off[1][:, 2]) + ch["pelvis_z"]], -1)
    root = root + np.stack([np.zeros(t_len), ch["air"], np.zeros(t_len)], -1)  # a jump lifts everything
    pelvis = root + _apply(rb, pelvis_off)
    for k, (sgn, off) in enumerate(((1.0, feet_off[0]), (-1.0, feet_off[1]))):
        hip = pelvis + _apply(rb, np.array([sgn * body.hip_w / 2, 0.0, 0.0]))
        knee, ankle = _knee_ik(hip, root + _apply(rb, off), fwd, body.thigh, body.shin)
        out[:, 11 + k], out[:, 13 + k], out[:, 15 + k] = hip, knee, ankle
    # Torso, shoulders, arms.
    rt = rb @ _rot_y(ch["twist"]) @ _rot_z(ch["lean_side"]) @ _rot_x(ch["lean_fwd"])
    up = np.stack([np.zeros(t_len), body.torso + ch["shrug"], np.zeros(t_len)], -1)
    sc = pelvis + _apply(rt, up)
    for k, (sgn, side) in enumerate(((1.0, "l"), (-1.0, "r"))):
        sh = sc + _apply(rt, np.array([sgn * body.shoulder_w / 2, 0.0, 0.0]))
        f, a, e = ch[f"flex_{side}"], ch[f"abd_{side}"], ch[f"elbow_{side}"]
        u = np.stack([sgn * np.sin(a), -np.cos(a) * np.cos(f), np.cos(a) * np.sin(f)], -1)
        b0 = np.array([0.0, 0.3, 1.0])
        b = b0[None] - (u @ b0)[:, None] * u
        alt = np.array([0.0, 1.0, 0.0])[None] - u[:, 1:2] * u
        b = _normalise(np.where(np.linalg.norm(b, axis=-1, keepdims=True) < 0.2, alt, b))
        elbow = sh + _apply(rt, body.upper_arm * u)
        wrist = elbow + _apply(rt, body.forearm * (np.cos(e)[:, None] * u + np.sin(e)[:, None] * b))
        out[:, 5 + k], out[:, 7 + k], out[:, 9 + k] = sh, elbow, wrist
    # Head: a rigid face around a pivot at the top of the neck.
    rh = rt @ _rot_y(ch["head_yaw"]) @ _rot_x(ch["head_nod"]) @ _rot_z(ch["head_roll"])
    pivot = sc + _apply(rt, np.array([0.0, body.neck, 0.01 * body.height]))
    out[:, 0:5] = pivot[:, None] + np.einsum("tij,kj->tki", rh, _FACE * body.height)
    return out


# ----------------------------------------------------------------------------------------------- music


def _draw_tempo(cfg: DancerConfig, rng: np.random.Generator) -> float:
    lo, hi = cfg.tempo_bpm
    if rng.random() < cfg.aist_tempo_share:
        tempi = np.array([b for b, _ in AIST_TEMPO_COUNTS])
        p = np.array([c for _, c in AIST_TEMPO_COUNTS], float)
        inside = (tempi >= lo) & (tempi <= hi)
        if inside.any():
            bpm = float(rng.choice(tempi[inside], p=p[inside] / p[inside].sum())) * float(rng.uniform(0.98, 1.02))
            return float(np.clip(bpm, lo, hi))
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else lo


def _beat_grid(cfg: DancerConfig, rng: np.random.Generator, bpm0: float, drift: float, duration: float,
               pad: float) -> tuple[np.ndarray, np.ndarray]:
    """Beat times and their integer indices over [-pad, duration + pad]; beat 0 is the first at t >= 0."""
    step = 0.005
    tg = np.arange(-pad, duration + pad + step, step)
    curve = _smooth_noise(tg, rng, 1.0 / 60.0, 1.0 / 20.0, n=2)  # periods of 20-60 s
    bpm = np.clip(bpm0 * (1.0 + drift * curve), cfg.tempo_bpm[0], cfg.tempo_bpm[1])
    phase = np.concatenate([[0.0], np.cumsum(0.5 * (bpm[1:] + bpm[:-1]) / 60.0 * step)])
    i0 = int(np.argmin(np.abs(tg)))
    phase = phase - phase[i0] + float(rng.uniform(0.0, 1.0))  # phase at t = 0 in [0, 1)
    ks = np.arange(int(np.ceil(phase[0])), int(np.floor(phase[-1])) + 1)
    times = np.interp(ks.astype(float), phase, tg)
    return times, ks - int(np.ceil(phase[i0]))


# ----------------------------------------------------------------------------------------------- choreography


def _sections(cfg: DancerConfig, rng: np.random.Generator, kmin: int, kmax: int, bar0: int) -> list[tuple[int, int]]:
    """Sections as [start, end) beat indices starting on downbeats; the first starts before ``kmin``."""
    start = bar0 - 4 * int(np.ceil((bar0 - kmin) / 4.0)) - 4
    out = []
    while start < kmax:
        bars = int(rng.integers(cfg.section_bars[0], cfg.section_bars[1] + 1))
        out.append((start, start + 4 * bars))
        start += 4 * bars
    return out


def _choose_moves(cfg: DancerConfig, rng: np.random.Generator, bpm: float,
                  vrng: np.random.Generator | None = None) -> list[str]:
    """A section's moves. ``vrng``: generator 2.0's own stream (vocabulary 2), None for generator 1.x."""
    moves: list[str] = []
    if rng.random() < cfg.bounce_prob:
        kind = "bounce"
        if rng.random() < cfg.rate_change_prob:
            options = [m for m, ok in (("bounce-half", bpm >= 90), ("bounce-double", bpm <= 110)) if ok]
            kind = str(rng.choice(options)) if options else kind
        moves.append(kind)
    if rng.random() < cfg.accent_prob:
        moves.append("accent")
    if rng.random() < cfg.step_prob:
        if vrng is None:
            moves.append(str(rng.choice(list(STEP_MOVES))))
        else:
            names = [f for f, _ in cfg.step_families]
            w = np.array([x for _, x in cfg.step_families], float)
            moves.append(str(vrng.choice(names, p=w / w.sum())))
    if rng.random() < cfg.arm_prob:
        moves.append(str(rng.choice(["swing1", "swing2", "swing4", "pump", "clap", "punch"],
                                    p=[0.15, 0.25, 0.15, 0.2, 0.1, 0.15])))
        if vrng is not None and vrng.random() < cfg.arm_phrase_prob:
            moves[-1] = "arm-phrase"
    if rng.random() < cfg.head_prob:
        moves.append(str(rng.choice(["nod", "head-tilt"], p=[0.75, 0.25])))
    if rng.random() < cfg.torso_prob:
        moves.append(str(rng.choice(["sway", "twist", "chest", "shrug"])))
    if rng.random() < cfg.syncopation_prob:
        moves.append("syncopation")
    if not any(m in moves for m in BEAT_MOVES if m not in ("syncopation", "accent")):
        moves.append(str(rng.choice(["bounce", "nod", "pump", "swing2"])))
    # Drawn last and only when enabled, so configs without jumps keep generator 1.0's clips.
    if cfg.jump_prob > 0 and rng.random() < cfg.jump_prob:
        jump = "jack" if rng.random() < 0.5 else "jump"
        moves = [m for m in moves if not m.startswith("bounce") and m not in STEP_MOVES and m not in STEP_FAMILIES]
        moves.append(jump)
    return moves


def _dance(cfg: DancerConfig, rng: np.random.Generator, psi: np.ndarray, sections: list[tuple[int, int]],
           bar0: int, bpm: float, body: _Body, vrng: np.random.Generator | None = None,
           style: DancerStyle | None = None) -> tuple[dict[str, np.ndarray], list[tuple[str, ...]],
                                                      dict[int, str], list[tuple[int, int, str]]]:
    """Beat-locked channel offsets (summed over cross-faded sections) and the moves of each section.

    Generator 1.x's steps are per beat (a foot lands on beat k after moving during (k-1, k]); they are
    returned as the pattern name of each beat and realised in ``_steps``. Generator 2.0's step families
    (``vrng`` given) come back as (start, end, family) sections, realised by ``dance_vocabulary``.
    """
    t_len = psi.shape[0]
    ch = {c: np.zeros(t_len) for c in _CHANNELS}
    amp = _u(rng, cfg.amplitude) * body.height / 1.75
    cusp = float(rng.uniform(0.0, 1.0))
    sharp = float(rng.uniform(*(style.sharpness if style is not None else (1.0, 2.5))))
    limbs = str(rng.choice(["both", "left", "right"], p=[0.6, 0.2, 0.2]))
    anti = bool(rng.random() < 0.6)
    xb = psi - bar0  # beats since a downbeat: integers multiple of 4 are downbeats
    ramp = 0.25
    sec_moves: list[tuple[str, ...]] = []
    step_pattern: dict[int, str] = {}
    step_sections: list[tuple[int, int, str]] = []

    def edge(b: int) -> np.ndarray:  # 0 before beat b, 1 after, a smooth half-beat cross-fade around it
        return _smoothstep((psi - b + ramp) / (2 * ramp))

    for idx, (start, end) in enumerate(sections):
        # The section windows sum to 1 everywhere (the first is open to the left, the last to the right).
        w = (np.ones(t_len) if idx == 0 else edge(start)) - (np.zeros(t_len) if idx == len(sections) - 1 else edge(end))
        moves = _choose_moves(cfg, rng, bpm, vrng)
        sec_moves.append(tuple(moves))
        step_sections += [(start, end, m) for m in moves if m in STEP_FAMILIES]
        live = w > 0
        if not live.any():
            for m in moves:
                if m in STEP_MOVES:
                    for k in range(start, end):
                        step_pattern[k] = m
            continue
        a = amp * float(rng.uniform(0.7, 1.2))
        arms = {"both": (_L, _R), "left": (_L,), "right": (_R,)}[
            limbs if rng.random() < 0.7 else str(rng.choice(["both", "left", "right"]))]

        def add(name: str, value: np.ndarray | float, w: np.ndarray = w) -> None:
            ch[name] += w * value

        for m in moves:
            if m.startswith("bounce"):
                rate = {"bounce": 1.0, "bounce-half": 0.5, "bounce-double": 2.0}[m]
                depth = a * float(rng.uniform(0.025, 0.08)) * (0.6 if rate == 2.0 else 1.0)
                add("drop", depth * _pulse(rate * xb, cusp, sharp))
            elif m == "accent":
                acc = _bump(xb / 4.0, 0.7 / 4.0)
                add("drop", a * float(rng.uniform(0.02, 0.05)) * acc)
                add("head_nod", a * float(rng.uniform(0.05, 0.2)) * acc)
                for s in arms:
                    add(f"flex_{'lr'[s]}", a * float(rng.uniform(0.3, 1.2)) * acc)
            elif m in STEP_MOVES:
                for k in range(start, end):
                    step_pattern[k] = m
            elif m.startswith("swing"):
                period = int(m[-1])
                ampl = a * float(rng.uniform(0.25, 0.8))
                for s in arms:
                    sign = -1.0 if (anti and s == _R and period > 1) else 1.0
                    wave = (2 * _pulse(xb, cusp, sharp) - 1) if period == 1 else _swing(xb / period, cusp)
                    add(f"flex_{'lr'[s]}", 0.35 * a + sign * ampl * wave)
                    add(f"elbow_{'lr'[s]}", 0.3 + 0.2 * ampl * wave)
            elif m == "pump":
                ampl = a * float(rng.uniform(0.4, 1.0))
                p = _pulse(xb, cusp, sharp)
                for s in arms:
                    add(f"flex_{'lr'[s]}", 0.5 + 0.4 * ampl * p)
                    add(f"elbow_{'lr'[s]}", 0.8 + ampl * p)
            elif m == "clap":
                per = 1.0 if bpm < 130 else 2.0
                p = _pulse(xb / per, cusp, max(sharp, 1.5))
                for s in (_L, _R):
                    add(f"flex_{'lr'[s]}", 1.15)
                    add(f"abd_{'lr'[s]}", 0.8 - 1.02 * p)
                    add(f"elbow_{'lr'[s]}", 0.5)
            elif m == "punch":
                for s in arms:
                    p = _pulse((xb - s) / 2.0, cusp, sharp)
                    add(f"flex_{'lr'[s]}", 1.35)
                    add(f"elbow_{'lr'[s]}", 2.0 - 1.9 * p)
            elif m == "nod":
                rate = 0.5 if (bpm > 140 and rng.random() < 0.5) else 1.0
                add("head_nod", a * float(rng.uniform(0.12, 0.35)) * _pulse(rate * xb, cusp, sharp))
            elif m == "head-tilt":
                add("head_roll", a * float(rng.uniform(0.1, 0.25)) * _swing(xb / 2.0, cusp))
            elif m == "sway":
                add("pelvis_x", a * float(rng.uniform(0.02, 0.07)) * _swing(xb / 2.0, cusp))
                add("lean_side", -a * float(rng.uniform(0.02, 0.08)) * _swing(xb / 2.0, cusp))
            elif m == "twist":
                add("twist", a * float(rng.uniform(0.1, 0.4)) * _swing(xb / 2.0, cusp))
            elif m == "chest":
                add("lean_fwd", a * float(rng.uniform(0.05, 0.2)) * _pulse(xb, cusp, sharp))
            elif m == "shrug":
                add("shrug", a * float(rng.uniform(0.02, 0.05)) * _pulse(xb, cusp, sharp))
            elif m in ("jump", "jack"):
                _add_jump(cfg, rng, xb, bpm, a, m == "jack", arms, add)
            elif m == "arm-phrase" and vrng is not None:
                for name, value in arm_phrase(vrng, psi, start, end, a, arms).items():
                    add(name, value)
            elif m == "syncopation":
                where = float(rng.choice([0.5, 0.75, 0.25], p=[0.7, 0.15, 0.15]))
                p = _pulse(xb - where, 1.0, 3.0) * (rng.random(len(range(start, end))) < 0.7).astype(float)[
                    np.clip(np.floor(psi - where).astype(int) - start, 0, end - start - 1)]
                part = str(rng.choice(["arm", "head", "shrug", "knee"], p=[0.45, 0.25, 0.15, 0.15]))
                if part == "arm":
                    s = int(rng.integers(0, 2))
                    add(f"flex_{'lr'[s]}", a * float(rng.uniform(0.3, 0.9)) * p)
                    add(f"elbow_{'lr'[s]}", a * float(rng.uniform(0.2, 0.8)) * p)
                elif part == "head":
                    add("head_nod", a * float(rng.uniform(0.1, 0.25)) * p)
                elif part == "shrug":
                    add("shrug", a * float(rng.uniform(0.02, 0.05)) * p)
                else:
                    add("drop", a * float(rng.uniform(0.015, 0.04)) * p)
    return ch, sec_moves, step_pattern, step_sections


def _add_jump(cfg: DancerConfig, rng: np.random.Generator, xb: np.ndarray, bpm: float, a: float, jack: bool,
              arms: tuple[int, ...], add: Callable[[str, np.ndarray], None]) -> None:
    """A jump landing on every beat (``xb`` integer): airborne for the last ``air`` of each beat (the
    ``air`` channel lifts the whole body, feet included, on a parabola), then a knee dip whose bottom
    comes ``landing_dip_s`` after the landing. ``jack``: feet apart and arms overhead on every other
    landing, switching in the air. ``a`` scales with the dancer (1 for a 1.75 m dancer)."""
    beat_s = 60.0 / bpm
    air = min(_u(rng, cfg.jump_air), 0.45 / beat_s)
    height = a * _u(rng, cfg.jump_height_m)
    dip_at = min(_u(rng, cfg.landing_dip_s) / beat_s, 0.45 * (1.0 - air))  # in beats after the landing
    depth = a * float(rng.uniform(0.03, 0.07))
    x = xb - np.floor(xb)  # 0 at a landing
    u = np.clip((x - (1.0 - air)) / air, 0.0, 1.0)
    add("air", height * 4.0 * u * (1.0 - u))
    add("drop", depth * np.sin(0.5 * np.pi * np.clip(x / dip_at, 0.0, 2.0)) ** 2)
    if jack:
        # open on even beats, closed on odd ones; the change happens in the air before the landing
        k_land = np.floor(xb) + (u > 0)  # the landing this frame belongs to
        prev_open = (np.floor(xb) % 2 == 0).astype(float)
        next_open = (k_land % 2 == 0).astype(float)
        openness = prev_open + (next_open - prev_open) * _smoothstep(u)
        width = a * float(rng.uniform(0.12, 0.22))
        add("foot_x_l", width * openness)
        add("foot_x_r", -width * openness)
        for s in arms:
            add(f"abd_{'lr'[s]}", 2.5 * openness)


def _steps(rng: np.random.Generator, psi: np.ndarray, pattern: dict[int, str], active: np.ndarray, kmin: int,
           bar0: int, body: _Body, amp: float) -> dict[str, np.ndarray]:
    """Feet offsets and lifts from the per-beat step patterns; ``active[k - kmin]`` masks beats."""
    nb = len(active)
    pos = np.zeros((nb + 1, 2, 2))  # after beat k: [foot, (x, z)]; row 0 is before the first beat
    mover = np.full(nb + 1, -1)
    side = body.height * float(rng.uniform(0.08, 0.18)) * amp
    fwd = body.height * float(rng.uniform(0.08, 0.16)) * amp
    lift = body.height * float(rng.uniform(0.025, 0.07)) * amp
    for i in range(nb):
        k = kmin + i
        pos[i + 1] = pos[i]
        m = pattern.get(k)
        if m is None or not active[i]:
            continue
        j = (k - bar0) % 4
        if m == "march":
            mover[i + 1] = _L if j % 2 == 0 else _R
        elif m == "step-touch":  # 1: right out, 2: left closes, 3: left back, 4: right back
            f, target = [(_R, -side), (_L, -side), (_L, 0.0), (_R, 0.0)][j]
            mover[i + 1] = f
            pos[i + 1, f, 0] = target
        elif m == "tap":  # 1: right forward, 2: back, 3: left forward, 4: back
            f, target = [(_R, fwd), (_R, 0.0), (_L, fwd), (_L, 0.0)][j]
            mover[i + 1] = f
            pos[i + 1, f, 1] = target
    # The movement landing on beat k happens during (k-1, k].
    k_next = np.clip(np.ceil(psi).astype(int) - kmin + 1, 1, nb)
    frac = np.clip(psi - (k_next - 1 + kmin - 1), 0.0, 1.0)
    s = _smoothstep(frac)[:, None, None]
    p = pos[k_next - 1] + (pos[k_next] - pos[k_next - 1]) * s
    bump = np.sin(np.pi * frac) ** 2
    mv = mover[k_next]
    return {"foot_x_l": p[:, _L, 0], "foot_z_l": p[:, _L, 1], "foot_x_r": p[:, _R, 0], "foot_z_r": p[:, _R, 1],
            "lift_l": lift * bump * (mv == _L), "lift_r": lift * bump * (mv == _R)}


# ----------------------------------------------------------------------------------------------- distractors


def _place_distractors(cfg: DancerConfig, rng: np.random.Generator, duration: float) -> list[tuple[float, float, str]]:
    share = _u(rng, cfg.distractor_share)
    total = share * duration
    if total <= 0:
        return []
    mean_len = 0.5 * (cfg.distractor_len_s[0] + cfg.distractor_len_s[1])
    n = max(1, int(round(total / mean_len)))
    lengths = rng.dirichlet(np.full(n, 3.0)) * total
    gaps = rng.dirichlet(np.ones(n + 1)) * (duration - total)
    kinds = [k for k, _ in cfg.distractor_kinds]
    p = np.array([w for _, w in cfg.distractor_kinds], float)
    out = []
    t = 0.0
    for i in range(n):
        t += float(gaps[i])
        out.append((t, t + float(lengths[i]), str(rng.choice(kinds, p=p / p.sum()))))
        t += float(lengths[i])
    return out


def _floor_target(rng: np.random.Generator, here: np.ndarray, r_max: float) -> np.ndarray:
    """A random floor point (x, z) inside the disc of radius ``r_max``, preferably not close to ``here``."""
    cand = here
    for _ in range(8):
        r, ang = r_max * math.sqrt(float(rng.uniform())), float(rng.uniform(-np.pi, np.pi))
        cand = np.array([r * math.cos(ang), r * math.sin(ang)])
        if np.hypot(*(cand - here)) >= 0.5 * r_max:
            break
    return cand


def _distract(cfg: DancerConfig, rng: np.random.Generator, t: np.ndarray, intervals: list[tuple[float, float, str]],
              ch: dict[str, np.ndarray], root: np.ndarray, body: _Body, bpm: float,
              r_max: float) -> tuple[np.ndarray, np.ndarray, list[Distractor]]:
    """Add the non-beat movements to ``ch``/``root`` in place; return the dance gain (T,), walking mask, records.

    Walks and drifts keep the dancer's floor position inside a disc of radius ``r_max`` (metres), so the
    dancer stays in the picture.
    """
    gain = np.ones_like(t)
    walking = np.zeros_like(t)
    records = []
    ramp = 0.3
    for a, b, kind in intervals:
        w = _window(t, a, b, ramp)
        if kind == "idle":
            g = _u(rng, cfg.idle_dance_gain)
        elif kind == "off-tempo":
            g = _u(rng, cfg.off_tempo_dance_gain)
        else:
            g = _u(rng, cfg.distractor_dance_gain)
        gain = np.minimum(gain, 1.0 - (1.0 - g) * w)
        records.append(Distractor(round(a, 4), round(b, 4), kind, round(g, 4)))
        h = body.height
        if kind == "walk":
            here = root[np.searchsorted(t, a).clip(0, len(t) - 1), [0, 2]]
            vec = _floor_target(rng, here, r_max) - here
            span = max(b - a, 0.2) + ramp  # the integral of the window w
            speed = min(float(np.hypot(*vec)) / span, 1.0)
            cadence = float(rng.uniform(1.4, 2.2))  # steps per second, unrelated to the tempo
            direction = np.array([vec[0], 0.0, vec[1]]) / max(float(np.hypot(*vec)), 1e-9)
            dt = np.diff(t, prepend=t[0])
            root += np.cumsum(speed * w * dt)[:, None] * direction[None]
            walking = np.maximum(walking, w)
            gait = np.cumsum(0.5 * cadence * w * dt) + float(rng.uniform(0, 1))
            stride = speed / cadence
            bdir = np.stack([np.cos(ch["heading"]) * direction[0] - np.sin(ch["heading"]) * direction[2],
                             np.sin(ch["heading"]) * direction[0] + np.cos(ch["heading"]) * direction[2]], -1)
            for side, off in (("l", 0.0), ("r", 0.5)):
                x = gait + off
                tri = 1.0 - 4.0 * np.abs(x - np.round(x))
                rel = 0.5 * stride * tri * w
                ch[f"foot_x_{side}"] += rel * bdir[:, 0]
                ch[f"foot_z_{side}"] += rel * bdir[:, 1]
                sw = 2.0 * (x - np.floor(x)) - 1.0
                ch[f"lift_{side}"] += 0.06 * h * np.where(sw > 0, np.sin(np.pi * sw) ** 2, 0.0) * w
            ch["drop"] += 0.012 * h * 0.5 * (1 + np.cos(4 * np.pi * gait)) * w
            for s, sgn in (("l", 1.0), ("r", -1.0)):
                ch[f"flex_{s}"] += sgn * 0.3 * np.sin(2 * np.pi * gait) * w
        elif kind == "turn":
            if rng.random() < 0.5:
                prof = _smoothstep((t - a) / max(b - a, 1e-3)) * 2 * np.pi * float(rng.choice([-1.0, 1.0]))
                prof = np.where(t > b, 0.0, prof)  # a full spin ends where it began
            else:
                ang = float(rng.uniform(0.8, 2.6)) * float(rng.choice([-1.0, 1.0]))
                third = (b - a) / 3
                prof = ang * (_smoothstep((t - a) / third) - _smoothstep((t - b + third) / third))
            ch["heading"] += prof
        elif kind in ("gesture", "wave"):
            s = str(rng.choice(["l", "r"]))
            if kind == "gesture":
                ch[f"flex_{s}"] += w * (float(rng.uniform(0.3, 1.5)) + 0.6 * _smooth_noise(t, rng, 0.15, 0.9))
                ch[f"abd_{s}"] += w * (float(rng.uniform(0.0, 0.8)) + 0.4 * _smooth_noise(t, rng, 0.15, 0.9))
                ch[f"elbow_{s}"] += w * (0.6 + 0.5 * _smooth_noise(t, rng, 0.15, 0.9))
                ch["head_yaw"] += w * 0.5 * _smooth_noise(t, rng, 0.1, 0.5)
            else:
                f_wave = float(rng.uniform(1.5, 4.0))
                ch[f"flex_{s}"] += w * float(rng.uniform(2.0, 2.8))
                ch[f"abd_{s}"] += w * 0.6
                ch[f"elbow_{s}"] += w * (0.9 + float(rng.uniform(0.3, 0.6)) * np.sin(2 * np.pi * f_wave * t))
        elif kind == "idle":
            ch["pelvis_x"] += w * 0.02 * h * _smooth_noise(t, rng, 0.1, 0.4)
            ch["head_yaw"] += w * 0.4 * _smooth_noise(t, rng, 0.05, 0.3)
            ch["lean_side"] += w * 0.03 * _smooth_noise(t, rng, 0.05, 0.3)
        elif kind == "drift":
            here = root[np.searchsorted(t, a).clip(0, len(t) - 1), [0, 2]]
            vec = (_floor_target(rng, here, r_max) - here) * float(rng.uniform(0.3, 0.7))
            prog = _smoothstep((t - a) / max(b - a, 1e-3))
            root += prog[:, None] * np.array([vec[0], 0.0, vec[1]])[None]
            ch["lean_fwd"] += w * 0.12 * _smooth_noise(t, rng, 0.1, 0.5)
            ch["pelvis_x"] += w * 0.04 * h * np.sin(2 * np.pi * float(rng.uniform(0.2, 0.6)) * t)
        elif kind == "jerks":
            n = int(rng.integers(2, 6))
            for tj in np.sort(rng.uniform(a, b, n)):
                rise = float(rng.uniform(0.05, 0.12))
                hold = float(rng.uniform(0.1, 0.5))
                back = float(rng.uniform(0.4, 1.0))
                env = np.where(t < tj + rise, _smoothstep((t - tj) / rise),
                               1.0 - _smoothstep((t - tj - rise - hold) / back))
                part = str(rng.choice(["arm", "head", "torso"], p=[0.6, 0.2, 0.2]))
                if part == "arm":
                    s = str(rng.choice(["l", "r"]))
                    ch[f"flex_{s}"] += env * float(rng.uniform(0.6, 1.8))
                    ch[f"abd_{s}"] += env * float(rng.uniform(-0.2, 1.0))
                    ch[f"elbow_{s}"] += env * float(rng.uniform(-0.2, 1.2))
                elif part == "head":
                    ch["head_yaw"] += env * float(rng.uniform(-0.8, 0.8))
                    ch["head_nod"] += env * float(rng.uniform(-0.3, 0.3))
                else:
                    ch["lean_fwd"] += env * float(rng.uniform(-0.15, 0.3))
                    ch["twist"] += env * float(rng.uniform(-0.4, 0.4))
        elif kind == "off-tempo":
            bpm_x = bpm * float(rng.choice([rng.uniform(0.55, 0.85), rng.uniform(1.15, 1.45)]))
            x = t * bpm_x / 60.0 + float(rng.uniform(0, 1))
            ch["drop"] += w * 0.035 * h * _pulse(x, float(rng.uniform(0, 1)), 1.5)
    return gain, walking, records


# ----------------------------------------------------------------------------------------------- camera


def _draw_camera(cfg: DancerConfig, rng: np.random.Generator, height: float) -> tuple[Camera, np.ndarray, np.ndarray]:
    """Camera parameters, its position (3,) and its rotation rows (right, down, forward) (3, 3)."""
    w, h = cfg.image_sizes[int(rng.integers(len(cfg.image_sizes)))]
    yaw = _u(rng, cfg.yaw_deg) * float(rng.choice([-1.0, 1.0]))
    pitch = _u(rng, cfg.pitch_deg)
    roll = float(rng.uniform(-cfg.roll_deg, cfg.roll_deg))
    dist = _u(rng, cfg.distance_m)
    frac = _u(rng, cfg.person_frac)
    focal = frac * h * dist / height
    # The standing figure (about 0.55 x its height wide with arms out) stays inside the image.
    half_h = 0.5 * frac * h
    half_w = 0.3 * frac * h
    cx = w / 2 + float(rng.uniform(-1, 1)) * max(0.0, w / 2 - half_w - 0.02 * w)
    cy = h / 2 + float(rng.uniform(-1, 1)) * max(0.0, h / 2 - half_h - 0.03 * h)
    target = np.array([0.0, 0.52 * height, 0.0])
    yr, pr = math.radians(yaw), math.radians(pitch)
    pos = target + dist * np.array([math.sin(yr) * math.cos(pr), math.sin(pr), math.cos(yr) * math.cos(pr)])
    f = _normalise(target - pos)
    r = _normalise(np.cross(f, np.array([0.0, 1.0, 0.0])))
    d = np.cross(f, r)
    rr = math.radians(roll)
    r, d = math.cos(rr) * r + math.sin(rr) * d, -math.sin(rr) * r + math.cos(rr) * d
    cam = Camera(round(yaw, 4), round(pitch, 4), round(roll, 4), round(dist, 4), round(focal, 3),
                 (round(cx, 2), round(cy, 2)), (int(w), int(h)), round(_u(rng, cfg.camera_shake_deg), 4))
    return cam, pos, np.stack([r, d, f])


def _project(world: np.ndarray, cam: Camera, pos: np.ndarray, rows: np.ndarray, shake: np.ndarray) -> np.ndarray:
    """Pinhole projection. Shapes: (T, 17, 3) -> (T, 17, 2) pixels; ``shake`` (T, 2) radians of pan/tilt."""
    c = (world - pos) @ rows.T
    z = np.maximum(c[..., 2], 1e-3)
    u = cam.focal_px * c[..., 0] / z + cam.principal_point[0] + cam.focal_px * shake[:, None, 0]
    v = cam.focal_px * c[..., 1] / z + cam.principal_point[1] + cam.focal_px * shake[:, None, 1]
    return np.stack([u, v], -1)


# ----------------------------------------------------------------------------------------------- the clip

_LEFT_JOINTS = np.array([1, 3, 5, 7, 9, 11, 13, 15])
_RIGHT_JOINTS = np.array([2, 4, 6, 8, 10, 12, 14, 16])
_FLIP_INDEX = np.arange(NUM_JOINTS)  # joint j of a left/right-flipped frame shows joint _FLIP_INDEX[j]
_FLIP_INDEX[_LEFT_JOINTS], _FLIP_INDEX[_RIGHT_JOINTS] = _RIGHT_JOINTS, _LEFT_JOINTS


def _frame_times(cfg: DancerConfig, rng: np.random.Generator, duration: float) -> tuple[float, np.ndarray, int]:
    lo, hi = cfg.fps
    common = [f for f in COMMON_FPS if lo <= f <= hi]
    fps = float(rng.choice(common)) if common and rng.random() < cfg.common_fps_share else _u(rng, cfg.fps)
    n = max(2, int(round(duration * fps)))
    k = np.arange(n, dtype=np.float64)
    if rng.random() < cfg.irregular_times_share:
        k[1:] += rng.uniform(-0.15, 0.15, n - 1)
    times = k / fps
    keep = rng.random(n) >= _u(rng, cfg.frame_drop_prob)
    keep[0] = keep[-1] = True
    return fps, times[keep], int(n - keep.sum())


def generate_clip(config: DancerConfig | None = None, seed: int = 0) -> SyntheticDance:
    """One synthetic dancer clip; the same ``(config, seed)`` always gives the same clip.

    Returns:
        SyntheticDance: ``sequence`` (keypoints float32 (T, 17, 2) px at the clip's own frame rate,
        confidence (T, 17), true times (T,) from 0), ``beats`` (B,) and ``downbeats`` (D,) in seconds,
        ``tempo_bpm`` and ``metadata`` (camera, moves, sections, distractor intervals, hit times...).
    """
    cfg = config if config is not None else DancerConfig()
    rng = np.random.default_rng([int(seed), 0x5D4C])
    duration = _u(rng, cfg.duration_s)
    fps, t, n_dropped = _frame_times(cfg, rng, duration)
    t_len = len(t)

    # Music and the dancer's clock.
    bpm0 = _draw_tempo(cfg, rng)
    drift = _u(rng, cfg.tempo_drift)
    pad = 4.0 * 60.0 / cfg.tempo_bpm[0]
    grid, ks = _beat_grid(cfg, rng, bpm0, drift, duration, pad)
    bar0 = int(rng.integers(0, 4))  # beat index of a downbeat (every 4th from it)
    jitter = _u(rng, cfg.timing_jitter_s)
    offset = _u(rng, cfg.dancer_offset_s)
    eps = np.clip(rng.normal(0.0, 1.0, len(grid)), -2.5, 2.5) * jitter
    hits = grid + offset + eps
    hits = np.maximum.accumulate(hits + np.arange(len(hits)) * 1e-6)  # stays increasing for any jitter
    psi = np.interp(t, hits, ks.astype(float))  # the pad keeps t inside the hit times

    # Body, choreography, distractors. Generator 2.0's vocabulary draws from its own stream (``vrng``), so
    # vocabulary 1 leaves every draw of generator 1.x where it was.
    body = _Body.draw(rng, _u(rng, cfg.person_height_m))
    sections = _sections(cfg, rng, int(ks[0]), int(ks[-1]) + 1, bar0)
    vrng = np.random.default_rng([int(seed), 0x2D20]) if cfg.dance_vocabulary >= 2 else None
    style = None if vrng is None else draw_style(vrng, cfg.beat_carriers, cfg.step_prob_v2)
    dcfg = cfg if style is None else dataclasses.replace(
        cfg, bounce_prob=style.bounce_prob, step_prob=style.step_prob, arm_prob=style.arm_prob,
        head_prob=style.head_prob, torso_prob=style.torso_prob)
    dance, sec_moves, pattern, step_secs = _dance(dcfg, rng, psi, sections, bar0, bpm0, body, vrng, style)
    base = {c: np.full(t_len, _NEUTRAL.get(c, 0.0)) for c in _CHANNELS}
    root = np.zeros((t_len, 3))
    bg = _u(rng, cfg.background_drift)
    h = body.height
    base["pelvis_x"] += bg * 0.02 * h * _smooth_noise(t, rng, 0.03, 0.2)
    base["pelvis_z"] += bg * 0.015 * h * _smooth_noise(t, rng, 0.03, 0.2)
    base["lean_fwd"] += bg * (0.04 + 0.04 * _smooth_noise(t, rng, 0.02, 0.15))
    base["heading"] += bg * 0.12 * _smooth_noise(t, rng, 0.02, 0.1)
    base["head_yaw"] += bg * 0.1 * _smooth_noise(t, rng, 0.05, 0.3)
    cam, cam_pos, rows = _draw_camera(cfg, rng, h)
    visible = min(cam.principal_point[0], cam.image_size[0] - cam.principal_point[0]) / cam.focal_px * cam.distance_m
    r_max = max(0.15, min(1.5, 0.8 * (visible - 0.3 * h), 0.35 * cam.distance_m))
    intervals = _place_distractors(cfg, rng, duration)
    gain, walking, records = _distract(cfg, rng, t, intervals, base, root, body, bpm0, r_max)
    gain_at_hits = np.interp(hits, t, gain)
    walk_at_hits = np.interp(hits, t, walking)
    active = (gain_at_hits > 0.5) & (walk_at_hits < 0.5)
    amp_steps = _u(rng, (0.7, 1.2))
    steps = _steps(rng, psi, pattern, active, int(ks[0]), bar0, body, amp_steps)
    ch = {c: base[c] + gain * dance[c] + steps.get(c, 0.0) for c in _CHANNELS}
    if vrng is not None:
        events = step_events(step_secs)
        ev_t = np.interp([e for e, _ in events], psi, t)
        ev_on = (np.interp(ev_t, t, gain) > 0.5) & (np.interp(ev_t, t, walking) < 0.5)
        for c, v in step_channels(vrng, psi, events, ev_on, h, amp_steps).items():
            ch[c] = ch[c] + v
        sec_t = [(float(np.interp(s, ks, grid)), float(np.interp(e, ks, grid))) for s, e in sections]
        travel, turns = travel_and_turns(vrng, t, sec_t, cfg.travel_prob, r_max)
        root = root + travel
        ch["heading"] = ch["heading"] + turns
    ch["drop"] = np.maximum(ch["drop"], -0.01 * h)

    # Camera, projection, observation.
    shake = math.radians(cam.shake_deg) * np.stack([_smooth_noise(t, rng, 0.05, 0.5), _smooth_noise(t, rng, 0.05, 0.5)],
                                                   -1)
    world = _forward_kinematics(ch, root, body)
    px = _project(world, cam, cam_pos, rows, shake)
    kp, conf = _observe(cfg, rng, px, world, cam, cam_pos, t, np.random.default_rng([int(seed), 0x5D4C, 5]))

    inside = (grid >= 0.0) & (grid <= t[-1] + 0.5 / fps)
    beats = grid[inside]
    is_down = ((ks - bar0) % 4 == 0)[inside]
    downbeats = beats[is_down]
    tempo = float(60.0 / np.median(np.diff(beats))) if len(beats) > 1 else bpm0
    secs = tuple(
        Section(s, e, float(np.interp(s, ks, grid)), float(np.interp(e, ks, grid)), m)
        for (s, e), m in zip(sections, sec_moves, strict=True)
        if np.interp(e, ks, grid) > 0 and np.interp(s, ks, grid) < duration
    )
    used = tuple(m for m in (*BEAT_MOVES, *VOCABULARY_MOVES) if any(m in s.moves for s in secs))
    covered = sum(min(d.end_s, duration) - max(d.start_s, 0.0) for d in records)
    meta = DanceMetadata(
        seed=int(seed), generator_version=GENERATOR_VERSION, fps=fps, duration_s=duration, base_tempo_bpm=bpm0,
        tempo_drift=drift, timing_jitter_s=jitter, dancer_offset_s=offset, camera=cam, person_height_m=h,
        sections=secs, moves=used, distractors=tuple(records), distractor_share=covered / duration,
        hit_times=hits[inside], dropped_frames=n_dropped, unseen_share=float(np.mean(conf == 0)),
        style="" if style is None else style.carrier,
    )
    seq = KeypointSequence(kp, conf, t, cam.image_size)
    return SyntheticDance(seq, beats, downbeats, tempo, meta)


#: Observation model 2's joint groups (COCO-17 indices): head, torso, arms, legs.
_OBS_GROUPS: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3, 4), (5, 6, 11, 12), (7, 8, 9, 10), (13, 14, 15, 16))
#: Observation model 2's confidences, per joint group (mediapipe's landmark visibility on the real example
#: clips: head and torso 0.99-1.0; wrists, elbows, knees and ankles mostly 0.9-1.0 with dips lasting about a
#: second, down to 0.05 on a limb the light or the body hides): the confidence's logit is a per-clip level
#: (uniform over the range) plus a per-clip spread times an Ornstein-Uhlenbeck process with the time constant.
_CONF_LOGIT: tuple[tuple[tuple[float, float], tuple[float, float], float], ...] = (
    ((5.5, 7.5), (0.5, 1.0), 0.05), ((5.5, 7.5), (0.5, 1.0), 0.05), ((3.0, 5.0), (3.0, 5.5), 0.6),
    ((3.0, 4.0), (1.0, 2.5), 0.2),
)  # fmt: skip
_FAR_LIMB_LOGIT = 3.0  #: model 2: logit lost by the limbs on the far side of the body (seen side-on)


def _log_u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    """Log-uniform over ``r`` (uniform when its low end is not positive)."""
    if r[1] > r[0] > 0:
        return float(np.exp(rng.uniform(math.log(r[0]), math.log(r[1]))))
    return _u(rng, r)


def _ou(rng: np.random.Generator, t: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Unit-variance stationary Ornstein-Uhlenbeck processes sampled at the times ``t`` (T,), one per time
    constant in ``tau`` (C,) seconds (0: white). Shape (T, C)."""
    from scipy.signal import lfilter

    e = rng.standard_normal((len(t), len(tau)))
    tau = np.maximum(np.asarray(tau, np.float64), 1e-9)
    out = np.empty_like(e)
    out[0] = e[0]
    if len(t) < 2:
        return out
    dt = np.diff(t)
    cuts = np.flatnonzero(np.abs(np.diff(dt)) > 1e-9) + 1  # runs of equal frame steps
    if len(cuts) > len(t) // 4:  # irregular frame times: the recursion frame by frame
        rho = np.exp(-dt[:, None] / tau[None, :])  # (T - 1, C)
        q = np.sqrt(1.0 - rho * rho)
        for k in range(1, len(t)):
            out[k] = rho[k - 1] * out[k - 1] + q[k - 1] * e[k]
        return out
    for a, b in zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(dt)]]).tolist(), strict=True):
        for tc in np.unique(tau):  # a constant coefficient over the run: a first-order linear filter
            cols = np.flatnonzero(tau == tc)
            rho = math.exp(-float(dt[a]) / float(tc))
            out[a + 1 : b + 1, cols] = lfilter([1.0], [1.0, -rho], math.sqrt(1.0 - rho * rho) * e[a + 1 : b + 1, cols],
                                               axis=0, zi=rho * out[a : a + 1, cols])[0]
    return out


def _observe_v2(cfg: DancerConfig, orng: np.random.Generator, t: np.ndarray, side: np.ndarray,
                person_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observation model 2's draws, all from ``orng``: confidences (T, 17), jitter in pixels (T, 17, 2) for
    the confidence-free level (the caller scales it by the confidence) and flipped frames (T,) bool."""
    t_len = len(t)
    group = np.zeros(NUM_JOINTS, np.intp)
    for g, joints in enumerate(_OBS_GROUPS):
        group[list(joints)] = g
    level = np.array([_u(orng, lv) for lv, _, _ in _CONF_LOGIT])[group]  # (17,)
    spread = np.array([_u(orng, sp) for _, sp, _ in _CONF_LOGIT])[group]
    tau_c = np.array([tc for _, _, tc in _CONF_LOGIT])[group]
    sigma = _log_u(orng, cfg.jitter_frac) * np.asarray(cfg.jitter_group_scale, np.float64)[group] * person_px
    z = _ou(orng, t, np.concatenate([tau_c, np.full(2 * NUM_JOINTS, cfg.jitter_time_s)]))  # (T, 17 + 34)
    logit = level + spread * z[:, :NUM_JOINTS]
    limbs = np.zeros(NUM_JOINTS, bool)
    limbs[list(_OBS_GROUPS[2] + _OBS_GROUPS[3])] = True
    far_r, far_l = np.clip(side, 0, 1)[:, None], np.clip(-side, 0, 1)[:, None]  # side > 0: the left is seen
    logit[:, _RIGHT_JOINTS[limbs[_RIGHT_JOINTS]]] -= _FAR_LIMB_LOGIT * far_r
    logit[:, _LEFT_JOINTS[limbs[_LEFT_JOINTS]]] -= _FAR_LIMB_LOGIT * far_l
    conf = 1.0 / (1.0 + np.exp(-logit))
    jitter = z[:, NUM_JOINTS:].reshape(t_len, NUM_JOINTS, 2) * sigma[None, :, None]
    flipped = np.zeros(t_len, bool)
    if orng.random() < cfg.flip_share and t_len > 1:
        rate = _log_u(orng, cfg.flip_rate_per_min) / 60.0
        for _ in range(int(orng.poisson(rate * t[-1]))):
            a, d = float(orng.uniform(0.0, t[-1])), _log_u(orng, cfg.flip_duration_s)
            first = min(int(np.searchsorted(t, a)), t_len - 1)
            flipped[first : max(first + 1, int(np.searchsorted(t, a + d)))] = True
    return conf, jitter, flipped


def _observe(cfg: DancerConfig, rng: np.random.Generator, px: np.ndarray, world: np.ndarray, cam: Camera,
             cam_pos: np.ndarray, t: np.ndarray, orng: np.random.Generator | None = None,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Noise, confidences, self-occlusion, left/right flips, dropouts, outliers and the image border.

    ``orng``: observation model 2's own stream; model 2 makes the same draws from ``rng`` as model 1, so
    nothing drawn after them moves.
    """
    t_len = px.shape[0]
    w, h = cam.image_size
    person_px = cam.focal_px * 1.0  # pixels per metre at the target distance ...
    person_px *= float(np.linalg.norm(world[0, 0] - world[0, 15])) / max(cam.distance_m, 1e-3)
    sigma = _u(rng, cfg.noise_frac) * person_px
    conf = np.clip(rng.normal(0.9, 0.05, (t_len, NUM_JOINTS)), 0.3, 1.0)
    # Far side of the body: lower confidence, more noise.
    left_axis = _normalise(world[:, 5] - world[:, 6])
    to_cam = _normalise(cam_pos[None] - 0.5 * (world[:, 11] + world[:, 12]))
    s = np.sum(left_axis * to_cam, axis=-1)  # > 0: the camera sees the dancer's left side
    v2 = None
    if cfg.observation_model >= 2:
        if orng is None:
            raise ValueError("observation model 2 needs its own random stream")
        v2 = _observe_v2(cfg, orng, t, s, person_px)
        conf = v2[0]
    else:
        conf[:, _RIGHT_JOINTS] *= (1.0 - 0.35 * np.clip(s, 0, 1))[:, None]
        conf[:, _LEFT_JOINTS] *= (1.0 - 0.35 * np.clip(-s, 0, 1))[:, None]
    noisy = px + rng.normal(0.0, 1.0, px.shape) * sigma * (1.0 + 2.0 * (1.0 - conf))[..., None]
    if v2 is not None:
        _, jitter, flipped = v2
        noisy += jitter * (1.0 + cfg.jitter_conf_gain * np.minimum(1.0, (1.0 - conf) / 0.1))[..., None]
        for arr in (noisy, conf):  # the estimator took the dancer to face the other way: left and right exchanged
            arr[flipped] = arr[flipped][:, _FLIP_INDEX]
    out = rng.random((t_len, NUM_JOINTS)) < _u(rng, cfg.outlier_prob)
    if out.any():
        noisy[out] += rng.normal(0.0, 0.08 * person_px, (int(out.sum()), 2))
        conf[out] *= 0.5
    seen = np.ones((t_len, NUM_JOINTS), bool)
    starts = np.argwhere(rng.random((t_len, NUM_JOINTS)) < _u(rng, cfg.joint_drop_prob))
    lengths = rng.integers(1, 11, len(starts))
    for (f, j), n in zip(starts, lengths, strict=True):
        seen[f : f + n, j] = False
    if rng.random() < cfg.person_lost_share and t_len > 10:
        a = float(rng.uniform(0, t[-1]))
        seen[(t >= a) & (t < a + float(rng.uniform(0.1, 0.8)))] = False
    seen &= (noisy[..., 0] >= 0) & (noisy[..., 0] < w) & (noisy[..., 1] >= 0) & (noisy[..., 1] < h)
    conf = np.where(seen, conf, 0.0).astype(np.float32)
    kp = np.where(seen[..., None], noisy, 0.0).astype(np.float32)
    return kp, conf


# ----------------------------------------------------------------------------------------------- preview

_LEFT_COLOUR = (60, 160, 255)  # BGR orange
_RIGHT_COLOUR = (255, 170, 60)  # BGR blue
_CENTRE_COLOUR = (220, 220, 220)
_BACKGROUND = 28


def preview_frame_times(dance: SyntheticDance, fps: float | None = None) -> np.ndarray:
    """The video frame times ``render_preview`` draws: uniform at ``fps`` over the clip."""
    seq = dance.sequence
    rate = float(fps) if fps else float(round(seq.fps))
    n = int(np.floor((seq.times[-1] - seq.times[0]) * rate + 1e-6)) + 1
    return seq.times[0] + np.arange(n) / rate


def draw_frame(dance: SyntheticDance, tau: float, size: tuple[int, int], scale: float) -> np.ndarray:
    """One preview image (BGR uint8, ``size`` = (w, h)) at time ``tau``: the latest keypoint frame, beat flashes."""
    import cv2

    seq = dance.sequence
    w, h = size
    img = np.full((h, w, 3), _BACKGROUND, np.uint8)
    i = int(np.clip(np.searchsorted(seq.times, tau + 1e-9, side="right") - 1, 0, seq.num_frames - 1))
    kp = seq.keypoints[i] * scale
    conf = seq.confidence[i]
    thick = max(2, int(round(0.006 * max(w, h))))
    for a, b in COCO17_EDGES:
        if conf[a] > 0 and conf[b] > 0:
            col = _LEFT_COLOUR if a in _LEFT_JOINTS and b in _LEFT_JOINTS else (
                _RIGHT_COLOUR if a in _RIGHT_JOINTS and b in _RIGHT_JOINTS else _CENTRE_COLOUR)
            cv2.line(img, (int(kp[a, 0]), int(kp[a, 1])), (int(kp[b, 0]), int(kp[b, 1])), col, thick, cv2.LINE_AA)
    for j in range(NUM_JOINTS):
        if conf[j] > 0:
            cv2.circle(img, (int(kp[j, 0]), int(kp[j, 1])), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    # Beat flash: a circle in the top-right corner fading over 150 ms; downbeats bigger, red, with a border.
    r0 = max(10, int(0.03 * max(w, h)))
    past = dance.beats[dance.beats <= tau + 1e-6]
    if len(past):
        b = float(past[-1])
        age = tau - b
        if age < 0.15:
            k = 1.0 - age / 0.15
            down = bool(np.any(np.abs(dance.downbeats - b) < 1e-6))
            full = (0, 0, 255) if down else (0, 230, 230)
            flash = tuple(int(_BACKGROUND + k * (c - _BACKGROUND)) for c in full)  # fades into the background
            radius = int(r0 * (1.8 if down else 1.0))
            cv2.circle(img, (w - 2 * r0 - radius // 2, 2 * r0 + radius // 2), radius, flash, -1, cv2.LINE_AA)
            if down:
                cv2.rectangle(img, (0, 0), (w - 1, h - 1), flash, max(4, thick * 2))
    n_before = int(np.sum(dance.beats <= tau + 1e-6))
    count = ""
    if n_before:
        last = dance.beats[n_before - 1]
        downs = dance.downbeats[dance.downbeats <= last + 1e-6]
        if len(downs):
            count = f"beat {int(np.sum((dance.beats > downs[-1] - 1e-6) & (dance.beats <= last + 1e-6)))}/4"
    active = [d.kind for d in dance.metadata.distractors if d.start_s <= tau <= d.end_s]
    text = f"{dance.tempo_bpm:.1f} BPM  t={tau:5.2f}s  {count}" + (f"  [{', '.join(active)}]" if active else "")
    fs = max(0.4, 0.0009 * max(w, h))
    cv2.putText(img, text, (10, int(30 * fs / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, fs, (200, 200, 200), 1, cv2.LINE_AA)
    return img


def render_preview(dance: SyntheticDance, path: str | os.PathLike[str], *, fps: float | None = None,
                   max_size: int = 640) -> int:
    """Write an mp4 (mp4v) of the skeleton with a flash on every beat and a bigger one on downbeats.

    Frames are uniform at ``fps`` (default: the clip's rounded frame rate) and each shows the latest
    keypoint frame at or before its time; the image is the clip's image scaled to fit ``max_size``.
    Written atomically. Returns the number of video frames written.
    """
    import cv2

    from rhythmicnet.errors import OutputError
    from rhythmicnet.fileio import atomic_path

    seq = dance.sequence
    iw, ih = seq.image_size or (640, 480)
    scale = min(1.0, max_size / max(iw, ih))
    size = (int(round(iw * scale / 2)) * 2, int(round(ih * scale / 2)) * 2)
    taus = preview_frame_times(dance, fps)
    rate = float(fps) if fps else float(round(seq.fps))
    target = Path(path)
    with atomic_path(target) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), rate, size)
        if not writer.isOpened():
            raise OutputError(f"{target}: cannot open an mp4v video writer")
        try:
            for tau in taus:
                writer.write(draw_frame(dance, float(tau), size, scale))
        finally:
            writer.release()
    return len(taus)


def clip_record(dance: SyntheticDance) -> dict[str, Any]:
    """The labels and metadata of a clip as a JSON-ready dict (what ``synth-dance`` writes beside keypoints)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "tempo_bpm": round(dance.tempo_bpm, 4),
        "beats": [round(float(b), 5) for b in dance.beats],
        "downbeats": [round(float(b), 5) for b in dance.downbeats],
        "metadata": dance.metadata.to_dict(),
    }


__all__ = [
    "AIST_TEMPO_COUNTS", "BEAT_MOVES", "DISTRACTOR_KINDS", "GENERATOR_VERSION", "Camera", "DanceMetadata",
    "DancerConfig", "Distractor", "Section", "SyntheticDance", "clip_record", "draw_frame",
    "generate_clip", "preview_frame_times", "render_preview",
]  # fmt: skip
