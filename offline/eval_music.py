"""Evaluate Drum2Music like the paper's Table 3: ``rhythmicnet eval music``.

On the multitrack set's validation and test splits together (all sources: evaluation may use the GPL
files, training does not), in 16-bar segments of each song that has the instrument, kept by the same
rule as in training (the instrument plays in at least half of the bars and in the first:
``train_music.plays_enough``; a tacet is an arrangement choice the drums cannot tell):

* the instrument part is generated from the segment's real drums (fresh memory per segment, seeded);
* **PC/bar** (used pitch count per bar), **PI** (mean absolute interval between consecutive notes
  sorted by onset then pitch, mgeval's average pitch shift) and **IOI** (mean inter-onset interval in
  seconds, from the bars' tempo) for the generated and the real parts of the same segments;
* **PCH / NLH overlap**: per segment, ``sum(min(p, q))`` of the normalised 12-bin pitch-class
  histograms (PCH) and of mgeval's 12 note-length classes (NLH) of the generated and the real part;
  beside them two references from the real parts alone: the overlap of another song's real part
  (``*_real_mismatched``), and the **best fixed histogram** (``*_best_fixed``): the highest mean
  overlap one histogram, the same for every segment, reaches against these real parts (a linear
  program, fitted on the evaluation parts themselves, so an optimistic figure). The drums tell
  nothing of a song's key, so for PCH that is a ceiling: a part whose pitch classes do not depend
  on the real part cannot beat it on average (its mean over its own randomness is a mixture of
  fixed histograms). For NLH it is only a reference: note lengths may follow the drums.
* **NLL**: nats per decoder token over all validation tokens, for the memory model and the separately
  trained no-memory model (``drum2music_no_memory`` in the same folder, when its weights are there);
* **rhythmic coupling**: the share of the part's onsets on a step with a drum onset, for the generated
  part with its drums, the real part, and the generated part scored against another song's drums;
  these drums hit on ~80 % of all 16th steps, so the same is measured against **kick and snare**
  onsets only (``*_kick_snare``), beside their own density (the share a part with random onsets
  would get);
* **speed**: milliseconds to generate one bar (a bar at 120 BPM lasts 2 s).
* **ablation** (``--ablation DIR``): three models trained with one and the same step budget, the
  full one, ``drum2music_no_memory`` and ``drum2music_no_pop909``: NLL, histogram overlaps and
  coupling of each, so what memory and POP909 add is measured at equal cost. ``nll_no_memory`` is
  that no-memory model's NLL (or the one beside the shipped weights, when there is one).

Every figure has a bootstrap 95 % interval over segments (1000 resamples, fixed seed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linprog
from tqdm import tqdm

from rhythmicnet.fileio import write_text_atomic
from rhythmicnet.models.drum2music import NO_MEMORY_NAME, Drum2Music, has_music_model
from rhythmicnet.models.drum_grid import KICK, SNARE
from rhythmicnet.models.graphs import GraphFactory, torch_graph
from rhythmicnet.models.music_transformer import SamplingConfig
from rhythmicnet.models.remi import STEPS_PER_BAR, BarNote
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline import music_dataset as md
from rhythmicnet.offline.train_music import (
    drum_bars,
    evaluate_nll,
    plays_enough,
    validation_segments,
)

__all__ = ["PAPER_ROWS", "best_fixed_histogram", "evaluate_music", "format_table", "pitch_count_per_bar",
           "pitch_interval", "ioi", "histogram_overlap", "pitch_class_histogram", "note_length_histogram",
           "onset_coupling"]

PAPER_ROWS: dict[str, dict[str, Any]] = {
    "piano": {"dataset": (5.48, 6.16, 0.31), "model": (6.82, 5.86, 0.14), "pch": 0.63, "nlh": 0.54,
              "nll": 0.53, "nll_no_memory": 0.77},
    "guitar": {"dataset": (5.33, 5.51, 0.22), "model": (5.63, 5.69, 0.13), "pch": 0.64, "nlh": 0.51,
               "nll": 0.40, "nll_no_memory": 0.58},
}
EVAL_SEED = 2024
#: the equal-budget ablation models, by the name their weights have in an ablation folder
ABLATION_NAMES = ("drum2music", NO_MEMORY_NAME, "drum2music_no_pop909")
ABLATION_DIR = WEIGHTS_DIR / "ablations"
#: which segments count (see ``train_music.plays_enough``): those where the instrument plays in half
#: the bars and in the first. Frozen, so a training recipe that learns from fewer rests does not
#: change the evaluation set.
SEGMENT_RULE = {"min_playing_fraction": 0.5, "first_bar_plays": True}
EVAL_SAMPLING = SamplingConfig(seed=EVAL_SEED)
#: mgeval's 12 note-length classes in 16th steps: full, half, quarter, 8th, 16th, dotted half,
#: dotted quarter, dotted 8th, dotted 16th, half triplet, quarter triplet, 8th triplet.
NOTE_LENGTH_CLASSES = np.array([16, 8, 4, 2, 1, 12, 6, 3, 1.5, 16 / 3, 8 / 3, 4 / 3])

Bars = Sequence[Sequence[BarNote]]


def _flat(bars: Bars) -> list[tuple[int, int, int]]:
    """(absolute step, pitch, duration) of every note, sorted by onset then pitch."""
    return sorted((i * STEPS_PER_BAR + n.step, n.pitch, n.duration) for i, bar in enumerate(bars) for n in bar)


def pitch_count_per_bar(bars: Bars) -> float:
    """Mean number of distinct pitches per bar (empty bars count 0)."""
    return float(np.mean([len({n.pitch for n in bar}) for bar in bars])) if len(bars) else 0.0


def pitch_interval(bars: Bars) -> float:
    """Mean |pitch difference| of consecutive notes (sorted by onset, then pitch); nan with < 2 notes."""
    p = np.array([x[1] for x in _flat(bars)], float)
    return float(np.mean(np.abs(np.diff(p)))) if len(p) > 1 else float("nan")


def ioi(bars: Bars, tempo_bpm: np.ndarray) -> float:
    """Mean interval between consecutive distinct onsets, in seconds; nan with < 2 onsets.

    ``tempo_bpm`` (n_bars,) gives each bar's 16th length (60 / bpm / 4).
    """
    step_s = 60.0 / np.asarray(tempo_bpm, float) / 4.0
    bar_start = np.concatenate([[0.0], np.cumsum(step_s * STEPS_PER_BAR)])
    onsets = sorted({(i, n.step) for i, bar in enumerate(bars) for n in bar})
    t = np.array([bar_start[i] + s * step_s[i] for i, s in onsets])
    return float(np.mean(np.diff(t))) if len(t) > 1 else float("nan")


def pitch_class_histogram(bars: Bars) -> np.ndarray:
    h = np.bincount([x[1] % 12 for x in _flat(bars)], minlength=12).astype(float)
    return h / h.sum() if h.sum() else h


def note_length_histogram(bars: Bars) -> np.ndarray:
    d = np.array([x[2] for x in _flat(bars)], float)
    if not len(d):
        return np.zeros(len(NOTE_LENGTH_CLASSES))
    cls = np.argmin(np.abs(d[:, None] - NOTE_LENGTH_CLASSES[None, :]), axis=1)
    h = np.bincount(cls, minlength=len(NOTE_LENGTH_CLASSES)).astype(float)
    return h / h.sum()


def _kick_snare_coupling(bars: Bars, drum_hits: np.ndarray) -> float:
    return onset_coupling(bars, drum_hits, (KICK, SNARE))


def _rest_share(bars: Bars) -> float:
    """Share of bars without a note."""
    return float(np.mean([len(b) == 0 for b in bars])) if len(bars) else float("nan")


def histogram_overlap(p: np.ndarray, q: np.ndarray) -> float:
    """Sum of min(p, q) of two normalised histograms; nan when either is empty."""
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(np.minimum(p, q).sum())


def best_fixed_histogram(histograms: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
    """The histogram h (k,) that maximises the mean of ``histogram_overlap(h, q)`` over ``histograms``
    (each (k,), empty ones skipped), and that mean.

    mean_q sum_i min(h_i, q_i) is concave and piecewise linear in h: as a linear program, with one
    t_qi <= min(h_i, q_i) per segment and bin, maximise mean sum t over the simplex of h.
    """
    q = np.array([x for x in histograms if x.sum() > 0], float)
    if not len(q):
        return float("nan"), np.full(len(histograms[0]) if len(histograms) else 0, np.nan)
    n, k = q.shape
    cost = np.concatenate([np.zeros(k), -np.ones(n * k) / n])
    # t_qi - h_i <= 0
    a_ub = np.concatenate([-np.tile(np.eye(k), (n, 1)), np.eye(n * k)], axis=1)
    bounds = [(0.0, 1.0)] * k + [(0.0, float(v)) for v in q.reshape(-1)]
    res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(n * k), A_eq=np.concatenate([np.ones(k), np.zeros(n * k)])[None],
                  b_eq=[1.0], bounds=bounds, method="highs")
    if not res.success:
        raise RuntimeError(f"best_fixed_histogram: {res.message}")
    h = np.clip(res.x[:k], 0.0, None)
    return float(-res.fun), h / h.sum()


def drum_onset_steps(drum_hits: np.ndarray, classes: Sequence[int] | None = None) -> np.ndarray:
    """(n_bars * 16,) bool: the steps with an onset of ``classes`` (default any class). drum_hits (n_bars, 9, 16)."""
    hits = np.asarray(drum_hits)
    return (hits if classes is None else hits[:, list(classes)]).any(axis=1).reshape(-1)


def onset_coupling(bars: Bars, drum_hits: np.ndarray, classes: Sequence[int] | None = None) -> float:
    """Share of the part's onset steps that carry a drum onset (of ``classes``, default any class).
    drum_hits (n_bars, 9, 16)."""
    drum_on = drum_onset_steps(drum_hits, classes)
    steps = sorted({i * STEPS_PER_BAR + n.step for i, bar in enumerate(bars) for n in bar})
    return float(np.mean(drum_on[steps])) if steps else float("nan")


def bootstrap_ci(values: Sequence[float], n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95 % bootstrap interval of the mean, nans dropped."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(axis=1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _playing_segments(splits: Sequence[str], instrument: str) -> list[md.SongBars]:
    songs = [s for split in splits for s in md.read_multitrack(split, instrument, licences=None)]
    segs = validation_segments([s for s in songs if s.drum_hits is not None], 16)
    return [s for s in segs if plays_enough(s, **SEGMENT_RULE)]


def eval_segments(instrument: str, limit: int | None = None) -> list[md.SongBars]:
    """16-bar segments of the validation and test songs (all licences) that have drums and ``instrument``
    and where the instrument plays (``SEGMENT_RULE``)."""
    return _playing_segments(("validation", "test"), instrument)[:limit]


def nll_segments(instrument: str) -> list[md.SongBars]:
    """The validation segments the NLL is measured on (all licences, ``SEGMENT_RULE``)."""
    return _playing_segments(("validation",), instrument)


def generate_parts(d2m: Drum2Music, segs: Sequence[md.SongBars], *, progress: bool = True
                   ) -> tuple[list[list[list[BarNote]]], list[float]]:
    """The part of every segment from its real drums (fresh memory, seed ``EVAL_SEED + k``), and the
    milliseconds each bar took."""
    gen: list[list[list[BarNote]]] = []
    bar_ms: list[float] = []
    for k, seg in enumerate(tqdm(segs, desc=f"generating {d2m.instrument}", disable=not progress, unit="segment")):
        d2m.reset(seed=EVAL_SEED + k)
        bars = []
        for db in drum_bars(seg):
            t0 = time.perf_counter()
            bars.append(d2m.next_bar(db))
            bar_ms.append(1000 * (time.perf_counter() - t0))
        gen.append(bars)
    return gen, bar_ms


def _real_references(real: Sequence[Bars], mismatch: Sequence[int]) -> dict[str, Any]:
    """PCH/NLH overlap of another song's real part, and of the best fixed histogram (see the module)."""
    out: dict[str, Any] = {}
    for key, hist in (("pch_oa", pitch_class_histogram), ("nlh_oa", note_length_histogram)):
        h = [hist(r) for r in real]
        out[f"{key}_real_mismatched"] = bootstrap_ci([histogram_overlap(h[m], h[k]) for k, m in enumerate(mismatch)])
        best, _ = best_fixed_histogram(h)
        out[f"{key}_best_fixed"] = best
    return out


