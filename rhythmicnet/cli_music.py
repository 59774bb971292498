"""The Drum2Music commands of ``rhythmicnet``: ``music``, ``train music`` and ``eval music``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rhythmicnet.cli_backend import add_backend_args, backend_from_args
from rhythmicnet.errors import InputError, WeightsError
from rhythmicnet.fileio import ensure_output_file

if TYPE_CHECKING:
    from rhythmicnet.models.music_transformer import SamplingConfig

INSTRUMENT_HELP = "piano or guitar (one model plays both; default: piano)"


def _weights_dir(args: argparse.Namespace) -> Path:
    from rhythmicnet.models.weights import WEIGHTS_DIR

    return Path(args.weights) if getattr(args, "weights", None) else WEIGHTS_DIR


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=1.2,
                   help="sampling temperature (default: 1.2, the reference implementation's)")
    p.add_argument("--top-k", type=int, default=5,
                   help="sample among the k most likely tokens; 0 samples from all (default: 5, the reference "
                        "implementation's)")


def _sampling(args: argparse.Namespace, seed: int) -> SamplingConfig:
    """The SamplingConfig of --temperature / --top-k (a one-line error for bad values)."""
    from rhythmicnet.models.music_transformer import SamplingConfig

    if not args.temperature > 0 or args.top_k < 0:
        raise InputError("--temperature must be > 0 and --top-k >= 0")
    return SamplingConfig(temperature=args.temperature, top_k=args.top_k or None, seed=seed)


def add_music_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "music", help="write a piano or guitar part for a drum MIDI file (Drum2Music)",
        description="Drum2Music on a drum MIDI file (General MIDI drums on channel 10, 4/4): the Transformer-XL "
                    "writes the instrument part bar by bar, remembering the bars before. Writes a two-track MIDI "
                    "file (drums + instrument) at the drum file's tempo.")
    p.add_argument("drums", type=Path, metavar="DRUMS.mid", help="drum MIDI file (e.g. a Groove MIDI Dataset file)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mid", help="the two-track MIDI to write")
    p.add_argument("--instrument", choices=["piano", "guitar"], default="piano", help=INSTRUMENT_HELP)
    p.add_argument("--program", type=int, default=None, metavar="0-127",
                   help="GM program of the part (default: 0 acoustic grand for piano; for guitar the program the "
                        "training data mostly has, see models/weights/drum2music.json)")
    _add_sampling_args(p)
    p.add_argument("--seed", type=int, default=0, help="sampling seed: the same seed gives the same part (default: 0)")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="folder with drum2music.json/.pt (default: the shipped models/weights)")
    add_backend_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_run_music)


def _run_music(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rhythmicnet.models.drum2music import Drum2Music, drum_bars_from_grid, music_model_name
    from rhythmicnet.offline.drum_midi import read_midi_file
    from rhythmicnet.offline.music_midi import write_music_midi

    if args.program is not None and not 0 <= args.program <= 127:
        raise InputError(f"--program must lie in 0..127, got {args.program}")
    sampling = _sampling(args, args.seed)
    grid = read_midi_file(args.drums).padded_to_bars()
    if not grid.hits.any():
        raise InputError(f"{args.drums}: no General MIDI drum notes on channel 10")
    ensure_output_file(args.output)  # before minutes of generation
    weights = _weights_dir(args)
    if music_model_name(weights, args.instrument) is None:
        raise WeightsError(f"{weights}: no Drum2Music weights (drum2music.json + drum2music.pt)")
    d2m = Drum2Music.load(weights, args.instrument, program=args.program,
                          sampling=sampling, graphs=backend_from_args(args))
    bars = drum_bars_from_grid(grid)
    with tqdm(total=len(bars), desc=f"writing {args.instrument}", unit="bar", disable=args.quiet) as bar:
        notes = d2m.generate(bars, progress=bar.update)
    write_music_midi(args.output, grid, notes, program=d2m.program, instrument=args.instrument)
    if not args.quiet:
        n = sum(len(b) for b in notes)
        print(f"{args.drums.name}: {len(bars)} bars at {grid.bpm:.1f} BPM -> {n} {args.instrument} notes "
              f"(GM program {d2m.program}); wrote {args.output}")
    return 0


def add_train_music(models: argparse._SubParsersAction) -> None:
    m = models.add_parser(
        "music", help="Drum2Music: Transformer-XL over REMI bars (multitrack MIDI + POP909)",
        description="Train Drum2Music on the multitrack set's permissive files (drums -> piano/guitar pairs) with "
                    "POP909 piano pretraining, and write <name>.pt + <name>.json to OUTDIR. One model serves both "
                    "instruments; --instrument fine-tunes a copy of it for one.")
    m.add_argument("-o", "--output", type=Path, default=None, metavar="OUTDIR",
                   help="where the weights go (default: the package's models/weights)")
    m.add_argument("--name", default=None,
                   help="weights name (default: drum2music, drum2music_no_pop909 with --no-pop909, "
                        "drum2music_no_memory with --no-memory; _<instrument> appended with --instrument "
                        "piano|guitar)")
    m.add_argument("--instrument", choices=["piano", "guitar", "both"], default="both",
                   help="learn from the multitrack parts of this instrument only (POP909 counts as piano), "
                        "e.g. to fine-tune a copy of the shared model for one instrument from its checkpoint "
                        "(--checkpoint --resume); default: both, one model with an instrument embedding. "
                        "Weights are named drum2music_<instrument> then, and Drum2Music loads them for that "
                        "instrument in place of the shared drum2music")
    m.add_argument("--no-memory", action="store_true",
                   help="the paper's ablation: a separate model trained with its segment memory switched off")
    m.add_argument("--no-pop909", action="store_true", help="train on the multitrack set only (no POP909 pretraining)")
    m.add_argument("--minutes", type=float, default=None, help="wall-time budget; stops when reached")
    m.add_argument("--steps", type=int, default=20000, help="optimiser steps at most (default: 20000)")
    m.add_argument("--min-playing", type=float, default=0.5, metavar="FRACTION",
                   help="learn from 16-bar segments where the instrument plays in at least this share of the bars "
                        "(default: 0.5; 0 keeps long tacets, which teach the model to sit out)")
    m.add_argument("--first-bar-may-rest", action="store_true",
                   help="also learn from segments whose first bar is a rest (by default a piece starts playing)")
    m.add_argument("--pop909-drums", action="store_true",
                   help="give POP909's piano drums written by Rhythm2Drum from its beats and piano stresses "
                        "(cached; about 4 min on one core the first time) instead of an empty drum bar")
    m.add_argument("--pop909-share", type=float, default=0.0, metavar="FRACTION",
                   help="share of the segments drawn from POP909 after pretraining (default: 0, the multitrack "
                        "set only; with --pop909-drums, pairs with drums)")
    m.add_argument("--batch-size", type=int, default=4, help="16-bar segments per batch (default: 4)")
    m.add_argument("--lr", type=float, default=7e-4, help="peak learning rate (AdamW, cosine decay; default: 7e-4)")
    m.add_argument("--warmup-steps", type=int, default=60, help="linear warm-up steps (default: 60)")
    m.add_argument("--d-model", type=int, default=128, help="model width (default: 128)")
    m.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    m.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    m.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto = CUDA when available, else CPU (default: auto)")
    m.add_argument("--checkpoint", type=Path, default=None, metavar="FILE",
                   help="checkpoint file (default: OUTDIR/<name>.ckpt)")
    m.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    m.add_argument("--val-every", type=int, default=50, help="validate and checkpoint every N steps (default: 50)")
    m.add_argument("--limit-songs", type=int, default=None, metavar="N",
                   help="use only the first N songs of each pool (smoke tests)")
    m.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    m.set_defaults(func=_run_train_music)


def _run_train_music(args: argparse.Namespace) -> int:
    from rhythmicnet.models.music_transformer import INSTRUMENTS
    from rhythmicnet.models.weights import WEIGHTS_DIR
    from rhythmicnet.offline.train_music import MusicTrainConfig, train_music

    instruments = INSTRUMENTS if args.instrument == "both" else (args.instrument,)
    name = args.name or ("drum2music_no_memory" if args.no_memory else
                         "drum2music_no_pop909" if args.no_pop909 else "drum2music")
    if args.name is None and args.instrument != "both":
        name += f"_{args.instrument}"
    cfg = MusicTrainConfig(name=name, mem_len=0 if args.no_memory else 256, use_pop909=not args.no_pop909,
                           max_minutes=args.minutes, steps=args.steps, batch_size=args.batch_size,
                           d_model=args.d_model, d_ff=4 * args.d_model, seed=args.seed, threads=args.threads,
                           device=args.device, val_every=args.val_every, limit_songs=args.limit_songs, lr=args.lr,
                           warmup_steps=args.warmup_steps, min_playing_fraction=args.min_playing,
                           first_bar_plays=not args.first_bar_may_rest, pop909_drums=args.pop909_drums,
                           pop909_fine_share=args.pop909_share, instruments=instruments)
    out = args.output or WEIGHTS_DIR
    m = train_music(out, config=cfg, checkpoint=args.checkpoint, resume=args.resume, progress=not args.quiet)
    t = m["training"]
    print(f"trained {name}: {m['parameters']} parameters, {t['steps_run']} steps, {t['tokens_seen']} tokens in "
          f"{t['seconds'] / 60:.1f} min on {t['device']}; best validation NLL {m['validation_nll']:.3f} nats/token; "
          f"weights in {out}")
    return 0


def add_eval_music(models: argparse._SubParsersAction) -> None:
    m = models.add_parser(
        "music", help="Drum2Music: pitch/rhythm statistics, histogram overlaps, NLL with and without memory (Table 3)",
        description="Table 3 on the multitrack validation + test splits: PC/bar, PI, IOI of generated and real "
                    "parts, PCH/NLH overlap, NLL of the memory and no-memory models, rhythmic coupling and ms per "
                    "bar, with bootstrap 95%% intervals.")
    m.add_argument("--instrument", choices=["piano", "guitar", "both"], default="both",
                   help="which part to evaluate (default: both)")
    m.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="folder with drum2music.json/.pt and drum2music_no_memory.json/.pt (default: the shipped "
                        "models/weights)")
    m.add_argument("--ablation", type=Path, default=None, metavar="DIR",
                   help="folder with the equal-budget ablation models (drum2music, drum2music_no_memory, "
                        "drum2music_no_pop909) to compare (default: models/weights/ablations when it has them)")
    m.add_argument("--no-ablation", action="store_true", help="skip the ablation models (faster)")
    m.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N segments")
    _add_sampling_args(m)
    m.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the records to this JSON file")
    add_backend_args(m)
    m.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    m.set_defaults(func=_run_eval_music)


def _run_eval_music(args: argparse.Namespace) -> int:
    from rhythmicnet.models.drum2music import has_music_model
    from rhythmicnet.offline.eval_music import ABLATION_DIR, EVAL_SEED, evaluate_music, format_table, write_json

    instruments = ["piano", "guitar"] if args.instrument == "both" else [args.instrument]
    if args.json:
        ensure_output_file(args.json)
    ablation = None if args.no_ablation else args.ablation or (ABLATION_DIR if has_music_model(ABLATION_DIR) else None)
    if ablation is not None and not has_music_model(ablation):
        raise InputError(f"{ablation}: no drum2music.json/.pt there")
    records = []
    graphs = backend_from_args(args)
    for inst in instruments:
        r = evaluate_music(inst, _weights_dir(args), limit=args.limit, ablation_dir=ablation,
                           sampling=_sampling(args, EVAL_SEED), progress=not args.quiet, graphs=graphs)
        print(format_table(r))
        records.append(r)
    if args.json:
        write_json(args.json, records)
    return 0
