"""Evaluate beat models like the paper's Table 1: ``rhythmicnet eval beat``.

Rows: the motion-onset baseline, the TCN baseline, the ablation rows (TF, ST-GCN, ST-GCN+TF, +SSM,
+RelAttn), the full offline model, and the full causal model decoded three ways — Viterbi over the
whole clip; streaming with the fixed-lag Viterbi tracker (``models/fixed_lag_beats.py``: each frame
decided 1 s later, what ``live`` reports); and streaming with the forward filter (decided at once,
one frame after the activation peak). Beats come from the DBN of ``models/beat_hmm.py`` on each
model's activation.

Data: the frozen held-out synthetic set (``offline/beat_eval_set.py``: 200 clips of 30 s, 30 ms
jitter, >= 30 % distractor motion, camera yaws outside the training range) — synthetic held-out,
not comparable with the paper's AIST figures. Metrics: mir_eval's defaults (first 5 s trimmed,
F-measure window 70 ms, Cemgil sigma 40 ms, continuity tolerance 0.175), mean over clips, as %; also
AMLc/AMLt, tempo accuracy Acc1 (within 4 % of the reference tempo, from median inter-beat intervals)
and Acc2 (also at double or half tempo), and the downbeat F-measure of rows with a downbeat head.

Tempo errors by ratio (:func:`format_tempo_table`, ``tempo_errors`` in each row's JSON): the tempo error
1 - Acc1 split by the ratio of the estimated to the true clip tempo into x1/3, 1/2, 2/3, 3/4, 4/3, 3/2,
2, 3 (each within 4 %) and "other" (``offline/tempo_ratios.py``), as % of the clips; each row's per-clip
tempi are kept (``tempo_est``/``tempo_ref``, BPM) so any subset can be tabulated again.

Tempo-only rows (:data:`TEMPO_ROWS`): the peer baseline danceir (``offline/danceir_baseline.py``, an
optional extra) gives a clip tempo, no beats: only Acc1, Acc2 and the ratio breakdown, scored against the
same reference tempo (median inter-beat interval of the trimmed reference beats); ``danceir`` at 30 fps,
``danceir_60`` on the same keypoints resampled to 60 fps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mir_eval
import numpy as np
import torch
from tqdm import tqdm

from rhythmicnet.fileio import write_text_atomic
from rhythmicnet.models.beat_hmm import BeatTrackerConfig, OnlineBeatTracker, decode_beats
from rhythmicnet.models.beat_model import (
    WINDOW_FRAMES,
    LearnedBeatModel,
    downbeats_from,
    is_causal,
    load_beat_model,
    output_delay,
    windowed_logits,
)
from rhythmicnet.models.clip_preparation import PreparedClip, prepare_clip
from rhythmicnet.models.fixed_lag_beats import DEFAULT_LAG, FixedLagBeatTracker
from rhythmicnet.models.keypoints import MODEL_FPS, prepare_for_model
from rhythmicnet.models.onset_activation import onset_activation
from rhythmicnet.models.skeleton import normalize_clip
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline.beat_datasets import LabelledClip
from rhythmicnet.offline.beat_eval_set import EVAL_SET, eval_clips
from rhythmicnet.offline.danceir_baseline import INSTALL_HINT, danceir_available, danceir_tempo
from rhythmicnet.offline.synthetic_dancer import SyntheticDance
from rhythmicnet.offline.tempo_ratios import RATIO_NAMES, tempo_error_breakdown
from rhythmicnet.offline.train_beat import clip_activations

PAPER_ROWS = (
    ("TCN (paper, AIST)", 44.97, 45.15, 48.14, 63.04),
    ("ST-GCN+TF+SSM+RelAttn (paper, AIST)", 71.43, 71.94, 61.59, 75.79),
)
LEARNED_ROWS = ("tcn", "tf", "stgcn", "stgcn_tf", "stgcn_tf_ssm", "stgcn_tf_relattn", "full", "full_causal")
ROW_LABELS = {
    "onset": "onset baseline", "tcn": "TCN baseline", "tf": "TF", "stgcn": "ST-GCN", "stgcn_tf": "ST-GCN+TF",
    "stgcn_tf_ssm": "ST-GCN+TF+SSM", "stgcn_tf_relattn": "ST-GCN+TF+RelAttn", "full": "full (offline)",
    "full_causal": "full causal (Viterbi)",
    "full_causal_streaming": f"full causal (streaming, {DEFAULT_LAG / MODEL_FPS:g} s lag)",
    "full_causal_filter": "full causal (streaming, filter)",
    "danceir": "danceir (tempo only, 30 fps)", "danceir_60": "danceir (tempo only, 60 fps)",
}
#: rows that decode the full causal model's activation with a streaming tracker instead of Viterbi
STREAMING_ROWS = ("full_causal_streaming", "full_causal_filter")
#: rows that give a clip tempo and no beats (the danceir peer baseline), with the keypoint rate each runs at
TEMPO_ROWS = {"danceir": MODEL_FPS, "danceir_60": 60.0}


@dataclass(frozen=True)
class ClipScore:
    f_measure: float
    cemgil: float
    cmlc: float
    cmlt: float
    amlc: float
    amlt: float
    acc1: float
    acc2: float
    downbeat_f: float
    ref_tempo: float = float("nan")  #: BPM, from the trimmed reference beats
    est_tempo: float = float("nan")  #: BPM, from the trimmed estimated beats (or a tempo-only row's tempo)


def _tempo(beats: np.ndarray) -> float:
    return 60.0 / float(np.median(np.diff(beats))) if len(beats) > 1 else float("nan")


def score_clip(ref: np.ndarray, est: np.ndarray, ref_down: np.ndarray | None = None,
               est_down: np.ndarray | None = None) -> ClipScore:
    """mir_eval beat metrics with its defaults (both sequences trimmed of the first 5 s)."""
    r, e = mir_eval.beat.trim_beats(np.asarray(ref, float)), mir_eval.beat.trim_beats(np.asarray(est, float))
    f = mir_eval.beat.f_measure(r, e)
    cem, _ = mir_eval.beat.cemgil(r, e)
    cmlc, cmlt, amlc, amlt = mir_eval.beat.continuity(r, e)
    tr, te = _tempo(r), _tempo(e)
    acc1, acc2 = tempo_accuracy(tr, te)
    down = float("nan")
    if ref_down is not None and est_down is not None and len(ref_down):
        down = mir_eval.beat.f_measure(mir_eval.beat.trim_beats(np.asarray(ref_down, float)),
                                       mir_eval.beat.trim_beats(np.asarray(est_down, float)))
    return ClipScore(f, cem, cmlc, cmlt, amlc, amlt, acc1, acc2, down, tr, te)


def tempo_accuracy(ref_tempo: float, est_tempo: float) -> tuple[float, float]:
    """(Acc1, Acc2) of one clip, each 0 or 1: within 4 % of the reference tempo; also at double or half it."""
    tr, te = ref_tempo, est_tempo
    acc1 = float(np.isfinite(te) and abs(te - tr) <= 0.04 * tr)
    acc2 = float(np.isfinite(te) and any(abs(te - k * tr) <= 0.04 * k * tr for k in (1.0, 2.0, 0.5)))
    return acc1, acc2


def score_tempo_only(ref: np.ndarray, est_tempo: float) -> ClipScore:
    """A tempo-only row's clip score: Acc1/Acc2 of ``est_tempo`` (BPM) against the tempo of the trimmed
    reference beats ref (B,) s; the beat metrics are NaN."""
    tr = _tempo(mir_eval.beat.trim_beats(np.asarray(ref, float)))
    acc1, acc2 = tempo_accuracy(tr, float(est_tempo))
    nan = float("nan")
    return ClipScore(nan, nan, nan, nan, nan, nan, acc1, acc2, nan, tr, float(est_tempo))


def base_model(row: str) -> str:
    """The weights a row's activation comes from (``beat_<base>.pt``; ``onset`` has none)."""
    return "full_causal" if row in STREAMING_ROWS else row


