"""``rhythmicnet render``: the whole paper pipeline on a recorded clip (see offline/render.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rhythmicnet.cli_backend import add_backend_args, backend_from_args

if TYPE_CHECKING:
    from rhythmicnet.offline.render import RenderConfig


def _tempo_range(text: str) -> tuple[float, float]:
    from rhythmicnet.cli import _tempo_range as parse

    return parse(text)


def _default_beat_model(weights: Path | None) -> str:
    from rhythmicnet.cli import _default_beat_model as default

    return default(weights)


def add_render_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="score a recorded video: drums + piano/guitar as MIDI, WAV and the video with its soundtrack",
        description="Run the whole pipeline on a recorded clip: body keypoints -> beats (offline beat network + "
                    "DBN) and style -> rhythm -> drums (Rhythm2Drum, bar by bar) -> piano or guitar (Drum2Music, "
                    "bar by bar with memory). Writes into OUTDIR: drums.mid, piano.mid or guitar.mid, "
                    "soundtrack.mid (tempo map on the dancer's beats, bar 1 on the first downbeat), soundtrack.wav "
                    "and one WAV per part (48 kHz, FluidSynth + a General MIDI SoundFont), <name>_scored.mp4 (H.264 "
                    "+ AAC), rhythm.png and report.json (tempo, beats, settings, stage times, weights, the input's "
                    "content hash). A batch (several INPUTs, a folder, a glob or --list) renders each clip into "
                    "OUTDIR/<name> (the file's stem, or <stem>-<hash8> when two inputs share a stem) on --jobs "
                    "worker processes or Ray (--ray), skips clips already complete, goes on past clips that "
                    "fail, shows one progress bar over the clips and writes a summary to OUTDIR/batch.json.",
        epilog="Exit status: 0 = every clip done (or, in a batch, skipped as already complete); 1 = a batch in "
               "which some clips failed (each listed with its error, in the summary and batch.json); 2 = nothing "
               "could run (a single clip's error, no inputs found, an unwritable OUTDIR, Ray unreachable); "
               "130 = interrupted by Ctrl-C (143: SIGTERM); workers are stopped and no half-written file is left.")
    p.add_argument("input", type=str, nargs="*", metavar="INPUT",
                   help="a video (mp4, mov, webm, ...) or a keypoint file (.npz/.json: keypoints (T,17,2) px, "
                        "confidence (T,17), times (T,) s; at most 4 hours long, at 1-240 fps); for keypoints the "
                        "video is a rendered skeleton. Several make a batch, as does a folder (its videos and "
                        "keypoint files) or a glob in quotes ('clips/*.mp4', 'library/**/*.mov')")
    p.add_argument("-o", "--output", type=Path, default=Path("out"), metavar="OUTDIR",
                   help="folder for every output and the keypoint cache; in a batch, one sub-folder per clip and "
                        "batch.json (default: ./out)")
    p.add_argument("--list", type=Path, default=None, metavar="FILE", dest="list_file",
                   help="a batch: read inputs (files, folders, globs) from FILE, one a line; blank lines and "
                        "# comments skipped, relative paths from the current folder")
    p.add_argument("--recursive", action="store_true",
                   help="a folder INPUT gives the videos and keypoint files of its sub-folders too")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="a batch: clips rendered at once, each in a worker process with one thread per library "
                        "(torch, ONNX Runtime, OpenCV, BLAS) that loads the models once (default: the number of "
                        "cores)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="a batch: run the clips as Ray tasks (pip install 'rhythmicnet[ray]'): ADDRESS 'auto' or "
                        "host:port joins a running cluster, ray://host:10001 connects through Ray Client; no "
                        "ADDRESS starts a local Ray instance (with --jobs CPUs). Inputs and OUTDIR must be paths "
                        "every node sees. Put --ray after the inputs, or write --ray=ADDRESS")
    p.add_argument("--force", action="store_true",
                   help="a batch: render every clip again, even those whose report.json shows they are complete "
                        "for the same input content and settings (default: skip them)")
    p.add_argument("--instrument", choices=["piano", "guitar", "none"], default="piano",
                   help="the accompaniment: piano, guitar, or none for drums only (default: piano)")
    p.add_argument("--program", type=int, default=None, metavar="0-127",
                   help="GM program of the accompaniment (default: 0 for piano; for guitar the program the training "
                        "data mostly has)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every random choice (drums, accompaniment, rhythm controls): the same seed and input "
                        "give the same files (default: 0)")
    p.add_argument("--temperature", type=float, default=1.2,
                   help="sampling temperature of the accompaniment (default: 1.2; drums keep their trained 1.3)")
    p.add_argument("--top-k", type=int, default=5,
                   help="sample the accompaniment among the k most likely tokens (default: 5)")
    p.add_argument("--tempo-range", type=_tempo_range, default=(60.0, 180.0), metavar="MIN-MAX",
                   help="tempo range of the beat tracker in BPM (default: 60-180)")
    p.add_argument("--tempo", type=float, default=None, metavar="BPM",
                   help="pin the tempo (the beat tracker searches only +-2%% around it; the phase still follows "
                        "the movement)")
    p.add_argument("--rhythm", choices=["real", "random", "shuffle"], default="real",
                   help="the paper's listening controls: 'random' = each 16th on with probability 0.5, 'shuffle' = "
                        "the real rhythm shuffled in time (default: real)")
    p.add_argument("--beat-model", choices=["net", "onset"], default=None,
                   help="beat activation: the trained network or the motion-onset baseline (default: net; an error "
                        "when its weights are missing)")
    p.add_argument("--soundfont", type=Path, default=None, metavar="SF2",
                   help="General MIDI SoundFont for the WAVs (default: $RHYTHMICNET_SOUNDFONT or Debian's "
                        "FluidR3_GM.sf2 from fluid-soundfont-gm)")
    p.add_argument("--video-codec", choices=["auto", "copy", "h264"], default="auto",
                   help="video stream of the scored MP4: copy it (H.264 input only), re-encode to H.264, or auto = "
                        "copy when it is H.264 (default: auto)")
    p.add_argument("--keep-audio", action="store_true",
                   help="mix the video's own audio (at -12 dB) under the soundtrack instead of replacing it")
    p.add_argument("--no-cache", action="store_true",
                   help="run pose estimation again even if OUTDIR has keypoints cached for this video")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="folder with the trained weights (default: the shipped models/weights)")
    add_backend_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary, errors only")
    p.set_defaults(func=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from rhythmicnet.errors import InputError
    from rhythmicnet.models.weights import WEIGHTS_DIR
    from rhythmicnet.offline.batch_inputs import is_batch
    from rhythmicnet.offline.render import RenderConfig, render

    _ray_address_or_input(args)
    if not args.input and args.list_file is None:
        raise InputError("render: give an INPUT (a video, keypoint file, folder or glob) or --list FILE")
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    if args.soundfont is not None and not args.soundfont.is_file():
        raise InputError(f"{args.soundfont}: SoundFont not found")
    batch = is_batch(args.input, args.list_file)
    if not batch:
        if args.ray is not None:
            raise InputError("--ray runs a batch: give several INPUTs, a folder, a glob or --list FILE")
        args.input = Path(args.input[0])
    if not batch and not args.input.exists():
        raise InputError(f"{args.input}: file not found")
    beat_model = args.beat_model or _default_beat_model(args.weights)
    cfg = RenderConfig(instrument=args.instrument, program=args.program, seed=args.seed,
                       temperature=args.temperature, top_k=args.top_k, tempo_range=args.tempo_range,
                       tempo=args.tempo, rhythm=args.rhythm, beat_model=beat_model,
                       soundfont=str(args.soundfont) if args.soundfont else None, video_codec=args.video_codec,
                       keep_audio=args.keep_audio, use_cache=not args.no_cache,
                       weights_dir=str(args.weights or WEIGHTS_DIR), backend=args.backend, device=args.device)
    if batch:
        return _run_batch(args, cfg)
    backend_from_args(args)  # reports the provider once
    result = render(args.input, args.output, cfg, progress=not args.quiet)
    if not args.quiet:
        r = result.record
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in r["stage_seconds"].items())
        print(f"{args.input.name}: {r['duration_s']:.1f} s, {r['tempo_bpm']} BPM, {r['beat_count']} beats, "
              f"{r['bars']} bars, notes {r['notes']}")
        print(f"time per stage: {stages}")
        print("wrote " + ", ".join(str(Path(args.output) / v) for v in r["outputs"].values()))
    return 0


def _ray_address_or_input(args: argparse.Namespace) -> None:
    """``--ray clip.mp4 ...`` would take the first input as the address: a value that is no address and
    names an existing path is an input."""
    from rhythmicnet.errors import InputError
    from rhythmicnet.offline.batch_ray import is_address

    if args.ray and not is_address(args.ray):
        if Path(args.ray).exists():
            args.input.insert(0, args.ray)
            args.ray = ""
        else:
            raise InputError(f"--ray {args.ray}: not a Ray address (auto, host:port or ray://host:10001)")


def _run_batch(args: argparse.Namespace, cfg: RenderConfig) -> int:
    import sys

    from rhythmicnet.offline.batch import exit_status, run_batch
    from rhythmicnet.offline.batch_inputs import expand_inputs, read_list_file

    items = list(args.input)
    if args.list_file is not None:
        items += read_list_file(args.list_file)
    found = expand_inputs(items, recursive=args.recursive, outdir=args.output)
    for note in found.notes:
        print(f"rhythmicnet: warning: {note}", file=sys.stderr)
    summary = run_batch(found.clips, args.output, cfg, jobs=args.jobs, ray=args.ray, force=args.force,
                        quiet=args.quiet, notes=found.notes)
    return exit_status(summary)
