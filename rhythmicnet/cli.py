"""The ``rhythmicnet`` command: one entry point that dispatches to the offline and live parts.

User-facing problems (``RhythmicNetError``) print one line — ``rhythmicnet: error: <file>: <problem>``
— and exit with status 2, without a traceback; Ctrl-C (SIGINT) exits with 130, SIGTERM with 143, each
after one line, and leaves no half-written file (every output is written atomically) and no child
process (ffmpeg is killed and waited for).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rhythmicnet import __version__, cli_backend, cli_bench, cli_live, cli_music, cli_render
from rhythmicnet.cli_backend import add_backend_args, backend_from_args
from rhythmicnet.errors import InputError, RhythmicNetError, WeightsError
from rhythmicnet.fileio import ensure_output_file

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
                        "keypoints (T,17,2) px, confidence (T,17), times (T,) s; at most 4 hours long, at 1-240 "
                        "fps)")
    p.add_argument("-o", "--output", type=Path, default=Path("out"), metavar="OUTDIR",
                   help="folder for rhythm.json, rhythm.png and the keypoint cache (default: ./out)")
    p.add_argument("--beat-model", choices=["net", "onset"], default=None,
                   help="beat activation: 'net' = the trained beat network (ST-GCN + transformer), 'onset' = "
                        "the motion onset envelope baseline (default: net; an error when its weights are "
                        "missing)")
    p.add_argument("--tempo-range", type=_tempo_range, default=(60.0, 180.0), metavar="MIN-MAX",
                   help="tempo range of the beat tracker in BPM (default: 60-180)")
    p.add_argument("--no-cache", action="store_true",
                   help="run pose estimation again even if OUTDIR has keypoints cached for this video")
    add_backend_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary, errors only")
    p.set_defaults(func=_run_rhythm)


def _default_beat_model(weights_dir: Path | None = None) -> str:
    """``--beat-model``'s default for ``rhythm`` and ``render``: the beat network. Its weights missing is
    an error (WeightsError), not a silent fall-back to the onset baseline: ``--beat-model onset`` asks for that."""
    from rhythmicnet.models.weights import WEIGHTS_DIR
    from rhythmicnet.offline.video2rhythm import default_beat_model

    d = weights_dir or WEIGHTS_DIR
    if default_beat_model(d) != "net":
        raise WeightsError(f"{d}: the beat network's weights (beat_full.json + beat_full.pt) are missing; "
                           "reinstall them, or pass --beat-model onset for the motion-onset baseline")
    return "net"


def _run_rhythm(args: argparse.Namespace) -> int:
    from rhythmicnet.fileio import ensure_output_dir
    from rhythmicnet.offline.pose_estimation import load_input_keypoints
    from rhythmicnet.offline.rhythm_report import plot_rhythm, rhythm_record, write_rhythm_json
    from rhythmicnet.offline.video2rhythm import Video2RhythmConfig, analyse

    if not args.input.exists():
        raise InputError(f"{args.input}: file not found")
    beat_model = args.beat_model or _default_beat_model()
    outdir = ensure_output_dir(args.output)
    t0 = time.perf_counter()
    seq, is_video = load_input_keypoints(args.input, outdir, use_cache=not args.no_cache, progress=not args.quiet)
    if is_video:  # a truncated video is refused, as render does (never analyse part of it silently)
        from rhythmicnet.offline import video_mux
        from rhythmicnet.offline.render import check_decoded_length

        check_decoded_length(args.input, seq, video_mux.probe(args.input))
    t_pose = time.perf_counter() - t0
    lo, hi = args.tempo_range
    analysis = analyse(seq, Video2RhythmConfig(beat_model=beat_model, min_bpm=lo, max_bpm=hi),
                       source=str(args.input), graphs=backend_from_args(args))
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


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from the data in ../shared/data (offline)",
                       description="Train the models that ship in models/weights. Runs on CUDA when present, "
                                   "else CPU; checkpoints every epoch and resumes with --resume.")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    d = models.add_parser("drums", help="Rhythm2Drum: hits transformer + U-Net on the Groove MIDI Dataset",
                          description="Train Rhythm2Drum (hits transformer + U-Net) on the Groove MIDI Dataset's "
                                      "train split and write weights, vocabulary and manifest to OUTDIR.")
    d.add_argument("-o", "--output", type=Path, default=None, metavar="OUTDIR",
                   help="where the weights go (default: the package's models/weights, used by the pipeline)")
    d.add_argument("--groove-root", type=Path, default=None, metavar="DIR",
                   help="the Groove MIDI Dataset folder (default: ../shared/data/groove_midi beside the repo)")
    d.add_argument("--epochs", type=int, default=30, help="epochs over the training windows (default: 30)")
    d.add_argument("--minutes", type=float, default=None,
                   help="stop at the last epoch boundary inside this time budget (default: no limit)")
    d.add_argument("--batch-size", type=int, default=64, help="windows per batch (default: 64)")
    d.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and rhythms (default: 0)")
    d.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto = CUDA when available, else CPU (default: auto)")
    d.add_argument("--checkpoint", type=Path, default=None, metavar="FILE",
                   help="checkpoint file (default: OUTDIR/rhythm2drum.ckpt)")
    d.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    d.add_argument("--limit-files", type=int, default=None, metavar="N",
                   help="use only the first N files of each split (smoke tests)")
    d.add_argument("--max-steps-per-epoch", type=int, default=None, metavar="N",
                   help="cap the batches per epoch (smoke tests)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_run_train_drums)

    b = models.add_parser("beat", help="a beat network (ablation row, offline or causal) on synthetic dancers",
                          description="Train a Video2Rhythm beat network on synthetic dancers generated on the fly "
                                      "and write beat_<name>.pt + beat_<name>.json to OUTDIR.")
    b.add_argument("-o", "--output", type=Path, default=None, metavar="OUTDIR",
                   help="where the weights go (default: the package's models/weights)")
    b.add_argument("--model", default="full",
                   choices=["full", "stgcn_tf_relattn", "stgcn_tf_ssm", "stgcn_tf", "stgcn", "tf", "tcn"],
                   help="ablation row or the TCN baseline (default: full)")
    b.add_argument("--causal", action="store_true", help="the causal streaming variant (live), not the offline one")
    b.add_argument("--steps", type=int, default=4000, help="optimiser steps (default: 4000)")
    b.add_argument("--minutes", type=float, default=None, help="wall-time budget; stops early when reached")
    b.add_argument("--batch-size", type=int, default=16, help="windows per batch (default: 16)")
    b.add_argument("--seed", type=int, default=0, help="seed for initialisation and clip order (default: 0)")
    b.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: all cores; use 1 when another job shares the machine)")
    b.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto = CUDA when available, else CPU (default: auto)")
    b.add_argument("--checkpoint", type=Path, default=None, metavar="FILE",
                   help="checkpoint file (default: OUTDIR/beat_<name>.ckpt)")
    b.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    b.add_argument("--init-from", default=None, metavar="NAME|FILE.pt",
                   help="start from these weights (a shipped model name such as full_causal, or a .pt file) "
                        "instead of a fresh network: fine-tuning (default: fresh)")
    b.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 1e-3)")
    b.add_argument("--arch", action="append", default=[], metavar="FIELD=VALUE", type=_arch_override,
                   help="a network config field other than the ablation row's default, VALUE in JSON; repeatable "
                        "(e.g. --arch stgcn_channels=[32,32,32,32,32,32,32,32,32,32] --arch n_layers=3; "
                        "default: none)")
    b.add_argument("--val-clips", type=int, default=24, help="validation clips for model selection (default: 24)")
    b.add_argument("--val-every", type=int, default=200, help="validate and checkpoint every N steps (default: 200)")
    _add_real_data_args(b, "train")
    b.add_argument("--real-fraction", type=float, default=0.5,
                   help="with real data: the share of training windows drawn from it, the rest synthetic "
                        "(default: 0.5)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_run_train_beat)
    cli_music.add_train_music(models)


def _arch_override(text: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` (VALUE in JSON, else a plain string) for ``train beat --arch``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _opt_str(p: Path | None) -> str | None:
    return None if p is None else str(p)


def _add_real_data_args(p: argparse.ArgumentParser, split: str, keypoints_dir: bool = True) -> None:
    p.add_argument("--aist-dir", type=Path, default=None, metavar="DIR",
                   help=f"AIST++ data in its official layout (DIR/keypoints2d/*.pkl, COCO-17 at 60 fps); its {split} "
                        "split by dancer; beat period from ../shared/data/aist_music_tempo, phase from the audio "
                        "with --music-dir, else from the movement")
    p.add_argument("--music-dir", type=Path, default=None, metavar="DIR",
                   help="AIST++ music (<music id>.wav) for the beat phase (madmom's beat tracker)")
    if not keypoints_dir:  # eval takes the folder as --data DIR
        return
    p.add_argument("--keypoints-dir", type=Path, default=None, metavar="DIR",
                   help=f"a folder of keypoint files (.npz/.json) with beats.csv (file,time[,downbeat]); its {split} "
                        "split by file name")


def _run_train_beat(args: argparse.Namespace) -> int:
    from rhythmicnet.models.weights import WEIGHTS_DIR
    from rhythmicnet.offline.train_beat import BeatTrainConfig, train_beat

    try:  # a bad --arch (unknown field, wrong type, inconsistent sizes) fails here with a one-line message
        cfg = BeatTrainConfig(model=args.model, causal=args.causal, steps=args.steps, batch_size=args.batch_size,
                              seed=args.seed, max_minutes=args.minutes, val_clips=args.val_clips,
                              val_every=args.val_every, device=args.device, threads=args.threads,
                              aist_dir=_opt_str(args.aist_dir), music_dir=_opt_str(args.music_dir),
                              keypoints_dir=_opt_str(args.keypoints_dir), real_fraction=args.real_fraction,
                              init_from=args.init_from, lr=args.lr, arch=dict(args.arch))
    except (TypeError, ValueError) as exc:
        raise InputError(f"--arch: {exc}") from None
    out = args.output or WEIGHTS_DIR
    m = train_beat(out, config=cfg, checkpoint=args.checkpoint, resume=args.resume, progress=not args.quiet)
    t = m["training"]
    print(f"trained beat_{cfg.name}: {t['steps_run']} steps in {t['seconds'] / 60:.1f} min on {t['device']}; "
          f"best validation F {m['validation_f']:.3f}; weights in {out}")
    return 0


def _run_train_drums(args: argparse.Namespace) -> int:
    from rhythmicnet.models.weights import WEIGHTS_DIR
    from rhythmicnet.offline.train_drums import DrumTrainConfig, train_drums

    cfg = DrumTrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, max_minutes=args.minutes,
                          limit_files=args.limit_files, max_steps_per_epoch=args.max_steps_per_epoch,
                          device=args.device)
    out = args.output or WEIGHTS_DIR
    manifest = train_drums(out, config=cfg, checkpoint=args.checkpoint, resume=args.resume,
                           groove_root=args.groove_root, progress=not args.quiet)
    t = manifest["training"]
    last = manifest["history"][-1] if manifest["history"] else {}
    print(f"trained {t['epochs_run']} epochs ({t['steps']} steps) in {t['seconds'] / 60:.1f} min on {t['device']}; "
          f"val ce {last.get('val_ce', float('nan')):.3f}; weights in {out}")
    return 0


def _add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained model like the paper's tables (offline)",
                       description="Reproduce the paper's evaluation tables on the held-out data.")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    d = models.add_parser("drums", help="Rhythm2Drum: NDB, velocity/offset MSE, rhythm controls (Table 2)",
                          description="Table 2 on the Groove MIDI test split: NDB (k=50) beside real test windows, "
                                      "hit-cell MSE of velocities and offsets beside a trivial baseline, and the "
                                      "random/shuffled-rhythm controls.")
    d.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="folder with rhythm2drum.json and its weights (default: the shipped models/weights)")
    d.add_argument("--groove-root", type=Path, default=None, metavar="DIR",
                   help="the Groove MIDI Dataset folder (default: ../shared/data/groove_midi beside the repo)")
    d.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the figures to this JSON file")
    d.add_argument("--samples", type=int, default=9000, help="generated windows for NDB (default: 9000)")
    d.add_argument("--temperature", type=float, default=1.3,
                   help="sampling temperature of the hits transformer (default: 1.3, the model's default)")
    d.add_argument("--top-k", type=int, default=None, help="sample from the k most likely words (default: all)")
    d.add_argument("--limit-files", type=int, default=None, metavar="N",
                   help="use only the first N files of each split (smoke tests)")
    d.add_argument("--drop-rate", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="accent dropout of the test rhythms, drawn per window from [LO, HI] (default: the training "
                        "rhythms' 0.3 1.0; 0 0 keeps every kick/snare accent)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_run_eval_drums)

    b = models.add_parser("beat", help="beat networks and baselines on the held-out synthetic set (Table 1)",
                          description="Table 1 on the frozen held-out synthetic dancers: mir_eval F, Cemgil, CMLc, "
                                      "CMLt, AMLc, AMLt, tempo Acc1/Acc2 and downbeat F for the onset and TCN "
                                      "baselines, the ablation rows, the full offline and causal models and "
                                      "the danceir tempo baseline; then each row's tempo error 1 - Acc1 split by "
                                      "the ratio of its tempo to the true one (x1/3 ... x3, other).")
    b.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="folder with the beat_<row>.pt/.json files (default: the shipped models/weights)")
    b.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help="rows to score (default: all): onset tcn tf stgcn stgcn_tf stgcn_tf_ssm stgcn_tf_relattn "
                        "full full_causal full_causal_streaming (fixed-lag tracker) full_causal_filter (forward "
                        "filter) danceir danceir_60 (the danceir peer baseline, tempo only, on keypoints at 30 or "
                        "60 fps; needs the [eval] extra)")
    b.add_argument("--clips", type=int, default=None, help="score only the first N held-out clips (default: all 200)")
    b.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the rows to this JSON file")
    b.add_argument("--data", default="synth", metavar="synth|aist|DIR",
                   help="what to score: 'synth' = the frozen synthetic held-out set (default), 'aist' = the test "
                        "split of --aist-dir, or a folder of keypoint files with beats.csv (its test split)")
    _add_real_data_args(b, "test", keypoints_dir=False)
    b.add_argument("--generalisation", action="store_true",
                   help="also the generalisation test (issue 16): the rows on the frozen sets that step only in "
                        "step-pattern families left out of training (100 clips on AIST tempi, 100 log-uniform "
                        "60-180 BPM) and on 100 half/double-time clips: F, AMLt, Acc1, Acc2 and 1 - Acc1 by "
                        "ratio; --clips N takes the first N of each set")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_run_eval_beat)
    cli_music.add_eval_music(models)


def _run_eval_beat(args: argparse.Namespace) -> int:
    from rhythmicnet.models.weights import WEIGHTS_DIR
    from rhythmicnet.offline.beat_datasets import read_labelled
    from rhythmicnet.offline.eval_beat import (
        LEARNED_ROWS,
        STREAMING_ROWS,
        TEMPO_ROWS,
        evaluate_rows,
        format_table,
        format_tempo_table,
        write_json,
    )

    rows = args.rows or ["onset", *LEARNED_ROWS, *STREAMING_ROWS, *TEMPO_ROWS]
    if args.json:
        ensure_output_file(args.json)
    clips, data = None, None
    if args.data == "aist":
        if args.aist_dir is None:
            raise InputError("--data aist needs --aist-dir DIR")
        clips = read_labelled(aist_dir=args.aist_dir, music_dir=args.music_dir, split="test")
        data = f"AIST++ ({args.aist_dir})"
    elif args.data != "synth":
        clips = read_labelled(keypoints_dir=args.data, split="test")
        data = f"keypoints folder {args.data}"
    if clips is not None and not clips:
        raise InputError(f"{args.data}: no labelled clip in the test split")
    records = evaluate_rows(rows, args.weights or WEIGHTS_DIR, n_clips=args.clips, progress=not args.quiet,
                            clips=clips)
    print(format_table(records, data))
    print()
    print(format_tempo_table(records, data))
    if args.generalisation:
        from rhythmicnet.offline.eval_generalisation import evaluate_generalisation, format_generalisation

        general = evaluate_generalisation(rows, args.weights or WEIGHTS_DIR, n_clips=args.clips,
                                          progress=not args.quiet)
        print()
        print(format_generalisation(general))
        records = [*records, *({**r, "set": name} for name, rs in general.items() for r in rs)]
    if args.json:
        write_json(args.json, records)
    return 0


def _run_eval_drums(args: argparse.Namespace) -> int:
    from rhythmicnet.models.weights import WEIGHTS_DIR
    from rhythmicnet.offline.eval_drums import DrumEvalConfig, evaluate_drums, format_table, write_json

    if args.json:
        ensure_output_file(args.json)
    cfg = DrumEvalConfig(n_generated=args.samples, temperature=args.temperature, top_k=args.top_k,
                         limit_files=args.limit_files,
                         **({"drop_rate": tuple(args.drop_rate)} if args.drop_rate else {}))
    record = evaluate_drums(args.weights or WEIGHTS_DIR, config=cfg, groove_root=args.groove_root,
                            progress=not args.quiet)
    print(format_table(record))
    if args.json:
        write_json(args.json, record)
    return 0


def _add_synth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth-dance",
        help="generate a synthetic dancer with known beats (the beat network's training data)",
        description=(
            "Generate one synthetic dancer clip: a 3D stick figure dancing to known beats (with non-beat "
            "distractor motion), seen through a random camera. Prints what was generated; optionally writes "
            "a preview video with beat flashes and the keypoints with their beat labels."
        ),
    )
    p.add_argument("--seed", type=int, default=0,
                   help="clip seed: the same seed gives the same clip (default: 0; training uses seeds < 10**6, "
                        "the held-out set 10**9 and up)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="clip length in seconds (default: the config's, 30)")
    p.add_argument("--tempo", type=float, default=None, metavar="BPM",
                   help="fix the tempo (no drift) instead of drawing it from 60-180 BPM")
    p.add_argument("--config", choices=["train", "eval"], default="train",
                   help="generator config: 'train' = the training distribution, 'eval' = the frozen held-out "
                        "set's (camera yaw 60-80 deg, 30 ms timing jitter, 30-50%% distractors) (default: train)")
    p.add_argument("--preview", type=Path, default=None, metavar="OUT.mp4",
                   help="write an mp4 of the skeleton with a flash on every beat (bigger on downbeats)")
    p.add_argument("--keypoints", type=Path, default=None, metavar="OUT.npz",
                   help="write the keypoints (.npz or .json) and, beside them, OUT.beats.json with the beats, "
                        "downbeats, tempo and the clip's metadata")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from rhythmicnet.errors import OutputError
    from rhythmicnet.fileio import write_text_atomic
    from rhythmicnet.offline.beat_eval_set import EVAL_CONFIG, TRAIN_CONFIG
    from rhythmicnet.offline.keypoint_io import save_keypoints
    from rhythmicnet.offline.synthetic_dancer import clip_record, generate_clip, render_preview

    cfg = EVAL_CONFIG if args.config == "eval" else TRAIN_CONFIG
    if args.duration is not None:
        if not 1.0 <= args.duration <= 3600.0:
            raise InputError(f"--duration must lie in [1, 3600] seconds, got {args.duration:g}")
        cfg = dataclasses.replace(cfg, duration_s=(args.duration, args.duration))
    if args.tempo is not None:
        if not 20.0 <= args.tempo <= 300.0:
            raise InputError(f"--tempo must lie in [20, 300] BPM, got {args.tempo:g}")
        cfg = dataclasses.replace(cfg, tempo_bpm=(args.tempo, args.tempo), tempo_drift=(0.0, 0.0))
    for out in (args.preview, args.keypoints):
        if out is not None and not out.parent.resolve().is_dir():
            raise OutputError(f"{out}: folder {out.parent} does not exist")
        if out is not None and out.is_dir():
            raise OutputError(f"{out}: is a folder; give the name of the file to write")
    t0 = time.perf_counter()
    dance = generate_clip(cfg, args.seed)
    t_gen = time.perf_counter() - t0
    m = dance.metadata
    cam = m.camera
    print(f"seed {args.seed} ({args.config}): {m.duration_s:.1f} s, {dance.sequence.num_frames} frames at "
          f"{m.fps:.2f} fps ({m.dropped_frames} dropped), {dance.tempo_bpm:.1f} BPM, {len(dance.beats)} beats, "
          f"{len(dance.downbeats)} downbeats; generated in {1000 * t_gen:.0f} ms")
    print(f"camera: yaw {cam.yaw_deg:+.0f} deg, pitch {cam.pitch_deg:+.0f} deg, {cam.distance_m:.1f} m, "
          f"{cam.image_size[0]}x{cam.image_size[1]} px; dancer {m.person_height_m:.2f} m")
    print(f"moves: {', '.join(m.moves)}")
    kinds = ", ".join(f"{d.kind} {d.start_s:.1f}-{d.end_s:.1f}s" for d in m.distractors) or "none"
    print(f"distractors ({100 * m.distractor_share:.0f}% of the clip): {kinds}")
    if args.keypoints is not None:
        save_keypoints(args.keypoints, dance.sequence,
                       extra={"generator_version": m.generator_version, "seed": args.seed})
        beats_path = args.keypoints.with_name(args.keypoints.stem + ".beats.json")
        write_text_atomic(beats_path, json.dumps(clip_record(dance), indent=1) + "\n")
        print(f"wrote {args.keypoints} and {beats_path}")
    if args.preview is not None:
        n = render_preview(dance, args.preview)
        print(f"wrote {args.preview} ({n} frames)")
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
    _add_train_parser(sub)
    _add_eval_parser(sub)
    _add_synth_parser(sub)
    cli_music.add_music_command(sub)
    cli_render.add_render_command(sub)
    cli_backend.add_export_command(sub)
    cli_live.add_live_command(sub)
    cli_bench.add_bench_command(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs: child processes
    (ffmpeg) are killed and waited for, temporary files removed (see fileio.atomic_path)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # A name with characters the plot font lacks (emoji) draws as boxes: not worth a warning.
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
    try:
        with _sigterm_as_interrupt():
            return int(args.func(args))
    except RhythmicNetError as e:
        print(f"rhythmicnet: error: {e}", file=sys.stderr)
        return e.exit_code
    except Terminated:
        print("rhythmicnet: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("rhythmicnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