def decode_row(act: np.ndarray, row: str, delay: int = 0) -> np.ndarray:
    """Beat times (s) of a row from its activation (T,), on the frames it scores: Viterbi, or the row's
    streaming tracker. ``delay``: the model's ``output_delay`` (frames); the fixed-lag tracker's own lag is
    what is left of ``DEFAULT_LAG`` after it, so a delayed model decides its beats as late as a strictly
    causal one (the forward filter's beats come ``delay`` frames late)."""
    cfg = BeatTrackerConfig(fps=MODEL_FPS)
    if row == "full_causal_streaming":
        return FixedLagBeatTracker(cfg, max(1, DEFAULT_LAG - delay)).process_offline(act)
    if row == "full_causal_filter":
        return OnlineBeatTracker(cfg).process_offline(act)
    return decode_beats(act, cfg)


Activation = Callable[[PreparedClip, Any], tuple[np.ndarray, np.ndarray | None]]


def evaluate_rows(rows: Iterable[str], weights_dir: str | os.PathLike[str] = WEIGHTS_DIR, *, n_clips: int | None = None,
                  progress: bool = True, clips: Iterable[SyntheticDance | LabelledClip] | None = None,
                  ) -> list[dict[str, Any]]:
    """Score each row on the held-out set; rows whose weights (or, for danceir, package) are missing are
    skipped (logged in 'missing', with a 'reason')."""
    rows = list(rows)
    models: dict[str, torch.nn.Module] = {}
    for row in rows:
        base = base_model(row)
        if (base != "onset" and row not in TEMPO_ROWS and base not in models
                and (Path(weights_dir) / f"beat_{base}.json").exists()):
            models[base] = load_beat_model(base, weights_dir)
    have_danceir = any(row in TEMPO_ROWS for row in rows) and danceir_available()
    scores: dict[str, list[ClipScore]] = {r: [] for r in rows}
    # the frozen synthetic held-out set unless other labelled clips are given (their test split)
    clips = list(eval_clips(n_clips)) if clips is None else list(clips)[:n_clips]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for dance in tqdm(clips, desc="held-out clips", disable=not progress, unit="clip"):
        clip = prepare_clip(dance)
        live_clip: PreparedClip | None = None  # running normalisation, for causal models
        cache: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for row in rows:
            base = base_model(row)
            if row in TEMPO_ROWS:
                if have_danceir:
                    scores[row].append(score_tempo_only(clip.beats, danceir_tempo(dance.sequence, TEMPO_ROWS[row])))
                continue
            if base == "onset":
                seq = prepare_for_model(dance.sequence)
                act, down = onset_activation(normalize_clip(seq.keypoints, seq.confidence), seq.confidence), None
            elif base in models:
                if base not in cache:
                    feats = clip.features
                    if is_causal(models[base]):
                        live_clip = live_clip or prepare_clip(dance, running=True)
                        feats = live_clip.features
                    cache[base] = clip_activations(models[base], feats)
                act, down = cache[base]
            else:
                continue
            est = decode_row(act, row, output_delay(models.get(base)))
            est_down = downbeats_from(est, down) if down is not None else None
            scores[row].append(score_clip(clip.beats, est, clip.downbeats, est_down))
    out = []
    for row in rows:
        s = scores[row]
        if not s:
            reason = INSTALL_HINT if row in TEMPO_ROWS else f"no weights beat_{base_model(row)}.pt"
            out.append({"model": row, "missing": True, "reason": reason})
            continue
        mean = {k: _nanmean([getattr(c, k) for c in s]) for k in ClipScore.__dataclass_fields__}
        if row in TEMPO_ROWS:  # no beats: the beat metrics are None
            beat = dict.fromkeys(("f_measure", "cemgil", "cmlc", "cmlt", "amlc", "amlt"))
        else:
            beat = {k: 100 * mean[k] for k in ("f_measure", "cemgil", "cmlc", "cmlt", "amlc", "amlt")}
        out.append({"model": row, "label": ROW_LABELS.get(row, row), **beat, "acc1": 100 * mean["acc1"],
                    "acc2": 100 * mean["acc2"],
                    "downbeat_f": None if np.isnan(mean["downbeat_f"]) else 100 * mean["downbeat_f"],
                    "n_clips": len(s), **tempo_fields([c.est_tempo for c in s], [c.ref_tempo for c in s])})
    return out


