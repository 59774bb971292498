"""Batch benchmark: ``rhythmicnet render`` on a library of clips, three ways (issue 19).

The clips are cut and looped from the real example clips (the bundled Sports2D jumping jacks and the
squats of ``shared/data/example_video``) to 1280x720, 30 fps, H.264, as ``bench_render.py``'s
``make_clip`` does (the portrait squats are scaled into the frame with side bars, not stretched); each
clip starts at another point of its loop, so no two are the same. Synthetic stick figures would not do:
mediapipe finds no person in them.

The batch runs as a child process (``python -m rhythmicnet render CLIPS -o OUT -q``) with ``--jobs 1``,
``--jobs 2`` and ``--ray --jobs 2`` (a local Ray instance with 2 CPUs), each into a fresh folder. For each
it prints the wall time, the throughput (seconds of video rendered per wall-clock second) and the CPU
utilisation: the CPU time of the child and all its descendants / (cores x wall). The benchmark makes
itself a child subreaper (Linux ``prctl``), so that processes which outlive the command (the fork
server and its workers) are reparented to it and reaped, and their CPU time counts. Ray's processes
escape this count (they are reaped inside Ray), so for Ray the CPU time is the one ``batch.json``
records: the driver's plus each task's own (Ray's raylet and GCS not included). Beside it, "machine
busy" is the share of all cores busy during the run (``/proc/stat``), whoever used them: on a shared
machine it shows how much other work competed.

Goals on the 2-core development machine: ``--jobs 2`` keeps both cores >= 90 % busy and gives >= 1.4x
the throughput of ``--jobs 1``; Ray's throughput is within 10 % of ``--jobs 2``.

Run: ``python benchmarks/bench_batch.py [--clips 8] [--seconds 20] [--instrument piano|guitar|none]
[--modes jobs1 jobs2 ray] [--work DIR] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "offline" / "examples" / "jumping_jacks.mp4"
SQUATS = ROOT.parent / "shared" / "data" / "example_video" / "tfjs_pose_squats" / "pose_squats.mp4"
MODES = {"jobs1": ["--jobs", "1"], "jobs2": ["--jobs", "2"], "ray": ["--ray", "--jobs", "2"]}
GOAL_BUSY = 0.90
GOAL_SPEEDUP = 1.4
GOAL_RAY_SHARE = 0.90
PR_SET_CHILD_SUBREAPER = 36


def make_clip(path: Path, source: Path, seconds: float, offset: float) -> Path:
    """``seconds`` of ``source`` looped, from ``offset`` s in, at 1280x720 30 fps H.264 (no audio)."""
    if not path.exists():
        scale = ("scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2"
                 if source == SQUATS else "scale=1280:720")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-ss", f"{offset}",
                        "-t", f"{seconds}", "-vf", f"{scale},fps=30", "-c:v", "libx264", "-preset", "veryfast",
                        "-crf", "20", "-pix_fmt", "yuv420p", "-an", str(path)], check=True)
    return path


def make_library(work: Path, n: int, seconds: float) -> list[Path]:
    sources = [EXAMPLE, SQUATS] if SQUATS.is_file() else [EXAMPLE]
    clips = []
    for i in range(n):
        src = sources[i % len(sources)]
        name = "jumping" if src == EXAMPLE else "squats"
        clips.append(make_clip(work / f"{name}_{i:02d}_{int(seconds)}s_720p.mp4", src, seconds, offset=1.3 * i))
    return clips


def _become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _reap_orphans(timeout_s: float = 120.0) -> None:
    """Wait for every process reparented to this one (Ray's, the fork server's) to end, and reap it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.1)


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (``/proc/stat``); (0, 0) where there is none."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_mode(mode: str, clips: list[Path], out: Path, instrument: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "rhythmicnet", "render", *map(str, clips), "-o", str(out), "-q",
           "--instrument", instrument, *MODES[mode]]
    cpu0 = _children_cpu()
    busy0, total0 = _machine_ticks()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    busy1, total1 = _machine_ticks()
    _reap_orphans()
    cpu = _children_cpu() - cpu0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{mode}: render exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    summary = json.loads((out / "batch.json").read_text())
    totals = summary["totals"]
    cores = os.cpu_count() or 1
    if mode == "ray":  # see the module notes
        cpu = totals["cpu_seconds"]
    return {"mode": mode, "wall_s": round(wall, 2), "video_s": totals["video_seconds"],
            "done": totals["done"], "failed": totals["failed"],
            "throughput": round(totals["video_seconds"] / wall, 4), "cpu_s": round(cpu, 1), "cores": cores,
            "cpu_utilisation": round(cpu / (cores * wall), 4),
            "machine_busy": round((busy1 - busy0) / (total1 - total0), 4) if total1 > total0 else None,
            "batch_json": {k: totals[k] for k in ("wall_seconds", "throughput", "cpu_utilisation")},
            "errors": [c["error"] for c in summary["clips"] if c["status"] == "failed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8, help="clips in the library (default: 8)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each clip (default: 20)")
    ap.add_argument("--instrument", default="piano", choices=["piano", "guitar", "none"],
                    help="render's --instrument (default: piano)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                    help="which ways to run the batch (default: all three)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_batch_"))
    work.mkdir(parents=True, exist_ok=True)
    if not _become_subreaper():
        print("note: cannot become a child subreaper: CPU time of processes that outlive the command is missed")
    clips = make_library(work, args.clips, args.seconds)
    print(f"{len(clips)} clips of {args.seconds:g} s at 1280x720 30 fps H.264 (jumping jacks and squats, looped); "
          f"{os.cpu_count()} CPU cores; instrument {args.instrument}")
    print(f"{'mode':<8}{'wall s':>9}{'video s':>9}{'video-s/wall-s':>16}{'CPU s':>9}{'CPU busy':>10}"
          f"{'machine busy':>14}  done/failed")
    results = {}
    for mode in args.modes:
        out = work / f"out_{mode}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        r = run_mode(mode, clips, out, args.instrument)
        results[mode] = r
        machine = f"{100 * r['machine_busy']:.0f}%" if r["machine_busy"] is not None else "-"
        print(f"{mode:<8}{r['wall_s']:>9.1f}{r['video_s']:>9.1f}{r['throughput']:>16.3f}{r['cpu_s']:>9.1f}"
              f"{100 * r['cpu_utilisation']:>9.0f}%{machine:>14}  {r['done']}/{r['failed']}", flush=True)
        for e in r["errors"]:
            print(f"  failed: {e}")
    if "jobs1" in results and "jobs2" in results:
        j1, j2 = results["jobs1"], results["jobs2"]
        speedup = j2["throughput"] / j1["throughput"]
        busy_ok = j2["cpu_utilisation"] >= GOAL_BUSY
        print(f"goal: --jobs 2 keeps the cores >= {GOAL_BUSY:.0%} busy: {100 * j2['cpu_utilisation']:.0f} % "
              f"({'met' if busy_ok else 'not met'})")
        print(f"goal: --jobs 2 throughput >= {GOAL_SPEEDUP}x --jobs 1: {speedup:.2f}x "
              f"({'met' if speedup >= GOAL_SPEEDUP else 'not met'})")
    if "ray" in results and "jobs2" in results:
        share = results["ray"]["throughput"] / results["jobs2"]["throughput"]
        print(f"goal: Ray throughput within 10 % of --jobs 2: {share:.2f}x "
              f"({'met' if share >= GOAL_RAY_SHARE else 'not met'})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
