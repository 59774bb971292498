"""The generalisation test of the beat networks (issue 16): ``rhythmicnet eval beat --generalisation``.

The network has only seen the procedural dancer, and real dancers step in patterns it never showed. This
test stands in for real data: the frozen sets of ``offline/beat_eval_set.py`` (``GENERALISATION_SETS``)
step only in the families kept out of training (``dance_vocabulary.HELDOUT_STEP_FAMILIES``): 100 clips on
the AIST++ tempo table and 100 log-uniform over 60-180 BPM, reported separately, plus 100 half/double-time
clips (which cannot be held out) reported with AMLt.

Per set and row: mir_eval F, AMLt, Acc1, Acc2 and the tempo error 1 - Acc1 with its split by the ratio of
the decoded tempo to the true one (``tempo_ratios.py``); "listed" is the share of clips whose tempo is off
by one of the listed ratios (x1/3 ... x3).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline.beat_eval_set import GENERALISATION_SETS, set_clips
from rhythmicnet.offline.eval_beat import ROW_LABELS, evaluate_rows
from rhythmicnet.offline.tempo_ratios import OTHER, RATIO_NAMES

__all__ = ["evaluate_generalisation", "format_generalisation"]


def evaluate_generalisation(rows: Iterable[str], weights_dir: str | os.PathLike[str] = WEIGHTS_DIR, *,
                            n_clips: int | None = None, progress: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Each row on each generalisation set (the first ``n_clips`` of each, or all): {set name: records of
    ``eval_beat.evaluate_rows``}."""
    rows = list(rows)
    return {d.name: evaluate_rows(rows, weights_dir, n_clips=n_clips, clips=set_clips(d, n_clips), progress=progress)
            for d in GENERALISATION_SETS}


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}"


def format_generalisation(results: dict[str, list[dict[str, Any]]]) -> str:
    """One block per set: F, AMLt, Acc1, Acc2, 1 - Acc1 and its ratio split (% of clips) per row."""
    lines = ["Generalisation test (issue 16): unseen step-pattern families, synthetic, generator 2.0"]
    for name, records in results.items():
        n = max((r.get("n_clips", 0) for r in records), default=0)
        lines.append("")
        lines.append(f"{name} ({n} clips)")
        head = f"{'row':<40}{'F':>7}{'AMLt':>7}{'Acc1':>7}{'Acc2':>7}{'1-Acc1':>8}{'listed':>8}  ratio split of 1-Acc1"
        lines.append(head)
        for r in records:
            if r.get("missing"):
                lines.append(f"{ROW_LABELS.get(r['model'], r['model']):<40}  missing: {r.get('reason', '')}")
                continue
            err = r.get("tempo_errors") or {}
            nonzero = ", ".join(f"{k} {err[k]:.1f}" for k in (*RATIO_NAMES, OTHER) if err.get(k))
            cells = "".join(f"{_pct(r.get(k)):>7}" for k in ("f_measure", "amlt", "acc1", "acc2"))
            lines.append(f"{r.get('label', r['model']):<40}{cells}{_pct(err.get('error')):>8}"
                         f"{_pct(err.get('listed')):>8}  {nonzero}".rstrip())
    return "\n".join(lines)