def tempo_fields(est: Iterable[float], ref: Iterable[float]) -> dict[str, Any]:
    """A row's tempo-error fields from its per-clip tempi (BPM; NaN = no tempo): ``tempo_errors`` (the
    breakdown of :func:`~rhythmicnet.offline.tempo_ratios.tempo_error_breakdown`, % of clips) and the
    tempi themselves, ``tempo_est``/``tempo_ref`` (None for NaN), so any subset of the clips can be
    tabulated again. est (N,), ref (N,)."""
    e, r = np.asarray(list(est), dtype=float), np.asarray(list(ref), dtype=float)

    def listed(a: np.ndarray) -> list[float | None]:
        return [round(float(x), 3) if np.isfinite(x) else None for x in a]

    return {"tempo_errors": tempo_error_breakdown(e, r), "tempo_est": listed(e), "tempo_ref": listed(r)}


def _nanmean(values: list[float]) -> float:
    a = np.asarray(values, dtype=float)
    return float(np.mean(a[~np.isnan(a)])) if np.any(~np.isnan(a)) else float("nan")


def format_table(records: list[dict[str, Any]], data: str | None = None) -> str:
    """The table; ``data`` names a real data set (default: the synthetic held-out set)."""
    head = f"{'model':<34}" + "".join(f"{c:>7}" for c in ("CMLc", "CMLt", "Cem", "F", "AMLc", "AMLt", "Acc1", "Acc2",
                                                          "DbF"))
    title = (f"Table 1 — synthetic held-out ({EVAL_SET.name}) — not comparable with the paper's AIST figures"
             if data is None else f"Table 1 — {data}, test split")
    lines = [title, head]
    for name, cmlc, cmlt, cem, f in PAPER_ROWS:
        lines.append(f"{name:<34}{cmlc:>7.2f}{cmlt:>7.2f}{cem:>7.2f}{f:>7.2f}")
    for r in records:
        if r.get("missing"):
            lines.append(f"{ROW_LABELS.get(r['model'], r['model']):<34}  ({r.get('reason', 'no weights')})")
            continue
        lines.append(f"{r['label']:<34}" + "".join(_cell(r[k]) for k in ("cmlc", "cmlt", "cemgil", "f_measure", "amlc",
                                                                           "amlt", "acc1", "acc2", "downbeat_f")))
    n = next((r["n_clips"] for r in records if not r.get("missing")), 0)
    clips = "clips of 30 s" if data is None else "clips"
    lines.append(f"{n} {clips}; mir_eval defaults; DBN decoding (Viterbi unless 'streaming')")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return f"{'-':>7}" if value is None else f"{value:>7.2f}"


