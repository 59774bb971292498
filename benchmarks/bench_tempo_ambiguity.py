"""The beat DBN's tempo prior and octave check, each on and off (issue 16, item 4): F, Acc1 and Acc2 of the
full offline model (Viterbi) and the full causal model (Viterbi, and the fixed-lag tracker at lags 15 and
30) on validation clips, or on the held-out set for the chosen defaults.

Sets (``--sets``): ``validation`` = ``validation_clip(0..N-1)`` of the training config; ``footwork`` =
``validation_clip(1000..)`` of the training config with only the training step families that step off the
beat or at double time, danced by footwork dancers (no held-out family); ``heldout`` = the frozen held-out
set (report only: defaults are chosen on the validation sets). The figures that chose the defaults are in
``models/tempo_periodicity.py``. Activations are computed once per clip and decoded with every variant.

Run: ``python benchmarks/bench_tempo_ambiguity.py [--clips 100] [--sets validation footwork] [--json FILE]``
(about 0.3 s per clip for the activations, then 0.02-0.5 s per clip, variant and decoder on 2 CPU cores).
The decoding rate was chosen with ``--clips 300 --variants`` and the names of ``RATE_VARIANTS`` (figures in
``models/beat_hmm.py``, "Finer than a frame").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from rhythmicnet.models.beat_hmm import BeatTrackerConfig, decode_beats
from rhythmicnet.models.beat_model import load_beat_model, output_delay
from rhythmicnet.models.clip_preparation import prepare_clip
from rhythmicnet.models.fixed_lag_beats import FixedLagBeatTracker
from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG, eval_clips, validation_clip
from rhythmicnet.offline.eval_beat import score_clip
from rhythmicnet.offline.synthetic_dancer import SyntheticDance
from rhythmicnet.offline.train_beat import clip_activations

PRIOR = {"tempo_prior_bpm": 120.0, "tempo_prior_octaves": 1.0}
VARIANTS = {
    "no prior, no check": BeatTrackerConfig(octave_check=False),
    "prior 3/s": BeatTrackerConfig(octave_check=False, **PRIOR, tempo_prior_per_s=3.0),
    "prior 10/s": BeatTrackerConfig(octave_check=False, **PRIOR, tempo_prior_per_s=10.0),
    "prior 30/s": BeatTrackerConfig(octave_check=False, **PRIOR, tempo_prior_per_s=30.0),
    "check (margin 1.3)": BeatTrackerConfig(octave_margin=1.3),
    "check (margin 1.5)": BeatTrackerConfig(octave_margin=1.5),
    "prior 3/s + check 1.5": BeatTrackerConfig(**PRIOR, tempo_prior_per_s=3.0, octave_margin=1.5),
    "prior 30/s + check 1.5": BeatTrackerConfig(**PRIOR, tempo_prior_per_s=30.0, octave_margin=1.5),
    "defaults": BeatTrackerConfig(),
}
#: The decoding rate (``beat_hmm``, "Finer than a frame"): DBN steps per activation frame, sub-frame beat peaks,
#: and the transition lambda with them (a tempo step at 2-3 steps a frame is 2-3 times finer).
RATE_STEPS_AND_LAMBDAS = ((1, 30), (1, 60), (1, 100), (2, 30), (2, 45), (2, 60), (2, 100), (2, 150), (2, 200),
                          (3, 30), (3, 60), (3, 90), (3, 135))
RATE_VARIANTS = {"x1, whole frames, 30/8 (before)":
                 BeatTrackerConfig(upsample=1, subframe=False, transition_lambda=30.0)}
RATE_VARIANTS.update({f"x{u} + subframe, {lam}/8": BeatTrackerConfig(upsample=u, transition_lambda=float(lam))
                      for u, lam in RATE_STEPS_AND_LAMBDAS})
VARIANTS.update(RATE_VARIANTS)
DECODERS = ("Viterbi (full)", "Viterbi (full causal)", "fixed lag 15 (full causal)", "fixed lag 30 (full causal)")
FOOTWORK_CONFIG = dataclasses.replace(
    TRAIN_CONFIG, duration_s=(30.0, 30.0),
    step_families=tuple((f, 1.0) for f in ("double", "and-steps", "cha-cha", "kick-ball-change")),
    beat_carriers=(("feet", 1.0),), arm_phrase_prob=0.7)


def clips(name: str, n: int) -> Iterator[SyntheticDance]:
    if name == "validation":
        return (validation_clip(i) for i in range(n))
    if name == "footwork":
        return (validation_clip(1000 + i, FOOTWORK_CONFIG) for i in range(n))
    if name == "heldout":
        return eval_clips(n)
    raise SystemExit(f"unknown set {name!r} (validation, footwork, heldout)")


def decode(decoder: str, cfg: BeatTrackerConfig, act_full: np.ndarray, act_causal: np.ndarray,
           delay: int = 0) -> np.ndarray:
    """``delay``: the causal model's ``output_delay``; a fixed lag counts from the frame scored, so the
    tracker's own lag is what is left of it."""
    if decoder == "Viterbi (full)":
        return decode_beats(act_full, cfg)
    if decoder == "Viterbi (full causal)":
        return decode_beats(act_causal, cfg)
    return FixedLagBeatTracker(cfg, max(1, int(decoder.split()[2]) - delay)).process_offline(act_causal)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=100, help="clips per set (default: 100)")
    parser.add_argument("--sets", nargs="+", default=["validation", "footwork"], metavar="SET",
                        help="validation, footwork and/or heldout (default: validation footwork)")
    parser.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help=f"tracker variants (default: all): {', '.join(VARIANTS)}")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    variants = args.variants or list(VARIANTS)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants: {sorted(unknown)}")
    torch.set_num_threads(1)
    full, causal = load_beat_model("full"), load_beat_model("full_causal")
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name in args.sets:
        t0 = time.perf_counter()
        recs = []
        for dance in clips(name, args.clips):
            clip = prepare_clip(dance)
            recs.append((clip.beats, clip_activations(full, clip.features)[0],
                         clip_activations(causal, prepare_clip(dance, running=True).features)[0]))
        print(f"{name}: {len(recs)} clips' activations in {time.perf_counter() - t0:.0f} s", flush=True)
        out[name] = {}
        for decoder in DECODERS:
            for v in variants:
                delay = output_delay(causal)
                s = [score_clip(ref, decode(decoder, VARIANTS[v], af, ac, delay)) for ref, af, ac in recs]
                fig = [100 * float(np.mean([getattr(c, k) for c in s])) for k in ("f_measure", "acc1", "acc2")]
                out[name][f"{decoder} | {v}"] = {"f_measure": fig[0], "acc1": fig[1], "acc2": fig[2]}
                print(f"  {decoder:<28} {v:<24} F {fig[0]:5.1f}  Acc1 {fig[1]:5.1f}  Acc2 {fig[2]:5.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
