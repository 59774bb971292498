"""``rhythmicnet live``: one asyncio loop (uvloop where installed) that feeds input frames to the engine,
polls the scheduler every millisecond on the loop's monotonic clock, and on any stop (end, ``--duration``,
an error, Ctrl-C) sends MIDI Stop and all-notes-off, and writes the stats file and the ``--record`` file.
Bars are planned (Rhythm2Drum, Drum2Music) in their own process (:class:`~.bar_planner.ProcessPlanner`).
The performer's side (OSC in and out, Ableton Link, the preview window, tap/lock/hold, the start/stop
gesture, the count-in, the drum map) runs on the same loop (:mod:`.performer_io`, :mod:`.engine`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rhythmicnet.realtime.inputs import InputFrame, event_loop_policy
from rhythmicnet.realtime.process_priority import (
    lower_frame_loop_priority,
    raise_frame_loop_priority,
    release_frame_loop_core,
    reserve_frame_loop_core,
)

__all__ = ["LiveOptions", "run_live"]

#: The longest the loop sleeps between two scheduler polls.
POLL_MAX_S = 0.005


@dataclass(frozen=True)
class LiveOptions:
    keypoints: str | None = None
    video: str | None = None
    camera: int | None = None
    loop: bool = False
    duration: float | None = None
    pose_latency_ms: float = 40.0
    midi_port: str | None = None
    midi_api: str = "auto"
    instrument: str = "piano"  # piano | guitar | none
    seed: int = 0
    temperature: float = 1.2
    backend: str = "onnx"
    stats: str | None = None
    record: str | None = None
    latency_offset_ms: float = 0.0
    tempo_range: tuple[float, float] = (60.0, 180.0)
    clock: bool = True
    quiet: bool = False
    #: the frame loop gets a core to itself, pose / decoding / planning the others (2+ cores, Linux). Off by
    #: default: on 2 cores it starved pose (19 -> 32 ms a frame, 13-20 -> 282-305 of 1766 frames dropped in
    #: 60 s) for no gain in the frame loop's p99 (6.15 / 6.63 ms sharing, 5.95 / 6.22 ms reserved)
    reserve_core: bool = False
    rt_priority: bool = True
    osc_port: int | None = None  # OSC in: keypoints (the input when no other is given) and controls
    osc_host: str = "127.0.0.1"
    osc_image_size: tuple[int, int] | None = None
    osc_out: tuple[str, int] | None = None
    link: bool = False
    count_in: bool = False
    gesture: bool = False
    drum_map: str = "gm"  # a shipped map's name or a JSON file
    preview: bool = False


class _Loop:
    """The scheduler's clock: the running event loop's monotonic time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def now(self) -> float:
        return self.loop.time()


@dataclass
class _InputCounters:
    dropped: int = 0
    frames: int = 0
    pose_ms: list[float] | None = None


async def _frames(opts: LiveOptions, counters: _InputCounters, performer: Any) -> AsyncIterator[InputFrame]:
    if performer.opts.osc_frames:  # keypoints over OSC: until --duration, Ctrl-C or the preview's Q
        async for f in performer.osc_in.stream(opts.duration, performer.quit):
            yield f
        return
    if opts.keypoints is not None:
        from rhythmicnet.offline.keypoint_io import load_keypoints
        from rhythmicnet.realtime.inputs import KeypointReplay

        seq = load_keypoints(opts.keypoints)
        async for f in KeypointReplay(seq, pose_latency_s=opts.pose_latency_ms / 1000, loop=opts.loop).stream(
                duration_s=opts.duration):
            yield f
        return
    from rhythmicnet.realtime.video_input import PoseProcess, VideoSource

    source = VideoSource(opts.video, opts.camera, loop=opts.loop)
    pose = PoseProcess()
    counters.pose_ms = pose.times_ms
    try:
        async for f in source.stream(pose):
            counters.dropped = source.dropped
            yield f
    finally:
        pose.close()
        counters.dropped = source.dropped
    # the input ended by itself: say why in one line (the caller's finally has sent all notes off)
    from rhythmicnet.errors import DeviceError, InputError

    if source.frames == 0:
        raise InputError(f"{opts.video}: no frame could be decoded" if opts.video is not None
                         else f"camera {opts.camera}: no frame was delivered")
    if opts.camera is not None and source.lost:
        raise DeviceError(f"camera {opts.camera}: {source.lost} after {source.frames} frames; stopped")