def format_tempo_table(records: list[dict[str, Any]], title: str | None = None) -> str:
    """Each row's tempo error 1 - Acc1 and its split by the ratio of the estimated to the true tempo (% of
    the row's clips; ``offline/tempo_ratios.py``): the eight ratio bins, ``other`` (any other wrong tempo,
    or none) and ``listed`` (the eight bins together). ``records`` as :func:`evaluate_rows` returns them
    (any set of clips); ``title`` names the clips."""
    cols = ("Acc1", "1-Acc1", *RATIO_NAMES, "other", "listed")
    lines = [f"Tempo errors by ratio, % of clips{f' — {title}' if title else ''} (each ratio within 4 %)",
             f"{'model':<34}" + "".join(f"{c:>7}" for c in cols)]
    for r in records:
        if r.get("missing"):
            continue
        t = r["tempo_errors"]
        lines.append(f"{r['label']:<34}" + "".join(_cell(t[k]) for k in ("acc1", "error", *RATIO_NAMES, "other",
                                                                            "listed")))
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> Path:
    return write_text_atomic(path, json.dumps(records, indent=2) + "\n")


def windowed_vs_whole(clips: Iterable[SyntheticDance | LabelledClip], weights_dir: str | os.PathLike[str] = WEIGHTS_DIR,
                      *, model: str = "full", window: int = WINDOW_FRAMES) -> dict[str, Any]:
    """The offline beat network's beat F-measure (%) on ``clips`` with its activation computed in one
    pass over each whole clip and in overlap-added windows of ``window`` frames (what ``rhythm`` and
    ``render`` run, :func:`~rhythmicnet.models.beat_model.windowed_logits`), both decoded by the DBN.
    Returns mean F of each, their difference, the clip count and the per-clip F lists."""
    net = LearnedBeatModel(load_beat_model(model, weights_dir), model)
    whole: list[float] = []
    windowed: list[float] = []
    frames = 0
    for dance in clips:
        clip = prepare_clip(dance)
        frames = max(frames, len(clip.features))
        for out, w in ((whole, None), (windowed, window)):
            if w is None:
                b, _ = net.logits(clip.features)
                act = 1.0 / (1.0 + np.exp(-np.asarray(b, dtype=np.float64)))
            else:
                act, _ = windowed_logits(net.logits, clip.features, window=w)
            out.append(score_clip(clip.beats, decode_row(act, model)).f_measure)
    f_whole, f_win = 100 * float(np.mean(whole)), 100 * float(np.mean(windowed))
    return {"model": model, "window": window, "n_clips": len(whole), "max_frames": frames,
            "f_whole": f_whole, "f_windowed": f_win, "difference": f_win - f_whole,
            "per_clip_whole": whole, "per_clip_windowed": windowed}