def _overlaps(gen: Sequence[Bars], real: Sequence[Bars]) -> dict[str, tuple[float, float, float]]:
    return {
        "pch_oa": bootstrap_ci([histogram_overlap(pitch_class_histogram(g), pitch_class_histogram(r))
                                for g, r in zip(gen, real, strict=True)]),
        "nlh_oa": bootstrap_ci([histogram_overlap(note_length_histogram(g), note_length_histogram(r))
                                for g, r in zip(gen, real, strict=True)]),
    }


def evaluate_ablation(instrument: str, ablation_dir: str | os.PathLike[str] = ABLATION_DIR, *,
                      segments: Sequence[md.SongBars], nll_on: Sequence[md.SongBars],
                      sampling: SamplingConfig = EVAL_SAMPLING, progress: bool = True,
                      graphs: GraphFactory | None = None) -> dict[str, dict[str, Any]]:
    """NLL, PCH/NLH overlap, rest share and coupling of each equal-budget model in ``ablation_dir``."""
    out: dict[str, dict[str, Any]] = {}
    real = [s.notes for s in segments]
    drums = [np.asarray(s.drum_hits) for s in segments]
    for name in ABLATION_NAMES:
        if not has_music_model(ablation_dir, name):
            continue
        d2m = Drum2Music.load(ablation_dir, instrument, sampling=sampling, name=name, graphs=graphs or torch_graph)
        gen, _ = generate_parts(d2m, segments, progress=progress)
        out[name] = _flatten_intervals({
            "nll": evaluate_nll(d2m.model, nll_on, 16) if nll_on else float("nan"),
            **_overlaps(gen, real),
            "rest_share": bootstrap_ci([_rest_share(g) for g in gen]),
            "coupling_generated": bootstrap_ci([onset_coupling(g, d) for g, d in zip(gen, drums, strict=True)]),
            "steps": d2m.manifest.get("training", {}).get("steps_run"),
            "minutes": round(d2m.manifest.get("training", {}).get("seconds", float("nan")) / 60, 1),
        })
    return out


