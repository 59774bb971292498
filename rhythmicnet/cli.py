"""The ``rhythmicnet`` command: one entry point that dispatches to the offline and live parts.

User-facing problems (``RhythmicNetError``) print one line — ``rhythmicnet: error: <file>: <problem>``
— and exit with status 2, without a traceback; Ctrl-C exits with 130 and leaves no half-written file
(every output is written atomically).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rhythmicnet import __version__
from rhythmicnet.errors import InputError, RhythmicNetError

log = logging.getLogger("rhythmicnet")


def _tempo_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split("-"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX in BPM, e.g. 60-180; got {text!r}") from e
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError(f"tempo range must satisfy 0 < MIN < MAX; got {text!r}")
    return lo, hi


def _add_rhythm_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rhythm",
        help="find the beats, style events and 16th-note rhythm of a video or keypoint file",
        description=(
            "Video2Rhythm on a recorded clip: body keypoints (mediapipe, cached beside the outputs) -> beat "
            "activation -> DBN beat tracking, plus the paper's style stream -> rhythm on a 16th-note grid. "
            "Writes OUTDIR/rhythm.json and OUTDIR/rhythm.png."
        ),
    )
    p.add_argument("input", type=Path, metavar="INPUT",
                   help="a video file (mp4, mov, avi, webm, ...) or a keypoint file (.npz or .json with "
                        "keypoints (T,17,2) px, confidence (T,17), times (T,) s)")
    p.add_argument("-o", "--output", type=Path, default=Path("out"), metavar="OUTDIR",
                   help="folder for rhythm.json, rhythm.png and the keypoint cache (default: ./out)")
    p.add_argument("--beat-model", choices=["onset"], default="onset",
                   help="beat activation: 'onset' = motion onset envelope (kinematic offsets), the baseline "
                        "(default: onset)")
    p.add_argument("--tempo-range", type=_tempo_range, default=(60.0, 180.0), metavar="MIN-MAX",
                   help="tempo range of the beat tracker in BPM (default: 60-180)")
    p.add_argument("--no-cache", action="store_true",
                   help="run pose estimation again even if OUTDIR has keypoints cached for this video")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary, errors only")
    p.set_defaults(func=_run_rhythm)


def _load_sequence(path: Path, outdir: Path, *, use_cache: bool, progress: bool):
    from rhythmicnet.offline.keypoint_io import is_keypoint_file, load_keypoints
    from rhythmicnet.offline.pose_estimation import extract_keypoints, load_or_extract

    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a video or keypoint file")
    if is_keypoint_file(path):
        return load_keypoints(path)
    if use_cache:
        return load_or_extract(path, outdir / f"{path.stem}.keypoints.npz", progress=progress)
    return extract_keypoints(path, progress=progress)


def _run_rhythm(args: argparse.Namespace) -> int:
    from rhythmicnet.fileio import ensure_output_dir
    from rhythmicnet.offline.rhythm_report import plot_rhythm, rhythm_record, write_rhythm_json
    from rhythmicnet.offline.video2rhythm import Video2RhythmConfig, analyse

    if not args.input.exists():
        raise InputError(f"{args.input}: file not found")
    outdir = ensure_output_dir(args.output)
    t0 = time.perf_counter()
    seq = _load_sequence(args.input, outdir, use_cache=not args.no_cache, progress=not args.quiet)
    t_pose = time.perf_counter() - t0
    lo, hi = args.tempo_range
    analysis = analyse(seq, Video2RhythmConfig(beat_model=args.beat_model, min_bpm=lo, max_bpm=hi),
                       source=str(args.input))
    record = rhythm_record(analysis, str(args.input), seq.fps)
    record["stage_seconds"] = {"keypoints": round(t_pose, 4), **record["stage_seconds"]}
    t0 = time.perf_counter()
    plot_rhythm(outdir / "rhythm.png", analysis, title=args.input.name)
    record["stage_seconds"]["plot"] = round(time.perf_counter() - t0, 4)
    write_rhythm_json(outdir / "rhythm.json", record)
    if not args.quiet:
        tempo = f"{analysis.tempo_bpm:.1f} BPM" if record["tempo_bpm"] else "no tempo"
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in record["stage_seconds"].items())
        print(f"{args.input.name}: {seq.num_frames} frames at {seq.fps:.1f} fps -> {tempo}, "
              f"{len(analysis.beats)} beats, {len(analysis.style.times)} style events, "
              f"rhythm density {analysis.rhythm.density():.0%}")
        print(f"time per stage: {stages}")
        print(f"wrote {outdir / 'rhythm.json'} and {outdir / 'rhythm.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rhythmicnet",
        description=(
            "RhythmicNet Live: turn human movement into music. Offline, score a recorded video; live, play "
            "a webcam dancer into a DAW over MIDI."
        ),
    )
    parser.add_argument("--version", action="version", version=f"rhythmicnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (stages, devices, timings)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_rhythm_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except RhythmicNetError as e:
        print(f"rhythmicnet: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rhythmicnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
