"""Figures for the rhythm stage on this machine: per-frame cost of the causal stages (median, p99),
offline stage times on a 30 s clip, and the sudden-movement detectors' quality on synthetic movers.

Run: ``python benchmarks/bench_rhythm.py [--video PATH]`` (with --video, pose estimation is timed too).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rhythmicnet.models.beat_hmm import OnlineBeatTracker
from rhythmicnet.models.fixed_lag_beats import FixedLagBeatTracker
from rhythmicnet.models.movement_onset import MovementOnsetDetector
from rhythmicnet.models.onset_activation import onset_activation
from rhythmicnet.models.skeleton import normalize_clip
from rhythmicnet.models.style_stream import StyleStream
from rhythmicnet.offline.style_eval import evaluate_detectors
from rhythmicnet.offline.synthetic_motion import SyntheticMotionConfig, random_jerk_times, synthesize
from rhythmicnet.offline.video2rhythm import Video2RhythmConfig, analyse


def _per_frame(fn, n: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out[i] = time.perf_counter() - t0
    return out * 1e6  # microseconds


def _row(name: str, us: np.ndarray) -> str:
    return f"  {name:<34} median {np.median(us):8.1f} us   p99 {np.percentile(us, 99):8.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video", help="also time pose estimation on this video")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    mover = synthesize(SyntheticMotionConfig(duration_s=30, jerk_times=random_jerk_times(30, 4, 3.0, rng), seed=0))
    seq = mover.sequence
    kp = normalize_clip(seq.keypoints, seq.confidence)
    n = seq.num_frames

    print(f"causal stages, per 30 fps frame ({n} frames):")
    onset = MovementOnsetDetector()
    print(_row("movement onset (offsets + threshold)", _per_frame(lambda i: onset.step(kp[i], seq.confidence[i]), n)))
    style = StyleStream()
    print(_row("style stream (causal)", _per_frame(lambda i: style.step(kp[i], seq.confidence[i], seq.times[i]), n)))
    act = onset_activation(kp, seq.confidence)
    tracker = OnlineBeatTracker()
    print(_row("beat tracker forward step", _per_frame(lambda i: tracker.process_online(act[i : i + 1]), n)))
    lagged = FixedLagBeatTracker()
    lag_us = _per_frame(lambda i: lagged.process_online(act[i : i + 1]), n)
    print(_row(f"beat tracker fixed-lag step ({lagged.lag} fr)", lag_us))

    print("offline Video2Rhythm on a 30 s clip (onset beat model):")
    res = analyse(seq, Video2RhythmConfig(beat_model="onset"))
    for k, v in res.stage_seconds.items():
        print(f"  {k:<18} {v * 1000:8.2f} ms")
    print(f"  tempo {res.tempo_bpm:.1f} BPM (true 120), {len(res.beats)} beats, {len(res.style.times)} style events")

    print("sudden-movement detectors, 4 synthetic 60 s movers, 8 arm jerks each, 3 px bounce:")
    for s in evaluate_detectors():
        print("  " + s.row())

    if args.video:
        from rhythmicnet.offline.pose_estimation import extract_keypoints

        t0 = time.perf_counter()
        vs = extract_keypoints(args.video, progress=False)
        dt = time.perf_counter() - t0
        print(f"pose estimation: {vs.num_frames} frames in {dt:.2f} s = {1000 * dt / vs.num_frames:.1f} ms/frame "
              f"({vs.duration / dt:.2f}x real time)")


if __name__ == "__main__":
    main()
