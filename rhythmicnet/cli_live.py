"""``rhythmicnet live``: a video, camera or keypoint stream in, drums and accompaniment out as live MIDI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rhythmicnet.cli_backend import add_backend_args


def _tempo_range(text: str) -> tuple[float, float]:
    from rhythmicnet.cli import _tempo_range as parse

    return parse(text)


def add_live_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live", help="play a dancer (camera, video or keypoint stream) into a DAW as live MIDI",
        description="Live: frames in (a camera, a video played at its real rate as if it were a camera, or a keypoint "
                    "file replayed at its timestamps), beats and movement onsets out of the causal Video2Rhythm "
                    "stage, a bar of drums (Rhythm2Drum) and of piano or guitar (Drum2Music) planned a bar ahead "
                    "and played on the dancer's beat grid through a MIDI port (by default a virtual port named "
                    "RhythmicNet): drums on channel 10, the accompaniment on channel 1, and MIDI clock (24 ppqn, Start/"
                    "Stop) following the dancer's tempo. Nothing plays until the tracker has decided 6 beats and "
                    "predicts a beat grid (about 6 beats plus 1.2 s). All notes off on every stop.")
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
    p.add_argument("--record", type=Path, default=None, metavar="FILE.mid",
                   help="also write what was played to a MIDI file, with the dancer's tempo map (written on exit)")
    p.add_argument("--latency-offset", type=float, default=0.0, metavar="MS",
                   help="send every note and clock pulse MS earlier, to make up for the DAW's output latency "
                        "(default: 0)")
    p.add_argument("--tempo-range", type=_tempo_range, default=(60.0, 180.0), metavar="MIN-MAX",
                   help="the tempi (BPM) the beat tracker may choose (default: 60-180)")
    p.add_argument("--no-clock", action="store_true", help="do not send MIDI clock and Start/Stop")
    p.add_argument("--reserve-core", action="store_true",
                   help="give the frame loop a core of its own, pose and planning the others (Linux, 2+ cores; "
                        "default: share them all - on 2 cores a reserved core starved pose for no timing gain)")
    p.add_argument("--no-rt-priority", dest="rt_priority", action="store_false",
                   help="run the frame loop at normal priority (default: real-time priority, SCHED_FIFO 10, where "
                        "the system allows it - root, or an rtprio limit as audio setups give; Linux only - so that "
                        "a due frame never waits behind pose or planning)")
    perf = p.add_argument_group("performer", "OSC, Ableton Link, tempo control, gestures, preview, DAW routing")
    perf.add_argument("--osc-port", type=int, default=None, metavar="P",
                      help="listen for OSC on UDP port P: keypoints (the input when no --video/--camera/--keypoints "
                           "is given): /pose t x1 y1 c1 ... x17 y17 c17 (t: seconds on the sender's clock, COCO-17 "
                           "order, pixels or normalised with --osc-image-size) or /mediapipe/pose (mediapipe-osc "
                           "bridge: count, then x y z visibility x 33, normalised); controls: /rhythmicnet/tap, "
                           "/lock, /hold, /release, /startstop. Bad, out-of-order and late packets are dropped and "
                           "counted (osc_dropped in --stats); --pose-latency is the sender's capture-to-send delay")
    perf.add_argument("--osc-host", default="127.0.0.1", metavar="HOST",
                      help="address the OSC port listens on (default: 127.0.0.1; 0.0.0.0 for other machines)")
    perf.add_argument("--osc-image-size", type=int, nargs=2, default=None, metavar=("W", "H"),
                      help="/pose coordinates are normalised to [0, 1]: scale them by W x H pixels (also the "
                           "size /mediapipe/pose is scaled to; default for it 640 480)")
    perf.add_argument("--osc-out", type=_host_port, default=None, metavar="HOST:PORT",
                      help="send OSC when things happen: /rhythmicnet/beat (index, time), /rhythmicnet/bar, "
                           "/rhythmicnet/tempo, /rhythmicnet/style (bar, 16 steps), /rhythmicnet/mode")
    perf.add_argument("--link", action="store_true",
                      help="publish tempo and beat phase to an Ableton Link session (needs the optional, "
                           "GPL-3.0-or-later aalink package: pip install 'rhythmicnet[link]')")
    perf.add_argument("--count-in", action="store_true",
                      help="one bar of clicks before bar 1 (and before every restart); MIDI clock Start on bar 1")
    perf.add_argument("--gesture", action="store_true",
                      help="hands-free start/stop: both wrists above the head for 1 s stops the music at the next "
                           "bar, the same again starts it (not fired by jumping jacks' half-second arms-up)")
    perf.add_argument("--drum-map", default="gm", metavar="NAME|FILE",
                      help="drum notes and channels: gm (General MIDI, channel 10; default), drum-rack (one class "
                           "per pad from C1 = 36: an Ableton Drum Rack's 4x4 layout), or a JSON file (see README)")
    perf.add_argument("--preview", action="store_true",
                      help="an OpenCV window: frame, skeleton, beat flash, tempo, bar, latency, tempo mode; keys: "
                           "space tap, L lock, H hold, R release, S start/stop, Q quit (without a display: one "
                           "line, and the run goes on)")
    add_backend_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no status line")
    p.set_defaults(func=_run_live)


def _host_port(text: str) -> tuple[str, int]:
    from rhythmicnet.realtime.osc_out import parse_host_port

    try:
        return parse_host_port(text)
    except Exception as e:  # noqa: BLE001 - argparse turns it into a one-line usage error
        raise argparse.ArgumentTypeError(str(e)) from None


def _run_live(args: argparse.Namespace) -> int:
    from rhythmicnet.errors import InputError
    from rhythmicnet.realtime.midi_out import list_output_ports

    if args.list_ports:
        for name in list_output_ports(args.midi_api):
            print(name)
        return 0
    if args.video is None and args.camera is None and args.keypoints is None and args.osc_port is None:
        raise InputError("live needs an input: --video FILE, --camera N, --keypoints FILE or --osc-port P")
    if args.osc_port is not None and not 0 < args.osc_port < 65536:
        raise InputError(f"--osc-port {args.osc_port}: give a UDP port 1-65535")
    if args.osc_image_size is not None and min(args.osc_image_size) <= 0:
        raise InputError("--osc-image-size: width and height must be positive")
    from rhythmicnet.models.midi_messages import load_drum_map

    try:
        load_drum_map(args.drum_map)
    except ValueError as e:
        raise InputError(f"--drum-map {e}") from None
    if args.link:
        import importlib.util

        if importlib.util.find_spec("aalink") is None:
            raise InputError("--link needs the aalink package: pip install 'rhythmicnet[link]' (GPL-3.0-or-later)")
    for path in (args.video, args.keypoints):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: file not found")
    from rhythmicnet.realtime.live import LiveOptions, run_live

    if args.record is not None and args.record.suffix.lower() not in (".mid", ".midi"):
        raise InputError(f"--record {args.record}: give a .mid file")

    opts = LiveOptions(keypoints=str(args.keypoints) if args.keypoints else None,
                       video=str(args.video) if args.video else None, camera=args.camera, loop=args.loop,
                       duration=args.duration, pose_latency_ms=args.pose_latency, midi_port=args.midi_port,
                       midi_api=args.midi_api, instrument=args.instrument, seed=args.seed,
                       temperature=args.temperature, backend=args.backend,
                       stats=str(args.stats) if args.stats else None,
                       record=str(args.record) if args.record else None, latency_offset_ms=args.latency_offset,
                       tempo_range=args.tempo_range, clock=not args.no_clock, quiet=args.quiet,
                       reserve_core=args.reserve_core, rt_priority=args.rt_priority,
                       osc_port=args.osc_port, osc_host=args.osc_host,
                       osc_image_size=tuple(args.osc_image_size) if args.osc_image_size else None,
                       osc_out=args.osc_out, link=args.link, count_in=args.count_in, gesture=args.gesture,
                       drum_map=args.drum_map, preview=args.preview)
    stats = run_live(opts)
    if not args.quiet:
        print(f"live: {stats.get('frames')} frames, {stats.get('notes_sent')} notes, {stats.get('late_events')} late "
              f"events, {stats.get('hanging_notes')} hanging notes", file=sys.stderr)
    return 0