def _summary(values: list[float]) -> dict[str, float]:
    """Median and p99 (ms) of per-frame or per-event times."""
    v = np.asarray(values, float) if values else np.full(1, np.nan)
    return {"median_ms": round(float(np.median(v)), 3), "p99_ms": round(float(np.percentile(v, 99)), 3),
            "count": len(values)}


async def _run(opts: LiveOptions) -> dict[str, Any]:
    from concurrent.futures.process import BrokenProcessPool

    from rhythmicnet.errors import InputError
    from rhythmicnet.export.backends import configure_threads, graph_factory
    from rhythmicnet.models.beat_hmm import BeatTrackerConfig
    from rhythmicnet.models.beat_model import load_beat_model
    from rhythmicnet.models.keypoints import MODEL_FPS
    from rhythmicnet.models.live_rhythm import LiveRhythm
    from rhythmicnet.models.midi_messages import load_drum_map, program_change
    from rhythmicnet.models.pose_gesture import ArmsUpGesture
    from rhythmicnet.realtime.bar_planner import PlannerOptions, ProcessPlanner
    from rhythmicnet.realtime.engine import LiveEngine
    from rhythmicnet.realtime.midi_clock import MidiClock
    from rhythmicnet.realtime.midi_out import MidiPortSink, MidiSink
    from rhythmicnet.realtime.midi_record import RecordingSink
    from rhythmicnet.realtime.performer_io import PerformerIO, PerformerOptions, median_or_none
    from rhythmicnet.realtime.scheduler import Scheduler

    try:
        drum_map = load_drum_map(opts.drum_map)
    except ValueError as e:
        raise InputError(f"--drum-map {e}") from None
    configure_threads()
    graphs = graph_factory(opts.backend)
    loop = asyncio.get_running_loop()
    try:  # the planner's process loads Rhythm2Drum and Drum2Music before any frame is read
        planner = ProcessPlanner(PlannerOptions(opts.instrument, opts.temperature, opts.seed, opts.backend))
    except BrokenProcessPool as exc:
        raise InputError(f"the drum or accompaniment model could not be loaded in the planner process ({exc})"
                         ) from None
    port = MidiPortSink(opts.midi_port, api=opts.midi_api)
    sink: MidiSink = RecordingSink(port) if opts.record else port
    scheduler = Scheduler(sink, _Loop(loop))
    lo, hi = opts.tempo_range
    rhythm = LiveRhythm(load_beat_model("full_causal"), graphs=graphs,
                        tracker=BeatTrackerConfig(fps=MODEL_FPS, min_bpm=lo, max_bpm=hi))
    engine = LiveEngine(rhythm, planner, scheduler, latency_offset_s=opts.latency_offset_ms / 1000.0,
                        clock=MidiClock() if opts.clock else None, drum_map=drum_map, count_in=opts.count_in,
                        gesture=ArmsUpGesture() if opts.gesture else None, events=opts.osc_out is not None)
    if planner.program is not None:
        sink.send(program_change(drum_map.instrument_channel, planner.program))
    frame_ms: list[float] = []
    t_start = loop.time()
    stop = asyncio.Event()
    osc_frames = opts.osc_port is not None and not (opts.video or opts.keypoints or opts.camera is not None)
    performer = PerformerIO(PerformerOptions(opts.osc_port, opts.osc_host, opts.osc_image_size, osc_frames,
                                             opts.pose_latency_ms / 1000, opts.osc_out, opts.link, opts.preview),
                            engine, t_start)
    try:
        await performer.open()
    except BaseException:
        performer.close()
        planner.close()
        sink.close()
        raise

    async def poller() -> None:
        # wake at the next event (at least every 5 ms, for the MIDI clock's planning), not every ms:
        # events go out on time and an idle loop costs little CPU
        while not stop.is_set():
            engine.poll()
            performer.poll(loop.time())
            nxt = scheduler.next_time()
            delay = POLL_MAX_S if nxt is None else min(POLL_MAX_S, max(0.0, nxt - loop.time()))
            await asyncio.sleep(delay)

    poll_task = asyncio.create_task(poller())
    counters = _InputCounters()
    last_status = 0.0
    try:
        async for f in _frames(opts, counters, performer):
            if opts.duration is not None and loop.time() - t_start > opts.duration or performer.quit.is_set():
                break
            counters.frames += 1
            t0 = time.perf_counter()
            engine.on_frame(f.capture_time, f.keypoints, f.confidence, loop.time())
            frame_ms.append((time.perf_counter() - t0) * 1000)
            react = engine.stats.capture_to_send_ms[-20:]
            if performer.preview is not None:
                performer.frame(f, loop.time(), median_or_none(frame_ms[-300:]), median_or_none(react),
                                scheduler.late_events)
            if not opts.quiet and loop.time() - last_status > 0.5:
                last_status = loop.time()
                st = engine.status(loop.time())
                tempo = st.tempo_bpm if st.tempo_bpm is not None else float("nan")
                bar = st.bar if st.bar is not None and st.bar >= 0 else -1
                react_s = f"{np.median(react):4.0f} ms" if react else "   - ms"
                print(f"\rtempo {tempo:6.1f} BPM  bar {bar:4d}  {st.state:8s} {st.mode:6s}  frame "
                      f"{np.median(frame_ms[-300:]):5.1f} ms  move->MIDI {react_s}  late {scheduler.late_events}  "
                      f"sent {scheduler.sent}", end="", file=sys.stderr, flush=True)
    finally:
        stop.set()
        await poll_task
        engine.stop()
        performer.poll(loop.time())  # the last events due
        performer.close()
        sink.close()
        if not opts.quiet:
            print(file=sys.stderr)
        if opts.record and isinstance(sink, RecordingSink):
            sink.write(opts.record, engine.stats.beat_grid)
    return {
        "frames": engine.stats.frames,
        "dropped_frames": counters.dropped,
        "notes_sent": sink.notes_sent,
        "late_events": scheduler.late_events,
        "late_by_type": scheduler.late_by_type,
        "max_late_ms": round(scheduler.max_late_ms, 2),
        "hanging_notes": len(sink.held),
        "tempo_bpm": round(60.0 / engine.period, 2) if engine.origin is not None else None,
        "input_frames": counters.frames,
        "input_fps": round(counters.frames / max(loop.time() - t_start, 1e-9), 2),
        "per_frame_ms": _summary(frame_ms),
        "pose_ms": _summary(counters.pose_ms) if counters.pose_ms else None,
        "stages": {name: _summary(v) for name, v in engine.stats.stage_ms.items()},
        "capture_to_send_ms": _summary(engine.stats.capture_to_send_ms),
        "first_note_s": None if engine.stats.first_note_time is None else engine.stats.first_note_time - t_start,
        "bars_planned": engine.stats.bars_planned,
        "reactions": engine.stats.reactions,
        "skipped_notes": engine.stats.skipped,
        "accents": engine.stats.accents,
        "beat_grid": [round(t - t_start, 4) for t in engine.stats.beat_grid],
        "midi_port": port.name,
        "latency_offset_ms": opts.latency_offset_ms,
        "warmup_beats": engine.warmup_beats,
        "backend": opts.backend,
        "muted_notes": engine.stats.muted,
        "taps": engine.stats.taps,
        "gestures": engine.stats.gestures,
        "dancer_left": engine.stats.departures,
        "tempo_mode": engine.mode,
        "drum_map": drum_map.name,
        **performer.stats(),
    }


def run_live(opts: LiveOptions) -> dict[str, Any]:
    """Run until the input ends, ``duration`` passes or Ctrl-C; returns the stats (also written to --stats)."""
    asyncio.set_event_loop_policy(event_loop_policy())
    stats: dict[str, Any] = {}
    # before any worker starts: the pose and planner processes and the decoder thread move off this core
    core = reserve_frame_loop_core() if opts.reserve_core else None
    # the frame loop takes a core at once when a frame is due (SCHED_FIFO where permitted)
    policy = raise_frame_loop_priority() if opts.rt_priority else None
    try:
        stats = asyncio.run(_run(opts))
        if stats:
            stats["frame_loop_core"] = core
            stats["frame_loop_priority"] = policy or "normal"
    finally:
        asyncio.set_event_loop_policy(None)
        if policy is not None:
            lower_frame_loop_priority()
        if core is not None:
            release_frame_loop_core()
        if opts.stats and stats:
            from rhythmicnet.fileio import write_text_atomic

            write_text_atomic(Path(opts.stats), json.dumps(stats, indent=1) + "\n")
    return stats
