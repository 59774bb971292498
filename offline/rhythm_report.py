"""Write a clip's rhythm: ``rhythm.json`` (machine-readable) and ``rhythm.png`` (the paper's Fig. 6 view).

Both files are written atomically. The JSON holds the tempo, beat times, style times, the 16th grid
(step times and onsets), the frame rates and the versions that produced it.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

import rhythmicnet
from rhythmicnet.fileio import atomic_path, write_text_atomic
from rhythmicnet.models.keypoints import MODEL_FPS
from rhythmicnet.offline.video2rhythm import RhythmAnalysis

SCHEMA_VERSION = 1


def _versions() -> dict[str, str]:
    out = {"rhythmicnet": rhythmicnet.__version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import mediapipe

        out["mediapipe"] = str(mediapipe.__version__)
    except Exception:  # noqa: BLE001 - version reporting must never fail the run
        pass
    return out


def rhythm_record(analysis: RhythmAnalysis, source: str, source_fps: float) -> dict[str, Any]:
    """The JSON-ready description of a rhythm analysis."""
    r = analysis.rhythm
    return {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "duration_s": round(float(analysis.sequence.duration), 4),
        "frames": int(analysis.sequence.num_frames),
        "source_fps": round(float(source_fps), 4),
        "model_fps": MODEL_FPS,
        "beat_model": analysis.config.beat_model,
        "tempo_range_bpm": [analysis.config.min_bpm, analysis.config.max_bpm],
        "tempo_bpm": round(analysis.tempo_bpm, 3) if np.isfinite(analysis.tempo_bpm) else None,
        "beats": [round(float(b), 4) for b in analysis.beats],
        "style_times": [round(float(s), 4) for s in analysis.style.times],
        "style_threshold": float(analysis.style.threshold),
        "grid": {
            "step_times": [round(float(t), 4) for t in r.step_times],
            "onsets": [int(x) for x in r.onsets],
            "beat_steps": [int(x) for x in r.beat_steps],
            "style_steps": [int(x) for x in r.style_steps],
            "first_downbeat_step": int(r.first_downbeat_step),
            "steps_per_beat": 4,
            "beats_per_bar": 4,
            "density": round(r.density(), 4),
        },
        "stage_seconds": {k: round(v, 4) for k, v in analysis.stage_seconds.items()},
        "versions": _versions(),
    }


def write_rhythm_json(path: str | Path, record: dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(record, indent=2) + "\n")


#: Clips longer than this (s) get an overview of the whole clip above a detail of its first
#: ``DETAIL_S`` seconds: one time axis over an hour would draw thousands of beats into one blur.
OVERVIEW_AFTER_S = 120.0
DETAIL_S = 60.0


def _detail_panels(axes: Any, analysis: RhythmAnalysis, t_end: float | None = None) -> None:
    """The paper's Fig. 6 panels (speed, activation + beats, style, rhythm) on ``axes`` (4,), up to
    ``t_end`` seconds (None: the whole clip); only the frames, beats and steps shown are drawn."""
    t = analysis.sequence.times
    n = len(t) if t_end is None else int(np.searchsorted(t, t_end, side="right"))
    shown = t[:n]
    end = t_end if t_end is not None else (t[-1] if len(t) > 1 else 1.0)

    def upto(x: np.ndarray) -> np.ndarray:
        return x if t_end is None else x[x <= t_end]

    ax = axes[0]
    ax.plot(shown, analysis.speed[:n], color="0.3", lw=0.8)
    ax.set_ylabel("speed\n(body/s)")
    ax = axes[1]
    ax.plot(shown, analysis.activation[:n], color="tab:blue", lw=0.8, label="beat activation")
    ax.vlines(upto(analysis.beats), 0, 1, color="navy", lw=1.2, label="beats")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("beats")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.fill_between(shown, 0, analysis.style.mask[:n].astype(float), step="mid", color="tab:green", alpha=0.3)
    ax.vlines(upto(analysis.style.times), 0, 1, color="tab:green", lw=1.5)
    ax.set_ylim(0, 1.05)
    ax.set_yticks([])
    ax.set_ylabel("style")
    ax = axes[3]
    r = analysis.rhythm
    ax.vlines(upto(r.step_times), 0, 0.15, color="0.8", lw=0.5)
    ax.vlines(upto(r.step_times[r.onsets]), 0, 1, color="tab:purple", lw=1.5)
    ax.vlines(upto(r.step_times[r.first_downbeat_step :: 16]), 0, 1.05, color="k", lw=0.6, linestyles="dotted")
    ax.set_ylim(0, 1.1)
    ax.set_yticks([])
    ax.set_ylabel("rhythm")
    ax.set_xlabel("time (s)")
    ax.set_xlim(t[0], end)


def _overview_panels(axes: Any, analysis: RhythmAnalysis) -> None:
    """A whole long clip in three panels over minutes: movement speed (mean and 90th percentile per
    bin), the local tempo from the beats, and style events and rhythm onsets per minute."""
    t = analysis.sequence.times
    duration = float(t[-1]) if len(t) else 1.0
    n_bins = int(min(600, max(1, len(t) // 30)))  # at most 600 bins, at least 1 s each
    edges = np.linspace(float(t[0]), duration, n_bins + 1)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_bins - 1)
    counts = np.maximum(np.bincount(which, minlength=n_bins), 1)
    mean = np.bincount(which, weights=analysis.speed, minlength=n_bins) / counts
    mid = 0.5 * (edges[:-1] + edges[1:]) / 60.0
    ax = axes[0]
    ax.plot(mid, mean, color="0.3", lw=0.8)
    ax.set_ylabel("speed\n(body/s)")
    ax = axes[1]
    b = analysis.beats
    if len(b) > 1:
        ax.plot(0.5 * (b[1:] + b[:-1]) / 60.0, 60.0 / np.diff(b), color="navy", lw=0.6)
    ax.set_ylabel("tempo\n(BPM)")
    ax = axes[2]
    minute_edges = np.arange(0.0, duration / 60.0 + 1.0, 1.0)
    r = analysis.rhythm
    for times, color, label in ((analysis.style.times, "tab:green", "style events"),
                                (r.step_times[r.onsets], "tab:purple", "rhythm onsets")):
        hist, _ = np.histogram(np.asarray(times) / 60.0, bins=minute_edges)
        ax.stairs(hist, minute_edges, color=color, lw=1.0, label=label)
    ax.set_ylabel("per\nminute")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("time (min)")
    ax.set_xlim(0.0, duration / 60.0)


def plot_rhythm(path: str | Path, analysis: RhythmAnalysis, title: str = "") -> Path:
    """Keypoint speed, beat activation, beats, style and rhythm on one time axis (paper Fig. 6).

    A clip longer than ``OVERVIEW_AFTER_S`` gets an overview of the whole clip (speed, tempo, style
    and rhythm per minute) above those panels for its first ``DETAIL_S`` seconds. What is drawn is
    bounded (binned overview, a one-minute detail), so the plot's cost does not grow with the clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = analysis.sequence.times
    long_clip = len(t) > 1 and float(t[-1] - t[0]) > OVERVIEW_AFTER_S
    if long_clip:
        fig = plt.figure(figsize=(12, 11))
        grid = fig.add_gridspec(2, 1, height_ratios=[1.0, 1.35], hspace=0.25)
        top, bottom = grid[0], grid[1]
        over: Any = top.subgridspec(3, 1, hspace=0.08).subplots(sharex=True)
        detail: Any = bottom.subgridspec(4, 1, hspace=0.08, height_ratios=[1.2, 1.2, 0.6, 0.8]).subplots(sharex=True)
        _overview_panels(over, analysis)
        over[0].set_title(f"whole clip ({float(t[-1]) / 60.0:.1f} min)", fontsize=10)
        _detail_panels(detail, analysis, t_end=float(t[0]) + DETAIL_S)
        detail[0].set_title(f"first {DETAIL_S:g} s", fontsize=10)
    else:
        fig, axes = plt.subplots(4, 1, figsize=(12, 6.5), sharex=True,
                                 gridspec_kw={"height_ratios": [1.2, 1.2, 0.6, 0.8]})
        _detail_panels(axes, analysis)
    tempo = f"{analysis.tempo_bpm:.1f} BPM" if np.isfinite(analysis.tempo_bpm) else "no tempo"
    fig.suptitle(f"{title}  —  {tempo}, {len(analysis.beats)} beats, {len(analysis.style.times)} style events")
    if not long_clip:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)
