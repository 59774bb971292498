#!/usr/bin/env python3
"""Measure mediapipe's pose noise on the real example clips and on synthetic dancers, side by side.

Issue 16, item 5: the synthetic dancer's observation model (``offline/synthetic_dancer.py``,
``observation_model=2``) is fitted to what mediapipe does on real video. This script prints the
figures it was fitted to and checks the fit, with the measurement functions of ``offline/pose_noise.py``
(jitter: the residual after a Savitzky-Golay fit; left/right swaps and whole-body flips):

* **real clips**, through the project's own pose stage (``offline/pose_estimation.py``, cached under
  ``--cache``):
  - ``jumper``: ``offline/examples/jumping_jacks.mp4``, the man doing jumping jacks, frames before
    his backflip (the first 5 s; backlit, 340 px tall);
  - ``walker``: the same video cropped below the roof line (rows from 430 px; lossless FFV1 copy in
    the cache), so the pose stage picks the woman walking across side-on (350 px tall);
  - ``squats``: ``../shared/data/example_video/tfjs_pose_squats/pose_squats.mp4`` (5 fps, 720 px tall):
    at 5 fps the fit windows span seconds, so its jitter is measured with a 5-frame window and shown
    apart (frames 0.2 s apart make mediapipe's correlated jitter look white).
* **synthetic clips** (``--synthetic`` of them, 30 s each, at a regular 30 fps like the real ones):
  the training config (observation model 2) and the same with generator 1.x's observation model.

Jitter is in figure heights (nose to mid-ankle, 90th percentile over frames), white-equivalent (see
``pose_noise``). The noise fit uses windows of 5, 7 and 9 frames: longer windows see the motion itself.

Usage::

    python scripts/measure_pose_noise.py                 # about a minute on one core (pose on 525 frames)
    python scripts/measure_pose_noise.py --synthetic 40 --cache out/pose_noise
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SQUATS = "data/example_video/tfjs_pose_squats/pose_squats.mp4"  #: in the shared data folder
WALKER_CROP_TOP = 430  #: image rows above this (the roof the jumper stands on) are cut for the walker
JUMPER_FRAMES = 150  #: the jumping jacks, before the backflip
WINDOWS = (5, 7, 9)

Clip = tuple[np.ndarray, np.ndarray, np.ndarray]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jumping-jacks", type=Path, default=REPO / "offline/examples/jumping_jacks.mp4",
                   help="the jumping-jacks video (jumper and walker clips; default: the bundled example)")
    p.add_argument("--squats", type=Path, default=_shared_dir() / SQUATS,
                   help=f"the squats video (default: shared/{SQUATS} in $RHYTHMICNET_SHARED_DIR, ../shared or "
                        "./shared; skipped with a note when missing)")
    p.add_argument("--cache", type=Path, default=REPO / "out/pose_noise",
                   help="folder for the cached keypoints and the walker's cropped video (default: out/pose_noise)")
    p.add_argument("--synthetic", type=int, default=20, help="synthetic clips per observation model (default 20)")
    p.add_argument("--seed", type=int, default=10**7,
                   help="first synthetic seed (default 10000000: not a training seed)")
    return p


def _shared_dir() -> Path:
    """The shared data folder (as tests/conftest.py finds it); ``../shared`` when there is none."""
    env = os.environ.get("RHYTHMICNET_SHARED_DIR")
    for c in ([Path(env)] if env else []) + [REPO.parent / "shared", REPO / "shared"]:
        if (c / "data").is_dir():
            return c
    return REPO.parent / "shared"


def _crop_video(src: Path, dst: Path, top: int) -> Path:
    """A lossless (FFV1) copy of ``src`` without its first ``top`` rows."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(dst), cv2.VideoWriter.fourcc(*"FFV1"), fps, (w, h - top))
            writer.write(frame[top:])
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if writer is None:
        raise SystemExit(f"error: {src}: no decodable frame")
    return dst


def real_clips(args: argparse.Namespace) -> dict[str, Clip]:
    """The real clips' keypoints through the project's pose stage (cached)."""
    from rhythmicnet.errors import RhythmicNetError
    from rhythmicnet.fileio import ensure_output_dir
    from rhythmicnet.offline.pose_estimation import load_or_extract

    out: dict[str, Clip] = {}
    try:
        ensure_output_dir(args.cache)
        jj = load_or_extract(args.jumping_jacks, args.cache / "jumper.keypoints.npz", progress=False)
        out["jumper"] = (jj.keypoints[:JUMPER_FRAMES], jj.confidence[:JUMPER_FRAMES], jj.times[:JUMPER_FRAMES])
        crop = _crop_video(args.jumping_jacks, args.cache / "walker_crop.avi", WALKER_CROP_TOP)
        wk = load_or_extract(crop, args.cache / "walker.keypoints.npz", progress=False)
        out["walker"] = (wk.keypoints, wk.confidence, wk.times)
        if args.squats.is_file():
            sq = load_or_extract(args.squats, args.cache / "squats.keypoints.npz", progress=False)
            out["squats"] = (sq.keypoints, sq.confidence, sq.times)
        else:
            print(f"note: {args.squats} not found, squats skipped", file=sys.stderr)
    except RhythmicNetError as e:
        raise SystemExit(f"error: {e}") from None
    return out


