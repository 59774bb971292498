"""Render benchmark: stage seconds and real-time factors of ``rhythmicnet render`` on a 30 s clip.

The clip is the bundled example (Sports2D jumping jacks) looped to 30 s and scaled to 1280x720, 30 fps,
H.264 (made once with ffmpeg into the work folder). Prints, per stage: seconds and the real-time factor
(stage seconds / clip seconds; < 1 is faster than real time), and the goals: pose <= 1x real time at
720p; everything after pose and video encoding <= 0.3x.

Run: ``python benchmarks/bench_render.py [--seconds 30] [--instrument piano|guitar|none] [--work DIR]``.
Uses the shipped weights; without Drum2Music weights the accompaniment is skipped (said in the output).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from rhythmicnet.models.drum2music import music_model_name
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline.render import RenderConfig, render

EXAMPLE = Path(__file__).resolve().parents[1] / "offline" / "examples" / "jumping_jacks.mp4"


def make_clip(path: Path, seconds: float) -> Path:
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(EXAMPLE), "-t", f"{seconds}",
                        "-vf", "scale=1280:720,fps=30", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                        "-pix_fmt", "yuv420p", "-an", str(path)], check=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="clip length (default: 30)")
    ap.add_argument("--instrument", default="piano", choices=["piano", "guitar", "none"])
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--weights", type=Path, default=None, help="weights folder (default: the shipped models/weights)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_render_"))
    work.mkdir(parents=True, exist_ok=True)
    clip = make_clip(work / f"example_{int(args.seconds)}s_720p.mp4", args.seconds)
    instrument = args.instrument
    weights = args.weights or WEIGHTS_DIR
    if instrument != "none" and music_model_name(weights, instrument) is None:
        print("no Drum2Music weights installed: accompaniment skipped (--instrument none)")
        instrument = "none"
    out = work / "out"
    res = render(clip, out, RenderConfig(instrument=instrument, use_cache=False, weights_dir=str(weights)),
                 progress=False)
    st = res.record["stage_seconds"]
    dur = res.record["duration_s"]
    print(f"clip: {clip.name}, {dur:.1f} s, 1280x720 30 fps H.264; {os.cpu_count()} CPU cores; "
          f"instrument {instrument}")
    print(f"{'stage':<16}{'seconds':>10}{'x real time':>14}")
    for k, v in st.items():
        print(f"{k:<16}{v:>10.2f}{v / dur:>14.3f}")
    after = sum(v for k, v in st.items() if k not in ("keypoints", "video"))
    print(f"pose (keypoints): {st['keypoints'] / dur:.3f}x real time (goal <= 1)")
    print(f"after pose, without video encoding: {after:.2f} s = {after / dur:.3f}x real time (goal <= 0.3)")
    print(f"video encoding + mux: {st['video'] / dur:.3f}x real time")


if __name__ == "__main__":
    main()
