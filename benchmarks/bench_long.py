"""Long-clip benchmark: peak memory and time per stage of ``rhythmicnet render`` on 1, 10 and 60 minutes.

The clips are synthetic dancers (``offline/synthetic_dancer.py``) as keypoint files: 1-minute pieces
(30 fps, 640x480, a new dancer, tempo and camera each minute) generated one at a time and joined, so
making a clip never holds more than one piece's generator state. Each clip is rendered by
:func:`rhythmicnet.offline.render.render` in a fresh child process (``--child``) that samples its own
resident set size every 20 ms; the parent reads the child's peak RSS from ``wait4`` (the kernel's
``ru_maxrss``). Printed per length: peak RSS, and per stage its seconds and the highest RSS sampled
while it ran; then the goals: peak <= 2 GB at every length, the longest clip's time <= 70x the
1-minute time per minute ratio (linear), and every output written (MIDI, WAV, video, report, plot).

Measured (issue 17; 2 shared CPU cores, one thread, piano): peak RSS 0.56 / 0.59 / 0.75 GB at 1 / 10 / 60 min
(before: 1.95 GB at 10 min, the WAVs' whole arrays; the beat net alone had needed ~25 GB at 10 min). Time,
``--minutes 1 60 --bracket`` pinned to one core (``taskset -c 0``) while other jobs loaded the machine
(load average ~10): CPU time 20.7 s and 27.8 s for the two 1-minute renders, 1175.6 s for the 60-minute one:
48.5x their mean (56.8x the lower). Wall time is no measure under such load (the two 1-minute renders took
18.5 s and 176.8 s); an earlier run on a quieter machine gave 1415 s for 60 minutes, 71.9x a 1-minute run
made at a quieter moment and 56.8x one under the same load. The video stage (skeleton drawing + H.264) is
most of it. Every output was written at every length.

Run: ``python benchmarks/bench_long.py [--minutes 1 10 60] [--bracket] [--instrument piano|guitar|none]
[--work DIR] [--json FILE]``. ``--bracket`` renders the shortest clip again at the end and takes the mean
of both runs; the ratio is printed for wall time and for CPU time (render + ffmpeg).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

GOAL_PEAK_GB = 2.0
#: The 60-minute render may take at most this many times the 1-minute one (linear with some slack).
GOAL_TIME_RATIO = 70.0
STAGES = ("keypoints", "rhythm", "drums", "accompaniment", "midi", "synthesis", "video", "plot")


def make_clip(path: Path, minutes: float, seed: int = 0) -> Path:
    """A synthetic-dancer keypoint file of ``minutes`` minutes (1-minute pieces joined end to end)."""
    from rhythmicnet.models.keypoints import KeypointSequence
    from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
    from rhythmicnet.offline.keypoint_io import save_keypoints
    from rhythmicnet.offline.synthetic_dancer import generate_clip

    if path.exists():
        return path
    piece_s = min(60.0, minutes * 60.0)  # a clip under a minute is one piece
    n_pieces = max(1, int(round(minutes * 60.0 / piece_s)))
    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(piece_s, piece_s), fps=(30.0, 30.0), common_fps_share=1.0,
                              irregular_times_share=0.0, image_sizes=((640, 480),), person_lost_share=0.0)
    kps, confs, times = [], [], []
    t0 = 0.0
    for i in range(n_pieces):
        s = generate_clip(cfg, seed * 100_000 + i).sequence
        kps.append(np.asarray(s.keypoints, np.float32))
        confs.append(np.asarray(s.confidence, np.float32))
        times.append(np.asarray(s.times, np.float64) + t0)
        t0 = float(times[-1][-1]) + 1.0 / 30.0
    seq = KeypointSequence(np.concatenate(kps), np.concatenate(confs), np.concatenate(times), image_size=(640, 480))
    return save_keypoints(path, seq)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(clip: Path, out: Path, instrument: str) -> None:
    """Render ``clip`` into ``out`` and print one JSON line: stage seconds and peak RSS sampled per stage."""
    import torch

    torch.set_num_threads(1)
    from rhythmicnet.offline.render import RenderConfig, render

    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), _rss_bytes()))
            stop.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    th.start()
    res = render(clip, out, RenderConfig(instrument=instrument, use_cache=False), progress=False)
    stop.set()
    th.join()
    total = time.perf_counter() - start
    stage_s = res.record["stage_seconds"]
    # the stages run one after the other from `start`: give each sample to the stage it fell in
    peaks: dict[str, int] = {}
    edge = start
    bounds = []
    for k, v in stage_s.items():
        bounds.append((k, edge, edge + v))
        edge += v
    for t, rss in samples:
        for k, a, b in bounds:
            if a <= t < b:
                peaks[k] = max(peaks.get(k, 0), rss)
                break
    outputs = {k: (out / v).stat().st_size for k, v in res.record["outputs"].items() if (out / v).exists()}
    print(json.dumps({"stage_seconds": stage_s, "stage_peak_rss": peaks, "total_s": total,
                      "duration_s": res.record["duration_s"], "bars": res.record["bars"],
                      "beats": res.record["beat_count"], "outputs": outputs}))


def run_one(clip: Path, out: Path, instrument: str) -> dict[str, Any]:
    """Render in a child process; its own peak RSS (bytes) comes from ``wait4``."""
    cmd = [sys.executable, __file__, "--child", str(clip), str(out), instrument]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile("w+") as so:
        proc = subprocess.Popen(cmd, stdout=so, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        text = so.read()
    if proc.returncode != 0:
        raise RuntimeError(f"render of {clip.name} failed ({proc.returncode}):\n{err[-3000:]}")
    rec = json.loads(text.strip().splitlines()[-1])
    rec["peak_rss"] = usage.ru_maxrss * 1024  # KiB on Linux
    # CPU seconds of the render and the ffmpeg it waited for: far less sensitive than wall time to
    # other work on a shared machine, so the linearity check is made on both
    rec["cpu_s"] = usage.ru_utime + usage.ru_stime
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    ap.add_argument("--instrument", default="piano", choices=["piano", "guitar", "none"])
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--bracket", action="store_true",
                    help="render the shortest clip again after the others, and compare the longest with the mean "
                         "of the two shortest runs (the machine's speed drifts over an hour)")
    ap.add_argument("--child", nargs=3, metavar=("CLIP", "OUT", "INSTRUMENT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.child[2])
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_long_"))
    work.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[float, dict[str, Any]]] = []
    order = list(args.minutes) + ([min(args.minutes)] if args.bracket else [])
    for m in order:
        t0 = time.perf_counter()
        clip = make_clip(work / f"dancer_{m:g}min.npz", m)
        gen_s = time.perf_counter() - t0
        rec = run_one(clip, work / f"out_{m:g}min", args.instrument)
        rec["generate_s"] = gen_s
        runs.append((m, rec))
        print(f"-- {m:g} min: {rec['duration_s']:.0f} s, {rec['beats']} beats, {rec['bars']} bars; peak RSS "
              f"{rec['peak_rss'] / 2**30:.2f} GB; render {rec['total_s']:.1f} s (clip made in {gen_s:.1f} s)",
              flush=True)
        print(f"   {'stage':<15}{'seconds':>10}{'x real time':>13}{'peak RSS GB':>13}")
        for k, v in rec["stage_seconds"].items():
            peak = rec["stage_peak_rss"].get(k)
            peak_s = f"{peak / 2**30:13.2f}" if peak else f"{'-':>13}"
            print(f"   {k:<15}{v:>10.2f}{v / rec['duration_s']:>13.3f}{peak_s}", flush=True)
        print("   outputs: " + ", ".join(f"{k} {v / 2**20:.1f} MB" for k, v in rec["outputs"].items()), flush=True)
    print(f"{'minutes':>8}{'peak RSS GB':>13}{'render s':>10}{'CPU s':>9}{'s per min':>11}")
    for m, rec in runs:
        print(f"{m:>8g}{rec['peak_rss'] / 2**30:>13.2f}{rec['total_s']:>10.1f}{rec['cpu_s']:>9.1f}"
              f"{rec['total_s'] / m:>11.1f}")
    peak_ok = all(r["peak_rss"] <= GOAL_PEAK_GB * 2**30 for _, r in runs)
    print(f"goal: peak RSS <= {GOAL_PEAK_GB:g} GB at every length: {'met' if peak_ok else 'NOT met'}")
    lo, hi = min(m for m, _ in runs), max(m for m, _ in runs)
    if hi > lo:
        allowed = GOAL_TIME_RATIO * hi / 60.0 if lo == 1.0 else GOAL_TIME_RATIO / 60.0 * hi / lo
        for key, what in (("total_s", "wall"), ("cpu_s", "CPU")):
            short = [r[key] for m, r in runs if m == lo]
            ratio = float(np.mean([r[key] for m, r in runs if m == hi])) / float(np.mean(short))
            print(f"goal: {hi:g} min takes {ratio:.1f}x the {lo:g} min {what} time (mean of {len(short)} "
                  f"{lo:g}-min run{'s' if len(short) > 1 else ''}: {', '.join(f'{v:.1f}' for v in short)} s) "
                  f"(<= {allowed:.1f}x): {'met' if ratio <= allowed else 'NOT met'}")
    want = {"drums_midi", "soundtrack_midi", "soundtrack_wav", "video", "rhythm_png", "report"}
    for m, rec in runs:
        missing = want - set(rec["outputs"])
        print(f"{m:g} min outputs complete: {'yes' if not missing else 'NO, missing ' + ', '.join(sorted(missing))}")
    if args.json:
        args.json.write_text(json.dumps([{"minutes": m, **r} for m, r in runs], indent=1) + "\n")


if __name__ == "__main__":
    main()