def evaluate_music(instrument: str, weights_dir: str | os.PathLike[str] = WEIGHTS_DIR, *, limit: int | None = None,
                   sampling: SamplingConfig = EVAL_SAMPLING, progress: bool = True,
                   segments: list[md.SongBars] | None = None,
                   ablation_dir: str | os.PathLike[str] | None = None,
                   graphs: GraphFactory | None = None) -> dict[str, Any]:
    """The Table 3 figures for one instrument; returns the JSON-ready record. ``graphs``: the backend that
    generates (torch by default); NLL is scored by the torch model with teacher forcing either way."""
    d2m = Drum2Music.load(weights_dir, instrument, sampling=sampling, graphs=graphs or torch_graph)
    segs = segments if segments is not None else eval_segments(instrument, limit)
    if not segs:
        raise ValueError(f"no evaluation segments with drums and {instrument}")
    gen, bar_ms = generate_parts(d2m, segs, progress=progress)
    real = [s.notes for s in segs]
    tempos = [s.tempo_bpm for s in segs]
    drums = [s.drum_hits for s in segs]
    mismatch = [(k + len(segs) // 2) % len(segs) for k in range(len(segs))]

    def stat(fn: Callable[[Any], float], parts: Sequence[Bars]) -> tuple[float, float, float]:
        return bootstrap_ci([fn(p) for p in parts])

    def per_segment(fn: Callable[[Bars, Any], float], parts: Sequence[Bars], extra: Sequence[Any]
                    ) -> tuple[float, float, float]:
        return bootstrap_ci([fn(p, e) for p, e in zip(parts, extra, strict=True)])

    nll_on = nll_segments(instrument)
    nll_memory = evaluate_nll(d2m.model, nll_on, 16) if nll_on else float("nan")
    ablation = (evaluate_ablation(instrument, ablation_dir, segments=segs, nll_on=nll_on, sampling=sampling,
                                  progress=progress, graphs=graphs)
                if ablation_dir is not None else {})
    nll_no_memory = float("nan")
    if has_music_model(weights_dir, NO_MEMORY_NAME):
        no_mem = Drum2Music.load(weights_dir, instrument, name=NO_MEMORY_NAME).model
        nll_no_memory = evaluate_nll(no_mem, nll_on, 16) if nll_on else float("nan")
    elif NO_MEMORY_NAME in ablation:
        nll_no_memory = ablation[NO_MEMORY_NAME]["nll"]
    n_bars = sum(len(s.notes) for s in segs)
    gen_drums = [np.asarray(d) for d in drums]
    # Another song's drums, cut or repeated to the segment's length.
    mismatched = [np.resize(gen_drums[m], (len(gen[k]), 9, 16)) for k, m in enumerate(mismatch)]
    return _flatten_intervals({
        "instrument": instrument,
        "model": d2m.name,
        "program": d2m.program,
        "pc_per_bar": stat(pitch_count_per_bar, gen),
        "pitch_interval": stat(pitch_interval, gen),
        "ioi": per_segment(ioi, gen, tempos),
        **_overlaps(gen, real),
        **_real_references(real, mismatch),
        "rest_share": bootstrap_ci([_rest_share(g) for g in gen]),
        "nll_memory": nll_memory,
        "nll_no_memory": nll_no_memory,
        "coupling_generated": per_segment(onset_coupling, gen, gen_drums),
        "coupling_real": per_segment(onset_coupling, real, gen_drums),
        "coupling_mismatched": per_segment(onset_coupling, gen, mismatched),
        "coupling_real_mismatched": per_segment(onset_coupling, real, mismatched),
        "coupling_kick_snare_generated": per_segment(_kick_snare_coupling, gen, gen_drums),
        "coupling_kick_snare_real": per_segment(_kick_snare_coupling, real, gen_drums),
        "coupling_kick_snare_mismatched": per_segment(_kick_snare_coupling, gen, mismatched),
        "coupling_kick_snare_real_mismatched": per_segment(_kick_snare_coupling, real, mismatched),
        "kick_snare_density": bootstrap_ci([float(drum_onset_steps(d, (KICK, SNARE)).mean()) for d in gen_drums]),
        "ms_per_bar": {"median": float(np.median(bar_ms)), "p99": float(np.percentile(bar_ms, 99)),
                       "backend": d2m.backend, "provider": d2m.graphs.step.provider},
        "n_bars": n_bars,
        "n_segments": len(segs),
        "dataset": {
            "pc_per_bar": stat(pitch_count_per_bar, real),
            "pitch_interval": stat(pitch_interval, real),
            "ioi": per_segment(ioi, real, tempos),
            "rest_share": bootstrap_ci([_rest_share(r) for r in real]),
        },
        "segment_rule": SEGMENT_RULE,
        "n_nll_segments": len(nll_on),
        "ablation": ablation,
        "sampling": {"temperature": sampling.temperature, "top_k": sampling.top_k, "seed": EVAL_SEED,
                     "first_bar_plays": sampling.first_bar_plays},
        "weights": str(weights_dir),
    })


def _flatten_intervals(record: dict[str, Any]) -> dict[str, Any]:
    """(mean, lo, hi) triples -> ``key``: mean and ``key_ci95``: [lo, hi] (also inside ``dataset``)."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, tuple) and len(v) == 3:
            out[k], out[f"{k}_ci95"] = v[0], [v[1], v[2]]
        elif isinstance(v, dict) and k == "dataset":
            out[k] = _flatten_intervals(v)
        else:
            out[k] = v
    return out


def format_table(r: dict[str, Any]) -> str:
    """The Table 3 comparison for one instrument as text."""
    inst = r["instrument"]
    paper = PAPER_ROWS[inst]

    def ci(key: str, rec: dict[str, Any] = r) -> str:
        lo, hi = rec[f"{key}_ci95"]
        return f"{rec[key]:.2f} [{lo:.2f}, {hi:.2f}]"

    lines = [
        f"Drum2Music, {inst} ({r.get('model', 'drum2music')}, GM program {r['program']}) — multitrack validation "
        f"+ test splits, {r['n_segments']} segments of 16 bars, {r['n_bars']} bars; mean [bootstrap 95 % interval]",
        f"{'row':<24}{'PC/bar':>22}{'PI':>22}{'IOI (s)':>22}",
        f"{'paper: dataset':<24}{paper['dataset'][0]:>22.2f}{paper['dataset'][1]:>22.2f}{paper['dataset'][2]:>22.2f}",
        f"{'paper: RhythmicNet':<24}{paper['model'][0]:>22.2f}{paper['model'][1]:>22.2f}{paper['model'][2]:>22.2f}",
        f"{'ours: dataset':<24}{ci('pc_per_bar', r['dataset']):>22}{ci('pitch_interval', r['dataset']):>22}"
        f"{ci('ioi', r['dataset']):>22}",
        f"{'ours: generated':<24}{ci('pc_per_bar'):>22}{ci('pitch_interval'):>22}{ci('ioi'):>22}",
        f"PCH overlap {ci('pch_oa')} (paper {paper['pch']:.2f}); NLH overlap {ci('nlh_oa')} "
        f"(paper {paper['nlh']:.2f})",
        f"... references from the real parts: another song's part PCH {ci('pch_oa_real_mismatched')}, NLH "
        f"{ci('nlh_oa_real_mismatched')}; best fixed histogram PCH {r['pch_oa_best_fixed']:.2f} (the ceiling "
        f"for a part that cannot know the key), NLH {r['nlh_oa_best_fixed']:.2f}",
        f"NLL nats/token: memory {r['nll_memory']:.3f}, no memory {r['nll_no_memory']:.3f} (paper "
        f"{paper['nll']:.2f} / {paper['nll_no_memory']:.2f}, Lakh with another tokeniser: not comparable)",
        f"onsets on a drum onset: generated {ci('coupling_generated')}, real part {ci('coupling_real')}, "
        f"generated vs another song's drums {ci('coupling_mismatched')} (real part: "
        f"{ci('coupling_real_mismatched')})",
        f"... on a kick or snare onset: generated {ci('coupling_kick_snare_generated')}, real part "
        f"{ci('coupling_kick_snare_real')}, vs another song's drums {ci('coupling_kick_snare_mismatched')} "
        f"(real part: {ci('coupling_kick_snare_real_mismatched')}; kick/snare on {ci('kick_snare_density')} of "
        f"the steps)",
        f"bars of rest: generated {ci('rest_share')}, real part {ci('rest_share', r['dataset'])}",
        f"generation: {r['ms_per_bar']['median']:.0f} ms per bar median, {r['ms_per_bar']['p99']:.0f} ms p99 "
        f"(a bar at 120 BPM lasts 2000 ms)",
    ]
    if r.get("ablation"):
        first = next(iter(r["ablation"].values()))
        lines += [f"ablation, equal budget ({first['steps']} steps each; {r['n_nll_segments']} validation segments "
                  f"for NLL):",
                  f"{'model':<24}{'NLL':>8}{'PCH overlap':>22}{'NLH overlap':>22}{'rest share':>22}{'coupling':>22}"]
        for name, a in r["ablation"].items():
            lines.append(f"{name:<24}{a['nll']:>8.3f}{ci('pch_oa', a):>22}{ci('nlh_oa', a):>22}"
                         f"{ci('rest_share', a):>22}{ci('coupling_generated', a):>22}")
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> Path:
    return write_text_atomic(path, json.dumps(records, indent=1) + "\n")
