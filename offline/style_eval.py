"""Evaluate the sudden-movement detectors on the same synthetic movers.

Three detectors are scored against known arm jerks (``synthetic_motion``): the paper's offline style
stream (whole-clip top 10 %), its causal variant (running threshold), and the live movement-onset
detector. Figures: hit rate, false alarms per minute, and timing (mean |error| for the style streams,
whose events are times; latency in frames after the movement's first frame for the onset detector).

A style event hits a jerk when it is within ``style_tol_s`` (default 0.17 s: half the 4-sample hop at
15 fps plus one model frame); an onset hits when it comes 0..2 frames after the jerk starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rhythmicnet.models.movement_onset import MovementOnsetDetector
from rhythmicnet.models.skeleton import normalize_clip
from rhythmicnet.models.style_stream import StyleStream, extract_style
from rhythmicnet.offline.synthetic_motion import SyntheticMotionConfig, random_jerk_times, synthesize


@dataclass(frozen=True)
class DetectorScore:
    name: str
    hits: int
    targets: int
    false_alarms: int
    minutes: float
    timing: float  # mean |error| s (style) or mean latency frames (onset)
    timing_unit: str

    @property
    def hit_rate(self) -> float:
        return self.hits / self.targets if self.targets else float("nan")

    @property
    def false_alarms_per_minute(self) -> float:
        return self.false_alarms / self.minutes if self.minutes else float("nan")

    def row(self) -> str:
        return (f"{self.name:<22} hit rate {self.hit_rate:6.1%}  false alarms/min {self.false_alarms_per_minute:5.2f}  "
                f"timing {self.timing:.3f} {self.timing_unit}")


def _match_times(events: np.ndarray, targets: np.ndarray, tol: float) -> tuple[int, int, list[float]]:
    hits, errors = 0, []
    for t in targets:
        d = np.abs(events - t)
        if len(d) and d.min() <= tol:
            hits += 1
            errors.append(float(d.min()))
    fa = sum(1 for e in events if not np.any(np.abs(targets - e) <= tol))
    return hits, fa, errors


def evaluate_detectors(seeds: tuple[int, ...] = (1, 2, 3, 4), duration_s: float = 60.0, jerks_per_clip: int = 8,
                       bounce_px: float = 3.0, style_tol_s: float = 0.17) -> list[DetectorScore]:
    """Score the three detectors on ``len(seeds)`` synthetic clips."""
    names = ("style (offline)", "style (causal)", "movement onset")
    acc: dict[str, list[float]] = {k: [0.0, 0.0, 0.0, 0.0] for k in names}  # hits, targets, false alarms, minutes
    timing: dict[str, list[float]] = {k: [] for k in acc}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        jerks = random_jerk_times(duration_s, jerks_per_clip, 3.0, rng)
        mover = synthesize(SyntheticMotionConfig(duration_s=duration_s, jerk_times=jerks, bounce_px=bounce_px,
                                                 seed=seed))
        seq = mover.sequence
        kp = normalize_clip(seq.keypoints, seq.confidence)
        for name, events in (
            ("style (offline)", extract_style(kp, seq.confidence, seq.times).times),
            ("style (causal)", StyleStream().process_offline(kp, seq.confidence, seq.times)),
        ):
            hits, fa, errs = _match_times(events, mover.jerk_times, style_tol_s)
            a = acc[name]
            a[0] += hits
            a[1] += len(mover.jerk_times)
            a[2] += fa
            a[3] += duration_s / 60
            timing[name] += errs
        onsets = np.flatnonzero(MovementOnsetDetector().process_offline(kp, seq.confidence))
        a = acc["movement onset"]
        for f in mover.jerk_frames:
            lag = onsets - f
            lag = lag[(lag >= 0) & (lag <= 2)]
            if len(lag):
                a[0] += 1
                timing["movement onset"].append(float(lag.min()))
        a[1] += len(mover.jerk_frames)
        a[2] += sum(1 for o in onsets if not np.any((o - mover.jerk_frames >= 0) & (o - mover.jerk_frames <= 2)))
        a[3] += duration_s / 60
    out = []
    for name, (n_hit, n_target, n_fa, minutes) in acc.items():
        unit = "frames latency" if name == "movement onset" else "s mean |error|"
        t = float(np.mean(timing[name])) if timing[name] else float("nan")
        out.append(DetectorScore(name, int(n_hit), int(n_target), int(n_fa), float(minutes), t, unit))
    return out
