"""The ``bench`` command: ``rhythmicnet bench models`` times every live network on every backend."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: The items of ``export.benchmark.MODELS`` (repeated here so that building the parser imports no torch;
#: tests/export/test_bench_models.py checks that the two agree).
MODELS = ("beat_step", "beat_window", "hits_step", "music_step", "drum_bar", "music_bar_short", "music_bar_long",
          "frame_chain")
QUICK_SECONDS, DEFAULT_SECONDS = 2.0, 8.0


def add_bench_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure the speed of the live networks on this machine",
                       description="Benchmarks of this machine. 'models': per-call time of every live network on "
                                   "every backend, idle and with one core busy.")
    what = p.add_subparsers(dest="bench", metavar="WHAT", required=True)
    m = what.add_parser(
        "models", help="time every live network x backend (torch, ONNX Runtime; CUDA too when usable)",
        description="Time every live network on every backend: the beat step (one frame), the beat net over a 30 s "
                    "window, one hits-transformer and one Transformer-XL decoder step, a drum bar (DrumPerformer."
                    "next_bar), a short (36-token) and a long (127-token) piano bar, and the whole per-frame chain "
                    "after pose (running normalisation, beat features, beat step, fixed-lag tracker, movement "
                    "onset) on a synthetic dancer. Each runs torch eager (1 thread) and ONNX Runtime on the CPU "
                    "(plus both on CUDA when a GPU is usable), idle and again while a second process keeps one "
                    "core busy. Prints one row per record (wall and CPU time per call, median and p99, calls/s, "
                    "threads, 1-minute load average) and the PASS/MISS goal checks of this run.")
    m.add_argument("--quick", action="store_true",
                   help=f"{QUICK_SECONDS:g} s per model, backend and load instead of {DEFAULT_SECONDS:g} s")
    m.add_argument("--tiny", action="store_true",
                   help="random-initialised test-size models of the same architectures instead of the shipped "
                        "weights, exported to a temporary folder (a smoke test: the figures mean nothing)")
    m.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the records and goal checks to FILE (JSON, written atomically)")
    m.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto = also time torch/ONNX Runtime on CUDA when a GPU is usable; cpu = CPU backends only; "
                        "cuda = require a usable GPU (default: auto)")
    m.add_argument("--seconds", type=float, default=None, metavar="S",
                   help="seconds of timed calls per model, backend and load (overrides --quick; at least "
                        "5 calls are timed whatever S)")
    m.add_argument("--only", default=None, metavar="MODEL[,MODEL...]",
                   help=f"time only these (comma-separated) of: {', '.join(MODELS)} (default: all)")
    m.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    m.set_defaults(func=_run_bench_models)
    lv = what.add_parser(
        "live", help="the live engine: beat timing against ground truth (--beats) or latency over a looped video",
        description="Without --beats: 'rhythmicnet live --video <bundled clip> --loop' for --seconds into a virtual "
                    "MIDI port (pose on every frame, the accompaniment in its own process); prints per-stage time "
                    "per frame, capture -> MIDI send of movement-driven hits, dropped frames, late events, hanging "
                    "notes, CPU load, the camera -> sound budget and the goal checks. With --beats: the 200 frozen "
                    "held-out synthetic clips replayed as keypoint streams with 40 ms pose latency through the "
                    "engine on a simulated clock; the beat grid the engine sent is scored against the true beats "
                    "from 6 s on (mir_eval F, median and p90 of |error|).")
    lv.add_argument("--beats", action="store_true", help="beat timing on the held-out clips instead of latency")
    lv.add_argument("--clips", type=int, default=None, metavar="N",
                    help="with --beats: the first N clips (default: all 200)")
    lv.add_argument("--pose-latency", type=float, default=40.0, metavar="MS",
                    help="with --beats: simulated pose latency (default: 40 ms)")
    lv.add_argument("--seconds", type=float, default=300.0, metavar="S",
                    help="without --beats: how long to play (default: 300 s)")
    lv.add_argument("--video", type=Path, default=None, metavar="FILE",
                    help="without --beats: the video to loop (default: the bundled jumping_jacks.mp4)")
    lv.add_argument("--midi-api", choices=["auto", "alsa", "jack", "coremidi", "winmm"], default="auto",
                    help="MIDI API of the virtual port (default: the platform's)")
    lv.add_argument("--backend", choices=["onnx", "torch"], default="onnx", help="model backend (default: onnx)")
    lv.add_argument("--reserve-core", action="store_true",
                    help="without --beats: as live --reserve-core (a core of its own for the frame loop)")
    lv.add_argument("--no-rt-priority", dest="rt_priority", action="store_false",
                    help="without --beats: as live --no-rt-priority (the frame loop at normal priority)")
    lv.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the figures to FILE (JSON)")
    lv.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    lv.set_defaults(func=_run_bench_live)


def _run_bench_models(args: argparse.Namespace) -> int:
    import json
    import platform
    import time

    import torch

    from rhythmicnet import __version__
    from rhythmicnet.errors import InputError, OutputError
    from rhythmicnet.export import benchmark
    from rhythmicnet.export.benchmark import format_table, goal_checks, run_benchmarks
    from rhythmicnet.fileio import write_text_atomic

    if args.seconds is not None and not args.seconds > 0:
        raise InputError(f"--seconds must be > 0, got {args.seconds}")
    only = None
    if args.only:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in only if s not in MODELS]
        if unknown:
            raise InputError(f"--only: unknown model(s) {', '.join(unknown)}; valid: {', '.join(MODELS)}")
    if args.json is not None:  # fail now, not after minutes of timing
        folder = args.json.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{args.json}: cannot write (folder {folder} missing or not writable)")

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"bench: {line}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    records = run_benchmarks(args.quick, args.tiny, device=args.device, seconds=args.seconds, models=only,
                             progress=progress)
    checks = goal_checks(records)
    print(format_table(records))
    print()
    print("goal checks (this run):")
    for line in checks:
        print(f"  {line}")
    if args.json is not None:
        import onnxruntime

        seconds = args.seconds if args.seconds is not None else (
            benchmark.QUICK_SECONDS if args.quick else benchmark.DEFAULT_SECONDS)
        doc = {
            "records": records,
            "goal_checks": checks,
            "settings": {"quick": args.quick, "tiny": args.tiny, "device": args.device, "seconds": seconds,
                         "only": only},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "torch": torch.__version__,
                        "onnxruntime": onnxruntime.__version__, "rhythmicnet": __version__},
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_text_atomic(args.json, json.dumps(doc, indent=1) + "\n")
        progress(f"wrote {args.json}")
    return 0


def _run_bench_live(args: argparse.Namespace) -> int:
    import json

    from rhythmicnet.errors import InputError
    from rhythmicnet.fileio import write_text_atomic
    from rhythmicnet.realtime import live_benchmark as lb

    if args.video is not None and not args.video.is_file():
        raise InputError(f"{args.video}: file not found")
    if args.clips is not None and args.clips < 1:
        raise InputError(f"--clips must be >= 1, got {args.clips}")

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"bench live: {line}", file=sys.stderr, flush=True)

    if args.beats:
        r = lb.beat_timing(args.clips, pose_latency_s=args.pose_latency / 1000, backend=args.backend,
                           progress=progress)
        print(f"beat timing, {r.clips} held-out clips, {args.pose_latency:g} ms pose latency, from "
              f"{lb.SCORE_FROM_S:g} s: F {r.f_measure:.1f}, median |error| {r.median_ms:.1f} ms, "
              f"p90 {r.p90_ms:.1f} ms; first note {r.first_note_s:.1f} s after the first frame (median)")
        checks = lb.beat_timing_goals(r)
        doc: dict = {"beat_timing": r.as_dict()}
    else:
        progress(f"playing {args.video or lb.bundled_clip()} for {args.seconds:g} s")
        stats = lb.latency(args.seconds, video=str(args.video) if args.video else None, backend=args.backend,
                           midi_api=args.midi_api, reserve_core=args.reserve_core,
                           rt_priority=args.rt_priority)
        print(lb.format_latency(stats))
        checks = lb.latency_goals(stats)
        doc = {"latency": stats}
    print("goal checks (this run):")
    for line in checks:
        print(f"  {line}")
    if args.json is not None:
        doc["goal_checks"] = checks
        write_text_atomic(args.json, json.dumps(doc, indent=1) + "\n")
    return 0
