"""``rhythmicnet bench live``: the live engine's timing quality and latency.

* :func:`beat_timing` (``bench live --beats``): the frozen held-out synthetic clips
  (:data:`~rhythmicnet.offline.beat_eval_set.EVAL_SET`, 200 clips of 30 s) replayed as a keypoint stream
  with 40 ms of pose latency through the whole engine on a simulated clock
  (:func:`~.simulated_run.play_simulated`: the deterministic form of ``live --keypoints``). The beat grid
  the engine *sent* (each quarter note's time once frozen, 50 ms before it is due) is scored against the
  true beats from 6 s on: mir_eval's F-measure (70 ms window) per clip, averaged, and the median and p90
  of |error| (each sent beat to its nearest true beat) pooled over all clips. Drums only: the
  accompaniment never moves the grid.
* :func:`latency` (``bench live``): ``rhythmicnet live --video <bundled clip> --loop`` for N seconds on
  this machine, into a virtual MIDI port, through the real loop (uvloop, mediapipe pose on every frame,
  Drum2Music in its own process). It reports what ``--stats`` records (per-stage time per frame,
  capture -> MIDI send of movement-driven hits, dropped frames, late events, hanging notes) plus pose time
  per frame and CPU load, and the camera -> sound budget.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BeatTimingResult", "beat_timing", "beat_timing_goals", "latency", "latency_goals"]

#: Goals of the issue: F >= 80, median |error| <= 30 ms, p90 <= 70 ms (from 6 s on).
BEAT_GOALS = {"f_measure": 80.0, "median_ms": 30.0, "p90_ms": 70.0}
SCORE_FROM_S = 6.0


@dataclass(frozen=True)
class BeatTimingResult:
    clips: int
    f_measure: float  # mean over clips, x100
    median_ms: float  # pooled over every sent beat
    p90_ms: float
    first_note_s: float  # median time from the first frame to the first note
    per_clip: list[dict[str, float]]

    def as_dict(self) -> dict[str, Any]:
        return {"clips": self.clips, "f_measure": round(self.f_measure, 2), "median_ms": round(self.median_ms, 2),
                "p90_ms": round(self.p90_ms, 2), "first_note_s": round(self.first_note_s, 2),
                "per_clip": self.per_clip}


def score_sent_grid(sent: np.ndarray, true: np.ndarray, from_s: float = SCORE_FROM_S
                    ) -> tuple[float, np.ndarray]:
    """F-measure (mir_eval, 70 ms) and |error| (s) of each sent beat to its nearest true beat, both from
    ``from_s`` on. Shapes: (N,), (M,) -> float, (N',)."""
    import mir_eval

    s, t = np.sort(sent[sent >= from_s]), np.sort(true[true >= from_s])
    if len(s) == 0 or len(t) == 0:
        return 0.0, np.full(max(len(s), 1), np.inf) if len(s) else np.zeros(0)
    f = float(mir_eval.beat.f_measure(t, s))
    err = np.min(np.abs(s[:, None] - t[None, :]), axis=1)
    return f, err


def beat_timing(n_clips: int | None = None, *, pose_latency_s: float = 0.040, backend: str = "onnx",
                progress: Callable[[str], None] | None = None) -> BeatTimingResult:
    """The held-out clips through the engine (see the module docstring); ``n_clips``: the first n (all 200
    by default)."""
    from rhythmicnet.export.backends import configure_threads, graph_factory
    from rhythmicnet.models.beat_model import load_beat_model
    from rhythmicnet.models.live_rhythm import LiveRhythm
    from rhythmicnet.models.rhythm2drum import Rhythm2Drum, SamplingConfig
    from rhythmicnet.offline.beat_eval_set import EVAL_SET, eval_clips
    from rhythmicnet.realtime.bar_planner import InlinePlanner
    from rhythmicnet.realtime.engine import LiveEngine
    from rhythmicnet.realtime.midi_out import CaptureSink
    from rhythmicnet.realtime.scheduler import Scheduler, SimulatedClock
    from rhythmicnet.realtime.simulated_run import play_simulated

    configure_threads()
    graphs = graph_factory(backend)
    beat_model = load_beat_model("full_causal")
    drums = Rhythm2Drum.load(graphs=graphs)
    total = len(EVAL_SET.seeds) if n_clips is None else n_clips
    per_clip, errors, firsts = [], [], []
    t_start = time.perf_counter()
    start = 100.0  # the simulated clock's time at the clip's first frame
    for i, dance in enumerate(eval_clips(n_clips)):
        clock = SimulatedClock(start)
        planner = InlinePlanner(drums.performer(SamplingConfig(seed=i)))
        engine = LiveEngine(LiveRhythm(beat_model, graphs=graphs), planner, Scheduler(CaptureSink(), clock))
        play_simulated(engine, clock, dance.sequence, pose_latency_s=pose_latency_s)
        t0 = float(dance.sequence.times[0])
        sent = np.asarray(engine.stats.beat_grid, float) - start  # seconds from the first frame
        f, err = score_sent_grid(sent, dance.beats - t0)
        errors.append(err)
        first = math.nan if engine.stats.first_note_time is None else engine.stats.first_note_time - start
        firsts.append(first)
        per_clip.append({"seed": int(EVAL_SET.seeds[i]), "f_measure": round(100 * f, 2),
                         "median_ms": round(float(np.median(err)) * 1000, 2) if len(err) else math.nan,
                         "tempo_bpm": round(dance.tempo_bpm, 2), "first_note_s": round(first, 3)})
        if progress is not None and (i + 1) % 10 == 0:
            progress(f"{i + 1}/{total} clips, {time.perf_counter() - t_start:.0f} s")
    pooled = np.concatenate(errors) if errors else np.zeros(1)
    return BeatTimingResult(len(per_clip), float(np.mean([c["f_measure"] for c in per_clip])),
                            float(np.median(pooled)) * 1000, float(np.percentile(pooled, 90)) * 1000,
                            float(np.nanmedian(firsts)), per_clip)


def beat_timing_goals(r: BeatTimingResult) -> list[str]:
    g = BEAT_GOALS
    return [f"{'PASS' if r.f_measure >= g['f_measure'] else 'MISS'} F {r.f_measure:.1f} >= {g['f_measure']:g}",
            f"{'PASS' if r.median_ms <= g['median_ms'] else 'MISS'} median |error| {r.median_ms:.1f} ms "
            f"<= {g['median_ms']:g} ms",
            f"{'PASS' if r.p90_ms <= g['p90_ms'] else 'MISS'} p90 |error| {r.p90_ms:.1f} ms <= {g['p90_ms']:g} ms"]


def latency(seconds: float = 300.0, *, video: str | None = None, backend: str = "onnx", midi_api: str = "auto",
            instrument: str = "piano", reserve_core: bool = False, rt_priority: bool = True) -> dict[str, Any]:
    """``live --video <clip> --loop`` for ``seconds`` (see the module docstring); returns the live stats plus
    ``cpu_load`` (CPU seconds of this process and its finished children per wall second, of
    ``os.cpu_count()``) and ``load_avg`` (1-minute load average at the end)."""
    from rhythmicnet.realtime.live import LiveOptions, run_live

    clip = video or str(bundled_clip())
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    stats = run_live(LiveOptions(video=clip, loop=True, duration=seconds, midi_api=midi_api, instrument=instrument,
                                 backend=backend, quiet=True, reserve_core=reserve_core,
                                 rt_priority=rt_priority))
    wall = time.perf_counter() - t0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    stats["cpu_load"] = {"main_process_cores": round(cpu / wall, 3),
                         "children_cpu_s": round(children.ru_utime + children.ru_stime, 1),
                         "cpus": os.cpu_count()}
    stats["load_avg"] = round(os.getloadavg()[0], 2)
    stats["wall_s"] = round(wall, 1)
    stats["video"] = clip
    return stats


def latency_goals(stats: dict[str, Any]) -> list[str]:
    """The issue's goals: processing after pose <= 5 ms p99 per frame; movement-driven hits sent within
    2 frames + one 16th of the movement (p99); 0 late events and 0 hanging notes."""
    after_pose = stats["per_frame_ms"]["p99_ms"]
    tempo = stats.get("tempo_bpm") or 120.0
    fps = stats.get("input_fps") or 30.0
    bound = (2.0 / fps + 60.0 / tempo / 4.0) * 1000
    c2s = stats["capture_to_send_ms"]["p99_ms"]
    return [f"{'PASS' if after_pose <= 5.0 else 'MISS'} processing after pose p99 {after_pose:.2f} ms <= 5 ms",
            f"{'PASS' if c2s <= bound else 'MISS'} movement -> MIDI send p99 {c2s:.0f} ms <= 2 frames + one 16th "
            f"({bound:.0f} ms at {fps:g} fps, {tempo:.0f} BPM)",
            f"{'PASS' if stats['late_events'] == 0 else 'MISS'} late events {stats['late_events']}",
            f"{'PASS' if stats['hanging_notes'] == 0 else 'MISS'} hanging notes {stats['hanging_notes']}"]


def bundled_clip() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "offline" / "examples" / "jumping_jacks.mp4"


def format_latency(stats: dict[str, Any]) -> str:
    """The latency figures and the camera -> sound budget as text."""
    lines = [f"live latency: {stats.get('wall_s')} s of {stats.get('video')}, {stats['frames']} frames "
             f"({stats.get('input_fps')} fps), {stats['dropped_frames']} dropped, {stats['notes_sent']} notes, "
             f"{stats['late_events']} late events, {stats['hanging_notes']} hanging notes, "
             f"tempo {stats['tempo_bpm']} BPM",
             f"CPU: main process {stats['cpu_load']['main_process_cores']} cores of {stats['cpu_load']['cpus']}, "
             f"1-min load average {stats['load_avg']}; frame loop "
             + (f"on core {stats['frame_loop_core']} (pose, decoding, planning on the others)"
                if stats.get("frame_loop_core") is not None else "sharing every core")
             + f", priority {stats.get('frame_loop_priority', 'normal')}",
             "per frame (ms)            median      p99"]
    rows = [("pose (mediapipe)", stats.get("pose_ms")), ("after pose, total", stats["per_frame_ms"])]
    rows += [(f"  {name}", v) for name, v in stats["stages"].items()]
    rows += [("movement -> MIDI send", stats["capture_to_send_ms"])]
    for name, v in rows:
        if v:
            lines.append(f"{name:24s} {v['median_ms']:8.2f} {v['p99_ms']:8.2f}")
    pose = (stats.get("pose_ms") or {}).get("median_ms", float("nan"))
    fps = stats.get("input_fps") or 30.0
    c2s = stats["capture_to_send_ms"]["median_ms"]
    decide = stats["per_frame_ms"]["median_ms"]
    lead = c2s - pose - decide if math.isfinite(c2s) else float("nan")
    lines.append(f"camera -> sound budget (median): capture <= {1000 / fps:.0f} ms (one frame), pose {pose:.1f} ms, "
                 f"decision {decide:.1f} ms, scheduling lead (wait for the next 16th) {lead:.0f} ms, MIDI send "
                 f"< 1 ms (each event sent at its time by the loop), then the DAW's own output latency "
                 f"(--latency-offset)")
    return "\n".join(lines)