def synthetic_clips(n: int, seed: int, model: int) -> list[Clip]:
    from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
    from rhythmicnet.offline.synthetic_dancer import generate_clip

    cfg = dataclasses.replace(TRAIN_CONFIG, fps=(30.0, 30.0), irregular_times_share=0.0, frame_drop_prob=(0.0, 0.0),
                              observation_model=model,
                              **({} if model >= 2 else {"noise_frac": (0.0005, 0.005)}))
    clips = []
    for k in range(n):
        s = generate_clip(cfg, seed + k).sequence
        clips.append((s.keypoints, s.confidence, s.times))
    return clips


def figures(clips: list[Clip], windows: tuple[int, ...] = WINDOWS) -> dict[str, str]:
    """One column of the table: the figures of a set of clips, formatted."""
    from rhythmicnet.offline import pose_noise as pn

    col: dict[str, str] = {}
    t = clips[0][2]
    fps = float(1.0 / np.median(np.diff(t)))
    col["frames (fps)"] = f"{sum(len(c[2]) for c in clips)} ({fps:.0f})"
    stats = {w: pn.measure_jitter(clips, w, 2) for w in windows}
    w0 = 7 if 7 in windows else windows[0]
    col["figure height px"] = f"{stats[w0].figure_px:.0f}"
    for g in ("head", "torso", "arms", "legs", "all"):
        sig, lag, _ = stats[w0].groups[g]
        col[f"jitter {g} (w{w0})"] = f"{1000 * sig:.2f}e-3"
    for w in windows:
        sig, lag, _ = stats[w].groups["all"]
        col[f"all: jitter, lag-1 (w{w})"] = f"{1000 * sig:.2f}e-3 {lag:+.2f}"
    for lo, hi, sig, n in stats[w0].by_confidence:
        col[f"jitter, conf {lo:.2f}-{hi:.2f}"] = f"{1000 * sig:.2f}e-3 n={n}" if n else "-"
    if len(windows) >= 2:
        fit = pn.fit_noise_model(windows, np.array([stats[w].groups["all"][0] for w in windows]),
                                 np.array([stats[w].groups["all"][1] for w in windows]), fps)
        col["fit: innovation/frame"] = f"{1000 * fit.sigma * np.sqrt(1 - fit.a**2):.2f}e-3 a={fit.a:.2f}"
    conf = np.concatenate([c[1] for c in clips])
    conf = conf[conf.max(axis=1) > 0]
    for g in ("head", "torso", "arms", "legs"):
        x = conf[:, list(pn.JOINT_GROUPS[g])]
        x = x[x > 0]
        col[f"conf {g}: p10 / median"] = f"{np.percentile(x, 10):.2f} / {np.median(x):.2f}"
    sw = pn.measure_swaps(clips)
    col["swapped pair-frames"] = f"{100 * sw.rate:.2f} %"
    col["flips per minute"] = f"{sw.flips_per_minute:.1f} ({len(sw.flip_durations_s)} in {sw.seen_seconds:.0f} s)"
    col["flip length, s"] = (f"{np.mean(sw.flip_durations_s):.3f} (max {max(sw.flip_durations_s):.3f})"
                             if sw.flip_durations_s else "-")
    col["time flipped"] = f"{100 * sw.flip_share:.2f} %"
    return col


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.synthetic < 1:
        raise SystemExit("error: --synthetic must be at least 1")
    real = real_clips(args)
    columns: dict[str, dict[str, str]] = {}
    for name in ("jumper", "walker"):
        columns[name] = figures([real[name]])
    columns["real 30 fps"] = figures([real["jumper"], real["walker"]])
    columns["synth model 2"] = figures(synthetic_clips(args.synthetic, args.seed, 2))
    columns["synth model 1"] = figures(synthetic_clips(args.synthetic, args.seed, 1))
    rows = list(columns["real 30 fps"])
    width = max(len(r) for r in rows)
    print(f"{'':{width}}  " + "  ".join(f"{c:>22}" for c in columns))
    for r in rows:
        print(f"{r:{width}}  " + "  ".join(f"{columns[c].get(r, '-'):>22}" for c in columns))
    if "squats" in real:
        sq = figures([real["squats"]], windows=(5,))
        print("\nsquats (5 fps; 5-frame window = 1 s, so its jitter is not comparable with the 30 fps columns):")
        for r, v in sq.items():
            print(f"  {r:{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
