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


def plot_rhythm(path: str | Path, analysis: RhythmAnalysis, title: str = "") -> Path:
    """Keypoint speed, beat activation, beats, style and rhythm on one time axis (paper Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = analysis.sequence.times
    fig, axes = plt.subplots(4, 1, figsize=(12, 6.5), sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 1.2, 0.6, 0.8]})
    ax = axes[0]
    ax.plot(t, analysis.speed, color="0.3", lw=0.8)
    ax.set_ylabel("speed\n(body/s)")
    ax = axes[1]
    ax.plot(t, analysis.activation, color="tab:blue", lw=0.8, label="beat activation")
    ax.vlines(analysis.beats, 0, 1, color="navy", lw=1.2, label="beats")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("beats")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.fill_between(t, 0, analysis.style.mask.astype(float), step="mid", color="tab:green", alpha=0.3)
    ax.vlines(analysis.style.times, 0, 1, color="tab:green", lw=1.5)
    ax.set_ylim(0, 1.05)
    ax.set_yticks([])
    ax.set_ylabel("style")
    ax = axes[3]
    r = analysis.rhythm
    ax.vlines(r.step_times, 0, 0.15, color="0.8", lw=0.5)
    on = r.step_times[r.onsets]
    ax.vlines(on, 0, 1, color="tab:purple", lw=1.5)
    bars = r.step_times[r.first_downbeat_step :: 16]
    ax.vlines(bars, 0, 1.05, color="k", lw=0.6, linestyles="dotted")
    ax.set_ylim(0, 1.1)
    ax.set_yticks([])
    ax.set_ylabel("rhythm")
    ax.set_xlabel("time (s)")
    ax.set_xlim(t[0], t[-1] if len(t) > 1 else 1.0)
    tempo = f"{analysis.tempo_bpm:.1f} BPM" if np.isfinite(analysis.tempo_bpm) else "no tempo"
    fig.suptitle(f"{title}  —  {tempo}, {len(analysis.beats)} beats, {len(analysis.style.times)} style events")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)
