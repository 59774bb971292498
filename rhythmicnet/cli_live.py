"""``rhythmicnet live``: a video, camera or keypoint stream in, drums and accompaniment out as live MIDI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rhythmicnet.cli_backend import add_backend_args


def add_live_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live", help="play a dancer (camera, video or keypoint stream) into a DAW as live MIDI",
        description="Live: frames in (a camera, a video played at its real rate as if it were a camera, or a keypoint "
                    "file replayed at its timestamps), beats and movement onsets out of the causal Video2Rhythm "
                    "stage, a bar of drums (Rhythm2Drum) and of piano or guitar (Drum2Music) planned a bar ahead "
                    "and played on the dancer's beat grid through a MIDI port (by default a virtual port named "
                    "RhythmicNet): drums on channel 10, the accompaniment on channel 1. Nothing plays for the "
                    "first 4 beats the tracker decides (about 3-4 s). All notes off on every stop.")
    src = p.add_mutually_exclusive_group(required=False)
    src.add_argument("--video", type=Path, default=None, metavar="FILE",
                     help="a video played at its real frame rate as if it were a camera (pose runs on every frame)")
    src.add_argument("--camera", type=int, default=None, metavar="N", help="OpenCV camera index")
    src.add_argument("--keypoints", type=Path, default=None, metavar="FILE",
                     help="a keypoint file (.npz/.json) replayed at its timestamps (see --pose-latency)")
    p.add_argument("--loop", action="store_true", help="repeat the video or keypoint file")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--pose-latency", type=float, default=40.0, metavar="MS",
                   help="with --keypoints: simulated pose delay between capture and keypoints (default: 40 ms)")
    p.add_argument("--midi-port", default=None, metavar="NAME",
                   help="an existing MIDI output port (default: create a virtual port named RhythmicNet)")
    p.add_argument("--midi-api", choices=["auto", "alsa", "jack", "coremidi", "winmm"], default="auto",
                   help="MIDI API of python-rtmidi (default: the platform's; Linux: ALSA, or jack)")
    p.add_argument("--list-ports", action="store_true", help="list the MIDI output ports and exit")
    p.add_argument("--instrument", choices=["piano", "guitar", "none"], default="piano",
                   help="the accompaniment, or none for drums only (default: piano)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of drums and accompaniment (default: 0)")
    p.add_argument("--temperature", type=float, default=1.2, help="accompaniment sampling temperature (default: 1.2)")
    p.add_argument("--stats", type=Path, default=None, metavar="FILE",
                   help="write figures on exit (JSON): frames, dropped frames, notes sent, late events, hanging "
                        "notes, tempo, per-frame time, the beat grid sent")
    add_backend_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no status line")
    p.set_defaults(func=_run_live)


def _run_live(args: argparse.Namespace) -> int:
    from rhythmicnet.errors import InputError
    from rhythmicnet.realtime.midi_out import list_output_ports

    if args.list_ports:
        for name in list_output_ports(args.midi_api):
            print(name)
        return 0
    if args.video is None and args.camera is None and args.keypoints is None:
        raise InputError("live needs an input: --video FILE, --camera N or --keypoints FILE")
    for path in (args.video, args.keypoints):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: file not found")
    from rhythmicnet.realtime.live import LiveOptions, run_live

    opts = LiveOptions(keypoints=str(args.keypoints) if args.keypoints else None,
                       video=str(args.video) if args.video else None, camera=args.camera, loop=args.loop,
                       duration=args.duration, pose_latency_ms=args.pose_latency, midi_port=args.midi_port,
                       midi_api=args.midi_api, instrument=args.instrument, seed=args.seed,
                       temperature=args.temperature, backend=args.backend,
                       stats=str(args.stats) if args.stats else None, quiet=args.quiet)
    stats = run_live(opts)
    if not args.quiet:
        print(f"live: {stats.get('frames')} frames, {stats.get('notes_sent')} notes, {stats.get('late_events')} late "
              f"events, {stats.get('hanging_notes')} hanging notes", file=sys.stderr)
    return 0
