"""Generator 2.0's dance vocabulary: step patterns whose steps are not the beats, arm phrases, travelling and
turning while dancing, and a per-dancer style (issue 16).

Generator 1.x only stepped on the beat (``march``, ``step-touch``, ``tap``: one step per beat), so a
network trained on it learns "a step is a beat". Real dancers step in patterns where that is false, and the
beat network then counts the steps (on real dancers it decoded 164-180 BPM whatever the music's tempo).
This module adds what the generator needs to show the difference:

* **Step families** (:data:`STEP_FAMILIES`): a step pattern is a cycle of ``cycle_beats`` beats with foot
  landings at ``onsets`` (in beats from the cycle's start; cycles start on the section's first downbeat).
  Feet alternate, a foot moves during the time before its landing (at most a beat), and every landing
  gives the hips a small weight-transfer dip (the knees absorbing it), so steps move the hips at the
  *step* rate, which is not the beat rate. The families are grouped (:data:`FAMILY_GROUPS`) into those
  the network may train on and those kept out of training for the generalisation test
  (``offline/beat_eval_set.py``'s ``GENERALISATION_SET``). Half and double time (running steps,
  ``double``) cannot be held out: double time at 60 BPM is the same motion as stepping on the beat at
  120, so they stay in training and are reported on their own.
* **Arm phrases** (:func:`arm_phrase`): the arms move through a few poses over a 2- or 4-bar phrase at
  times unrelated to the beat, independent of the steps.
* **Travel and turns while dancing** (:func:`travel_and_turns`): the dancer crosses the floor or turns
  (a quarter turn and back, or a full turn) while the step pattern goes on; 1.x only moved during
  distractor intervals, where the dancing faded.
* **Style** (:func:`draw_style`): per dancer, which body part carries the beat (hips, arms, head, torso
  or feet) and how sharp the accents are; it sets the per-section probabilities of the moves.

Everything here draws from its own random stream (``generate_clip`` seeds it from the clip seed), and only
when ``DancerConfig.dance_vocabulary >= 2``, so configs at vocabulary 1 give generator 1.x's clips to the byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FAMILY_GROUPS", "HELDOUT_STEP_FAMILIES", "STEP_FAMILIES", "TRAIN_STEP_FAMILIES", "BEAT_CARRIERS", "DancerStyle",
    "StepFamily", "arm_phrase", "draw_style", "step_events", "step_channels", "travel_and_turns",
]  # fmt: skip


@dataclass(frozen=True)
class StepFamily:
    """A step pattern: foot landings at ``onsets`` (beats from the cycle start, in [0, cycle_beats))."""

    cycle_beats: int
    onsets: tuple[float, ...]
    description: str


#: Generator 2.0's step families (generator 1.x's ``march`` / ``step-touch`` / ``tap``, one step on every
#: beat, stay in ``synthetic_dancer._steps``).
STEP_FAMILIES: dict[str, StepFamily] = {
    # --- may be trained on
    "double": StepFamily(1, (0.0, 0.5), "running steps on every beat and every 'and' (double time)"),
    "and-steps": StepFamily(1, (0.5,), "a step on every 'and', none on the beats"),
    "cha-cha": StepFamily(4, (0.0, 1.0, 2.0, 3.0, 3.5), "1, 2, 3, 4-and"),
    "kick-ball-change": StepFamily(2, (0.0, 0.75, 1.0), "kick on 1, ball on the 'a', change on 2, hold"),
    # --- held out of training (the generalisation test)
    "triple": StepFamily(2, (0.0, 0.5, 1.0), "triple steps: 1-and-2, 3-and-4"),
    "quick-quick-slow": StepFamily(4, (1.0, 2.0, 3.0), "rumba timing: quick 2, quick 3, slow 4 held over 1"),
    "six-over-eight": StepFamily(8, (0.0, 1.0, 2.0, 4.0, 5.0, 6.0), "six steps over eight beats, holds on 4 and 8"),
    "skip": StepFamily(1, (0.0, 0.75), "skipping: a step on the beat, a hop on the 'a'"),
}

#: Frozen family groups (issue 16: fixed before any training on generator 2.0).
FAMILY_GROUPS: dict[str, tuple[str, ...]] = {
    "on-the-beat (1.x)": ("march", "step-touch", "tap"),
    "double time": ("double",),
    "trained syncopated": ("and-steps", "cha-cha", "kick-ball-change"),
    "held out": ("triple", "quick-quick-slow", "six-over-eight", "skip"),
}
HELDOUT_STEP_FAMILIES: tuple[str, ...] = FAMILY_GROUPS["held out"]
TRAIN_STEP_FAMILIES: tuple[str, ...] = (
    *FAMILY_GROUPS["on-the-beat (1.x)"], *FAMILY_GROUPS["double time"], *FAMILY_GROUPS["trained syncopated"])

#: Which body part carries the beat, with its weight in the per-dancer draw.
BEAT_CARRIERS: tuple[tuple[str, float], ...] = (("hips", 0.4), ("arms", 0.15), ("head", 0.15), ("torso", 0.1),
                                                ("feet", 0.2))


@dataclass(frozen=True)
class DancerStyle:
    """Per dancer: ``carrier`` (the body part that carries the beat) and the per-section move probabilities
    it implies; ``sharpness``: the range of the pulse sharpness (1.x: (1.0, 2.5))."""

    carrier: str
    bounce_prob: float
    step_prob: float
    arm_prob: float
    head_prob: float
    torso_prob: float
    sharpness: tuple[float, float]


def draw_style(rng: np.random.Generator, carriers: tuple[tuple[str, float], ...] = BEAT_CARRIERS,
               step_prob: float = 0.5) -> DancerStyle:
    """A dancer's style. The carrier gets its move in most sections; the hips' bounce, 1.x's near-constant
    cue (85 % of sections), becomes rarer when another part carries the beat."""
    names = [c for c, _ in carriers]
    p = np.array([w for _, w in carriers], float)
    carrier = str(rng.choice(names, p=p / p.sum()))
    probs = {"bounce_prob": 0.85, "step_prob": step_prob, "arm_prob": 0.7, "head_prob": 0.45, "torso_prob": 0.45}
    if carrier != "hips":
        probs["bounce_prob"] = float(rng.uniform(0.2, 0.45))
        key = {"arms": "arm_prob", "head": "head_prob", "torso": "torso_prob", "feet": "step_prob"}[carrier]
        probs[key] = 0.95
    if carrier == "feet":  # footwork: the steps are the main motion; the upper body mostly rides along
        probs["bounce_prob"] = float(rng.uniform(0.05, 0.25))
        probs["head_prob"], probs["torso_prob"] = 0.25, 0.25
    lo = float(rng.uniform(0.6, 1.5))
    return DancerStyle(carrier=carrier, sharpness=(lo, lo + float(rng.uniform(0.5, 2.0))), **probs)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def step_events(sections: list[tuple[int, int, str]]) -> list[tuple[float, str]]:
    """Foot landings (beat position psi, family) of step sections ``(start, end, family)`` (beat indices;
    a cycle starts on the section's first beat). Sorted by time."""
    out = []
    for start, end, fam in sections:
        f = STEP_FAMILIES[fam]
        for c0 in range(start, end, f.cycle_beats):
            out += [(c0 + o, fam) for o in f.onsets if c0 + o < end]
    return sorted(out)


def step_channels(rng: np.random.Generator, psi: np.ndarray, events: list[tuple[float, str]], active: np.ndarray,
                  height: float, amp: float) -> dict[str, np.ndarray]:
    """Feet offsets and lifts plus the hips' landing dips of the step ``events`` (see :func:`step_events`),
    as pose channel offsets over the frames' beat phase ``psi`` (T,). ``active`` (E,): events that happen
    (not during a distractor). Returns ``foot_x_l``, ``foot_z_l``, ``lift_l``, the same for ``r``, and
    ``drop``, all (T,)."""
    t_len = len(psi)
    out = {k: np.zeros(t_len) for k in ("foot_x_l", "foot_z_l", "lift_l", "foot_x_r", "foot_z_r", "lift_r", "drop")}
    if not events:
        return out
    lift_h = height * float(rng.uniform(0.02, 0.06)) * amp
    stride = height * float(rng.uniform(0.04, 0.12)) * amp
    # a real weight transfer: the knees flex on each landing, as deep as a bounce (2-6 cm at 1.75 m)
    dip = height * float(rng.uniform(0.012, 0.035)) * amp
    dip_lag = float(rng.uniform(0.06, 0.16))  # beats from landing to the lowest hips
    # per landing: which foot, where it lands (x: side, z: forward; a small box the feet wander in)
    foot = int(rng.integers(0, 2))
    pos = np.zeros((2, 2))
    prev = events[0][0] - 0.5
    for (at, _fam), on in zip(events, active, strict=True):
        dur = min(at - prev, 1.0) * 0.85
        prev = at
        if not on or dur <= 0:
            continue
        side = "lr"[foot]
        start = pos[foot].copy()
        pos[foot] = rng.choice([-1.0, 0.0, 1.0], size=2) * np.array([0.6 * stride, stride])
        u = (psi - (at - dur)) / dur
        moving = (u > 0.0) & (u < 1.0)
        s = _smoothstep(u)
        # each step adds its change of the foot's spot from its lift on (the sum is the foot's path)
        for j, ch in enumerate((f"foot_x_{side}", f"foot_z_{side}")):
            out[ch] += (pos[foot, j] - start[j]) * s
        out[f"lift_{side}"] += lift_h * np.where(moving, np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0)
        x = (psi - at - dip_lag) / 0.12
        out["drop"] += dip * np.exp(-0.5 * x * x)
        foot = 1 - foot
    return out


def arm_phrase(rng: np.random.Generator, psi: np.ndarray, start: int, end: int, amp: float,
               arms: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Arms moving through poses over 2- or 4-bar phrases, reached at times unrelated to the beat (uniform
    positions inside each phrase, never snapped to beats). Channel offsets (T,) for the given arms
    (0 = left, 1 = right) from the neutral pose."""
    out: dict[str, np.ndarray] = {}
    phrase = int(rng.choice([8, 16]))
    keys_psi, keys = [float(start)], [np.zeros((2, 3))]
    for p0 in range(start, end, phrase):
        n = int(rng.integers(3, 7))
        for at in np.sort(rng.uniform(p0, min(p0 + phrase, end), n)):
            pose = np.stack([rng.uniform([0.0, 0.0, 0.0], [2.0, 1.4, 1.6]) * amp for _ in range(2)])
            keys_psi.append(float(at))
            keys.append(pose)
    keys_psi.append(float(end))
    keys.append(np.zeros((2, 3)))
    kp, kv = np.array(keys_psi), np.stack(keys)  # (K,), (K, 2, 3)
    i = np.clip(np.searchsorted(kp, psi) - 1, 0, len(kp) - 2)
    frac = _smoothstep((psi - kp[i]) / np.maximum(kp[i + 1] - kp[i], 1e-6))[:, None, None]
    val = kv[i] + (kv[i + 1] - kv[i]) * frac  # (T, 2, 3)
    for s in arms:
        for j, name in enumerate(("flex", "abd", "elbow")):
            out[f"{name}_{'lr'[s]}"] = val[:, s, j]
    return out


def travel_and_turns(rng: np.random.Generator, t: np.ndarray, section_times: list[tuple[float, float]],
                     prob: float, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Travelling and turning while dancing: per section (start, end in seconds), with probability ``prob``,
    either a move across the floor (to a point within ``r_max`` m of the start spot) or a turn (a quarter
    turn and back, or a full turn, over 1-3 s). Returns the floor offset (T, 3) m and the heading (T,) rad."""
    offset = np.zeros((len(t), 3))
    heading = np.zeros(len(t))
    here = np.zeros(2)
    for a, b in section_times:
        if rng.random() >= prob or b - a < 1.0:
            continue
        if rng.random() < 0.5:
            ang = rng.uniform(0, 2 * np.pi)
            target = here + rng.uniform(0.3, 1.0) * r_max * np.array([np.cos(ang), np.sin(ang)])
            if np.linalg.norm(target) > r_max:
                target *= r_max / np.linalg.norm(target)
            s = _smoothstep((t - a) / (b - a))
            offset[:, 0] += (target[0] - here[0]) * s
            offset[:, 2] += (target[1] - here[1]) * s
            here = target
        else:
            dur = min(float(rng.uniform(1.0, 3.0)), b - a)
            t0 = a + float(rng.uniform(0.0, max(0.0, (b - a) - dur)))  # b - dur may round below a
            u = np.clip((t - t0) / dur, 0.0, 1.0)
            if rng.random() < 0.5:  # a full turn
                heading += float(rng.choice([-1.0, 1.0])) * 2 * np.pi * _smoothstep(u)
            else:  # a quarter turn and back
                heading += float(rng.choice([-1.0, 1.0])) * 0.5 * np.pi * np.sin(np.pi * u) ** 2
    return offset, heading
