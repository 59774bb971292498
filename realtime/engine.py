"""The live engine: keypoint frames in, drums and accompaniment out on the scheduler, following the dancer.

The design notes' live timing, as built here (one thread, driven by :meth:`LiveEngine.on_frame`):

* **Warm-up.** Nothing plays until the fixed-lag tracker has decided ``warmup_beats`` beats (default 6)
  and the beat predictor has its grid (fitted to 6 decided beats; on 40 held-out clips starting from 4
  scored F 82.0 / p90 92 ms, from 6 F 84.0 / p90 86 ms): about 6 beats plus the 0.5 s decision lag,
  then the first bar starts on a predicted beat at least ``lead_s`` (0.7 s) ahead. No downbeat is chosen
  live: bar 0's downbeat is that first predicted beat, and bars count in fours from there.
* **Plan a bar ahead.** When bar i starts (its downbeat is the next event), bar i+1's content is planned:
  the drum bar from a rhythm of the predicted beats (steps 0/4/8/12) plus the steps of the movement onsets
  seen during bar i-1 (the style of the bar just played), then Drum2Music's bar from that drum bar.
* **Times are not frozen.** Each planned note has a position in beats since bar 0 (step / 4 plus the
  groove's micro-offset); its clock time comes from the latest predicted beat grid
  (:class:`~rhythmicnet.models.beat_predictor.BeatPredictor`, a Kalman filter over the decided beats) and
  is re-anchored on every frame until 50 ms before it is sent. ``latency_offset_s`` sends everything
  that much earlier (a DAW's output latency).
* **MIDI clock.** With ``clock`` set, Start goes out with bar 0's downbeat and 24 pulses per quarter
  follow the grid's tempo, smoothed and phase-locked to it (:mod:`.midi_clock`); Stop on stop.
* **Movement reactions.** A movement onset adds a hit (snare) on the next 16th step of the bar being
  played if that step is free, and accents the planned hit there if not; the accompaniment is never
  changed by it.

Performer controls (issue 18), all on the same clock and frame loop:

* **Tempo control** (:class:`~.tempo_control.TempoControl`): :meth:`LiveEngine.lock` keeps the tempo and
  follows only the dancer's phase, :meth:`~LiveEngine.hold` freezes tempo and phase, :meth:`~LiveEngine.tap`
  plays on the grid of the taps (before the first bar, four taps start the music without the warm-up),
  :meth:`~LiveEngine.release` follows the dancer again.
* **Count-in** (``count_in``): one bar of clicks (the drum map's count-in notes, accented first beat) before
  bar 0 and before every restart; MIDI clock Start goes out on the downbeat after it, so a DAW's bar 1 is
  the first bar of music.
* **Start / stop** (:meth:`~LiveEngine.start_stop`, the gesture of :mod:`~rhythmicnet.models.pose_gesture`
  when ``gesture`` is given): stop silences from the next bar at least ``STOP_AHEAD_S`` ahead (MIDI clock
  Stop on its downbeat); start plays again from the next bar far enough ahead (after the count-in).
* **The dancer leaves** (:class:`~.groove_gate.GrooveGate`): the grid is held, the clock runs on, the music
  fades out with a velocity ramp; it resumes on the next bar once the dancer is back.
* **Drum map** (``drum_map``): the note of each drum class and the channels
  (:class:`~rhythmicnet.models.midi_messages.DrumMap`).
* **Events** (``events=True``): ``(time, kind, args)`` of each beat, bar, tempo change, style change and
  mode change, at the time they sound, for OSC out (:mod:`.osc_out`).

Bars are planned (drums by Rhythm2Drum, then the accompaniment by Drum2Music) through a
:class:`~.bar_planner.BarPlanner`: in ``rhythmicnet live`` its own process
(:class:`~.bar_planner.ProcessPlanner`), so a planned bar (~17 ms of drums, a few hundred ms of
accompaniment; a bar lasts ~2 s) never holds up a frame; inline (:class:`~.bar_planner.InlinePlanner`) in
the deterministic tests. A bar's notes join the schedule when its plan comes back; a movement reaction
only goes into a bar whose plan is back.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import mido
import numpy as np

from rhythmicnet.models.keypoints import MODEL_FPS
from rhythmicnet.models.live_rhythm import LiveFrame, LiveRhythm
from rhythmicnet.models.midi_messages import DRUM_MAPS, DrumMap, note_off, note_on
from rhythmicnet.models.pose_gesture import ArmsUpGesture
from rhythmicnet.realtime.bar_planner import BarPlan, BarPlanner
from rhythmicnet.realtime.groove_gate import GrooveGate
from rhythmicnet.realtime.midi_clock import ClockState, MidiClock
from rhythmicnet.realtime.scheduler import Scheduler
from rhythmicnet.realtime.tempo_control import TAP, TempoControl

__all__ = ["EngineStats", "EngineStatus", "LiveEngine", "PlannedNote"]


def mido_stop() -> mido.Message:
    return mido.Message("stop")

STEPS_PER_BAR = 16
SNARE = 1
#: A stop takes effect on the first downbeat at least this far ahead (the MIDI clock's 250 ms of planned
#: pulses end before its Stop).
STOP_AHEAD_S = 0.3
#: Taps that start the music before the warm-up is over.
START_TAPS = 4
#: With no input frame for this long, :meth:`LiveEngine.poll` keeps the groove going itself.
ADVANCE_S = 0.1
#: Count-in clicks: velocity of the first beat and of the others.
CLICK_VELOCITIES = (120, 90)


@dataclass
class PlannedNote:
    """A note of a planned bar: start and end in beats since bar 0, channel, note, velocity; the scheduler
    ids of its note-on and note-off once scheduled."""

    start_beats: float
    end_beats: float
    channel: int
    note: int
    velocity: int
    on_id: int | None = None
    off_id: int | None = None
    capture_time: float | None = None  # movement-driven hits: when the frame that caused it was captured
    click: bool = False  # a count-in click (always sounds)
    sent_velocity: int | None = None  # the velocity of the scheduled note-on


@dataclass
class EngineStats:
    frames: int = 0
    notes_planned: int = 0
    reactions: int = 0
    skipped: int = 0  # notes whose time passed before they could be scheduled
    accents: int = 0
    bars_planned: int = 0
    first_note_time: float | None = None
    beat_grid: list[float] = field(default_factory=list)  # the quarter-note times the engine sent
    stage_ms: dict[str, list[float]] = field(default_factory=dict)  # per-frame time of each stage
    capture_to_send_ms: list[float] = field(default_factory=list)  # movement-driven hits
    muted: int = 0  # notes not sent: the dancer away (after the fade) or stopped
    taps: int = 0
    gestures: int = 0  # start/stop gestures that fired
    departures: int = 0  # the dancer left

    def timed(self, stage: str, ms: float) -> None:
        self.stage_ms.setdefault(stage, []).append(ms)


@dataclass(frozen=True)
class EngineStatus:
    """What the status line and the preview show: ``state`` is warm-up, playing, stopped, away (the dancer
    left: fading or silent) or fading; ``beat``: position in beats since bar 0 (None before it is chosen);
    ``mode``: the tempo mode."""

    state: str
    mode: str
    tempo_bpm: float | None
    bar: int | None
    beat: float | None


class LiveEngine:
    def __init__(self, rhythm: LiveRhythm, planner: BarPlanner, scheduler: Scheduler, *, warmup_beats: int = 6,
                 lead_s: float = 0.7, latency_offset_s: float = 0.0, clock: MidiClock | None = None,
                 drum_map: DrumMap | None = None, count_in: bool = False, gate: GrooveGate | None = None,
                 gesture: ArmsUpGesture | None = None, tempo: TempoControl | None = None,
                 events: bool = False) -> None:
        self.rhythm, self.planner, self.scheduler = rhythm, planner, scheduler
        self.warmup_beats, self.lead_s, self.latency_s = warmup_beats, lead_s, latency_offset_s
        self.clock, self.clock_state = clock, ClockState()
        self.drum_map = drum_map or DRUM_MAPS["gm"]
        self.count_in = count_in
        self.gate = gate or GrooveGate()
        self.gesture = gesture
        if tempo is None:
            p = rhythm.predictor.config
            tempo = TempoControl(p.min_period_s, p.max_period_s)
        self.tempo = tempo
        self.events: list[tuple[float, str, tuple[Any, ...]]] | None = [] if events else None
        self._clock_running = False
        self._clock_start_beat: float | None = None  # the beat MIDI clock Start goes out on (None: not due)
        self._clock_stop_beat: float | None = None
        self._clock_beat0 = 0.0  # the beat of the running clock's Start
        self._last_tempo: float | None = None  # the tempo last given in the events
        self._bar_rhythm: dict[int, np.ndarray] = {}  # the rhythm each bar was planned from (for the events)
        self._last_style: tuple[int, ...] | None = None
        self._last_mode = self.tempo.mode
        self.stats = EngineStats()
        self.decided_beats = 0
        self.origin: float | None = None  # clock time of bar 0's downbeat (the beat grid's anchor)
        self.period = 0.5  # seconds per beat, from the tracker's tempo
        self.bars: dict[int, list[PlannedNote]] = {}
        self.onset_times: list[float] = []
        self.rhythm_offset = 0.0  # rhythm time -> clock time (the replay's start)
        self._grid_beat = 0  # the next quarter note of the sent beat grid (beats since bar 0)
        self._pending: dict[int, Future[BarPlan]] = {}  # bars asked of the planner, not back yet
        self._planned_upto = -1  # the last bar asked for (bars are asked for in order)
        self._reaction_ids: dict[int, float] = {}  # scheduler id of a reaction's note-on -> capture time
        self._last_advance = 0.0  # clock time of the last _advance

    # --- the beat grid ---------------------------------------------------------------------------
    def beat_time(self, beats: float) -> float:
        """Clock time of a position in beats since bar 0 on the current grid."""
        assert self.origin is not None
        return self.origin + beats * self.period

    def send_time(self, beats: float) -> float:
        """When a note at ``beats`` is sent: its grid time less the latency offset."""
        return self.beat_time(beats) - self.latency_s

    def _reanchor(self, frame: LiveFrame) -> None:
        """Follow the dancer's grid as the tempo mode says (see :meth:`_align`); the grid is held while the
        dancer is away."""
        g = frame.grid
        if g is None or self.origin is None or self.gate.away:
            return
        target = self.tempo.target(g.anchor + self.rhythm_offset, g.period, self.period)
        if target is not None:
            max_shift = None if target.slew is None else target.slew / MODEL_FPS
            self._align(target.anchor, target.match_period, target.period, max_shift)

    def _align(self, anchor: float, match_period: float, period: float, max_shift: float | None = None) -> None:
        """Move the grid to the latest prediction, keeping the index of the beats being played: the next
        quarter note not yet frozen goes to the predicted beat nearest its old time, and the origin follows.

        Matching at the present, not at the origin: bar 0 may be minutes ago, and a beat k beats from the
        origin moves by k times any period change, so matching there renumbered the current beats whenever
        the tempo changed (the sent grid jumped back or skipped whole bars, 40 ms x k after a 1 ms change)."""
        assert self.origin is not None
        ref = float(self._grid_beat)
        old = self.beat_time(ref)
        target = anchor + round((old - anchor) / match_period) * match_period
        if max_shift is not None:  # lock: the phase slews towards the dancer's
            target = old + max(-max_shift, min(max_shift, target - old))
        self.period = period
        self.origin = target - ref * period

    # --- planning -------------------------------------------------------------------------------
    def _style_steps(self, bar: int) -> list[int]:
        """16th steps of bar ``bar`` on which a movement onset happened."""
        if self.origin is None:
            return []
        steps = []
        for t in self.onset_times:
            pos = (t - self.origin) / self.period * 4 - bar * STEPS_PER_BAR
            if 0 <= pos < STEPS_PER_BAR:
                steps.append(int(round(pos)) % STEPS_PER_BAR)
        return steps

    def plan_bar(self, bar: int) -> None:
        """Ask the planner for bar ``bar``: a rhythm of the beats (steps 0/4/8/12) plus the steps of the
        movement onsets of the bar just played (bar - 2: bar - 1 is still being played)."""
        rhythm = np.zeros(STEPS_PER_BAR, bool)
        rhythm[::4] = True
        rhythm[self._style_steps(bar - 2)] = True
        if self.events is not None:
            self._bar_rhythm[bar] = rhythm
        self._pending[bar] = self.planner.submit(rhythm, 60.0 / self.period)
        self._planned_upto = bar
        self.stats.bars_planned += 1

    def _collect_plans(self) -> None:
        """Bars whose plan came back join the schedule: drums at their steps plus the groove's micro-offsets,
        the accompaniment at its steps."""
        for bar, fut in list(self._pending.items()):
            if not fut.done():
                continue
            del self._pending[bar]
            plan = fut.result()  # a planner failure stops the performance here (all notes off)
            base = bar * 4.0
            notes = self.bars.get(bar, [])  # count-in clicks may be there already
            dm = self.drum_map
            cls, step = np.nonzero(plan.drums.hits)
            for c, st in zip(cls.tolist(), step.tolist(), strict=True):
                start = base + (st + float(plan.drums.offsets[c, st])) / 4
                vel = int(np.clip(round(float(plan.drums.velocities[c, st]) * 127), 1, 127))
                notes.append(PlannedNote(start, start + 0.125, dm.drum_channel, dm.notes[c], vel))
            for n in plan.music:
                start = base + n.step / 4
                notes.append(PlannedNote(start, start + n.duration / 4, dm.instrument_channel, n.pitch, n.velocity))
            self.bars[bar] = notes
            self.stats.notes_planned += len(notes)

    def _velocity(self, n: PlannedNote) -> int:
        """The velocity a note sounds at now (its own times the gate's gain); 0: it does not sound."""
        if n.click:
            return n.velocity
        v = int(round(n.velocity * self.gate.gain(n.start_beats)))
        return v if v >= 1 else 0

    def _schedule_or_retime(self) -> None:
        """Give every planned note its time on the current grid (new notes scheduled, pending ones moved) and
        its velocity (the gate's fade, stop and resume). A note whose time has passed before it could be
        scheduled (an accompaniment bar that came late) is skipped, never sent late; one that is silent
        until its time passes is muted."""
        now = self.scheduler.clock.now()
        sched = self.scheduler
        for notes in self.bars.values():
            for n in notes:
                if n.on_id == -1:
                    continue
                on, off = self.send_time(n.start_beats), self.send_time(n.end_beats)
                vel = self._velocity(n)
                if n.on_id is None and on < now + 0.002:
                    n.on_id = n.off_id = -1
                    if vel:
                        self.stats.skipped += 1
                    else:
                        self.stats.muted += 1
                    continue
                on, off = max(now, on), max(now, off)
                if n.on_id is None:
                    if not vel:
                        continue  # looked at again on the next frame: a resume may make it sound
                    n.on_id = sched.schedule(on, note_on(n.channel, n.note, vel))
                    n.off_id = sched.schedule(off, note_off(n.channel, n.note))
                    n.sent_velocity = vel
                    if self.stats.first_note_time is None:
                        self.stats.first_note_time = on
                    if n.capture_time is not None:
                        self._reaction_ids[n.on_id] = n.capture_time
                    continue
                assert n.off_id is not None
                if not vel and sched.cancel(n.on_id):  # silenced before it was frozen
                    sched.cancel(n.off_id)
                    self._reaction_ids.pop(n.on_id, None)
                    n.on_id = n.off_id = n.sent_velocity = None
                    continue
                if vel and vel != n.sent_velocity and sched.update(n.on_id, note_on(n.channel, n.note, vel)):
                    n.sent_velocity = vel
                sched.retime(n.on_id, on)
                sched.retime(n.off_id, max(off, on + 0.01))

    def _react(self, now: float, capture_time: float) -> None:
        """A movement onset (seen in the frame captured at ``capture_time``) now: a snare on the next 16th
        step that can still be sent if free, else accent what is there."""
        if self.origin is None:
            return
        # the next 16th whose send time is still ahead (a step too close to now would be skipped)
        step = math.floor((now + self.latency_s + 0.003 - self.origin) / self.period * 4) + 1
        bar = step // STEPS_PER_BAR
        at_beats = step / 4
        if self.gate.gain(at_beats) <= 0.0:
            return
        dm = self.drum_map
        existing = [n for n in self.bars.get(bar, []) if n.channel == dm.drum_channel and not n.click
                    and abs(n.start_beats - at_beats) < 0.125]
        if existing:
            for n in existing:
                n.velocity = min(127, n.velocity + 30)
            self.stats.accents += 1
            return
        if bar not in self.bars:  # only into a bar whose content is planned (the next one is, always)
            return
        self.bars[bar].append(PlannedNote(at_beats, at_beats + 0.125, dm.drum_channel, dm.notes[SNARE], 110,
                                          capture_time=capture_time))
        self.stats.reactions += 1

    # --- the frame loop ---------------------------------------------------------------------------
    def on_frame(self, capture_time: float, keypoints: np.ndarray, confidence: np.ndarray, now: float) -> None:
        """One input frame (stamped at capture) available at clock time ``now``: update the rhythm, start
        after warm-up, keep the next bar planned, re-anchor pending notes, react to movement onsets."""
        t0 = time.perf_counter()
        frames = self.rhythm.process_online(capture_time, keypoints, confidence)
        t1 = time.perf_counter()
        self.stats.timed("rhythm", (t1 - t0) * 1000)
        self.gate.observe(now, confidence)
        if self.gesture is not None and self.gesture.process_online(capture_time, keypoints, confidence):
            self.stats.gestures += 1
            self.start_stop(now)
        self._check_gate(now)
        for frame in frames:
            self.stats.frames += 1
            if self.stats.frames == 1:
                self.rhythm_offset = capture_time - frame.time
            if frame.estimate.is_beat:
                self.decided_beats += 1
            if self.origin is None:
                if self.decided_beats >= self.warmup_beats and frame.grid is not None:
                    tapped = self.tempo.taps.grid(self.tempo.min_period_s, self.tempo.max_period_s)
                    if self.tempo.mode == TAP and tapped is not None:  # tapped in, not enough to start
                        self._begin(now, *tapped)
                    else:
                        self._begin(now, frame.grid.anchor + self.rhythm_offset, frame.grid.period)
            else:
                self._reanchor(frame)
                if frame.onset:
                    self.onset_times.append(frame.time + self.rhythm_offset)
                    self._react(now, capture_time)
                    # only the bar before the one being planned is read: older onsets go (bounded memory)
                    keep_from = self.beat_time(4.0 * (math.floor((now - self.origin) / self.period / 4) - 2))
                    self.onset_times = [t for t in self.onset_times if t >= keep_from]
        t2 = time.perf_counter()
        self.stats.timed("engine", (t2 - t1) * 1000)
        if self.origin is None:
            return
        self._advance(now, t2)

    def _advance(self, now: float, t2: float | None = None) -> None:
        """Keep the bars planned, notes scheduled and re-timed, the clock planned, and the sent grid (and its
        events) up to date: after every frame, and from :meth:`poll` when no frame comes."""
        assert self.origin is not None
        self._last_advance = now
        timed = t2 is not None
        t2 = time.perf_counter() if t2 is None else t2
        current = math.floor((now - self.origin) / self.period / 4)
        # the bar being played and the next one are always asked for, in order (the planner's drummer
        # and accompanist carry their state from bar to bar)
        for bar in range(max(self._planned_upto + 1, current), current + 2):
            if bar >= 0:
                self.plan_bar(bar)
        t3 = time.perf_counter()
        if timed:
            self.stats.timed("plan", (t3 - t2) * 1000)
        for bar in [b for b in self.bars if b < current - 1]:  # sent long ago (note-offs included)
            del self.bars[bar]
        for bar in [b for b in self._bar_rhythm if b < current - 1]:
            del self._bar_rhythm[bar]
        self._collect_plans()
        self._schedule_or_retime()
        self._plan_clock(now)
        # the beat grid as sent: a quarter note's time is final once it is frozen (FREEZE_S before it)
        while self.send_time(self._grid_beat) - now < self.scheduler.freeze_s:
            at = self.send_time(self._grid_beat)
            self.stats.beat_grid.append(at)
            if self.events is not None:
                self._beat_events(self._grid_beat, at)
            self._grid_beat += 1
        if timed:
            self.stats.timed("schedule", (time.perf_counter() - t3) * 1000)
        self._record_sent(self.scheduler.poll_sent())

    def _beat_events(self, k: int, at: float) -> None:
        """The events of grid beat ``k`` (sounding at ``at``): the beat, a tempo change, and on a downbeat
        the bar and a change of the style (the rhythm the bar's drums were planned from)."""
        assert self.events is not None
        ev = self.events
        ev.append((at, "beat", (k, at)))
        tempo = round(60.0 / self.period, 1)
        if self._last_tempo is None or abs(tempo - self._last_tempo) >= 0.1:
            self._last_tempo = tempo
            ev.append((at, "tempo", (tempo,)))
        if k % 4 == 0:
            ev.append((at, "bar", (k // 4,)))
            rhythm = self._bar_rhythm.pop(k // 4, None)
            if rhythm is not None:
                style = tuple(int(x) for x in rhythm)
                if style != self._last_style:
                    self._last_style = style
                    ev.append((at, "style", (k // 4, *style)))

    # --- starting, stopping and the gate ------------------------------------------------------------
    def _begin(self, now: float, anchor: float, period: float) -> None:
        """Choose bar 0's downbeat on the grid (``anchor``, ``period``; clock time): the first beat at least
        ``lead_s`` ahead, so that its plan (drums and accompaniment, a few hundred ms in the planner's process)
        is back before it is due; with a count-in, four beats after the first beat its clicks can be sent on."""
        self.period = period
        if self.count_in:
            first = self._next_beat(anchor, period, now + 0.15 + self.latency_s)
            self.origin = max(first + 4 * period, self._next_beat(anchor, period, now + self.lead_s + self.latency_s))
        else:
            self.origin = self._next_beat(anchor, period, now + self.lead_s + self.latency_s)
        self._last_advance = now
        if self.gate.stopped:  # stopped before the music began: silent until started
            self.gate.stop(0)
        else:
            self._clock_start_beat = 0.0
            if self.count_in:
                self._add_count_in(0)
        self.plan_bar(0)

    @staticmethod
    def _next_beat(anchor: float, period: float, after: float) -> float:
        return anchor + (math.floor((after - anchor) / period) + 1) * period

    def _add_count_in(self, bar: int) -> None:
        """One bar of clicks before bar ``bar`` (accented first beat)."""
        dm = self.drum_map
        clicks = self.bars.setdefault(bar - 1, [])
        for i in range(4):
            at = 4.0 * (bar - 1) + i
            clicks.append(PlannedNote(at, at + 0.125, dm.drum_channel, dm.count_in[min(i, 1)],
                                      CLICK_VELOCITIES[min(i, 1)], click=True))

    def _next_bar(self, after: float) -> int:
        """The first bar whose downbeat sounds at or after clock time ``after``."""
        assert self.origin is not None
        return math.ceil((after - self.origin) / (4 * self.period))

    def _check_gate(self, now: float) -> None:
        """The dancer left or came back: hold the grid and fade, or resume on the next bar."""
        change = self.gate.check(now)
        if change is None or self.origin is None:
            return
        if change == "left":
            self.stats.departures += 1
            self.gate.leave(math.floor((now - self.origin) / self.period / 4))
        else:
            self.gate.come_back(self._next_bar(now + self.scheduler.freeze_s + 0.05 + self.latency_s))
        self._advance(now)

    def start_stop(self, now: float) -> None:
        """Stop if playing (silent from the next bar at least ``STOP_AHEAD_S`` ahead, MIDI clock Stop on its
        downbeat), start if stopped (from the next bar far enough ahead for the count-in and the plan)."""
        if self.origin is None:  # before the first bar: decides whether it plays
            self.gate.stopped = not self.gate.stopped
            return
        if not self.gate.stopped:
            bar = self._next_bar(now + STOP_AHEAD_S + self.latency_s)
            self.gate.stop(bar)
            self._clock_start_beat = None
            if self._clock_running:
                self._clock_stop_beat = 4.0 * bar
        else:
            ahead = now + self.latency_s + (4 * self.period + 0.15 if self.count_in else self.lead_s)
            bar = self._next_bar(ahead)
            self.gate.start(bar)
            if self.count_in:
                self._add_count_in(bar)
            if self._clock_running:
                self._clock_stop_beat = None  # a stop not yet reached: the clock plays on
            else:
                self._clock_start_beat = 4.0 * bar
        self._advance(now)

    # --- tempo control ------------------------------------------------------------------------------
    def lock(self) -> None:
        """Keep the tempo being played; follow only the dancer's phase."""
        self.tempo.lock()
        self._mode_event()

    def hold(self) -> None:
        """Freeze tempo and phase."""
        self.tempo.hold()
        self._mode_event()

    def release(self) -> None:
        """Follow the dancer again."""
        self.tempo.release()
        self._mode_event()

    def toggle(self, mode: str) -> None:
        """Lock or hold, or release when already in that mode (a key press)."""
        self.tempo.toggle(mode)
        self._mode_event()

    def tap(self, now: float) -> None:
        """A tap at ``now`` (a beat as the performer hears it). From the second tap the grid is the taps'
        (then held); before the first bar, ``START_TAPS`` taps start the music on their grid."""
        self.stats.taps += 1
        target = self.tempo.tap(now)
        self._mode_event()
        if target is None:
            return
        if self.origin is None:
            if len(self.tempo.taps.taps) >= START_TAPS:
                self._begin(now, target.anchor, target.period)
                self._advance(now)
            return
        self._align(target.anchor, target.match_period, target.period)
        if self.clock_state.next_pulse is not None:  # the clock jumps to the tapped tempo (no smoothing)
            self.clock_state = replace(self.clock_state, tempo_bpm=60.0 / self.period)
        self._advance(now)

    @property
    def mode(self) -> str:
        return self.tempo.mode

    def _mode_event(self) -> None:
        if self.events is not None and self.tempo.mode != self._last_mode:
            self.events.append((self.scheduler.clock.now(), "mode", (self.tempo.mode,)))
        self._last_mode = self.tempo.mode

    def status(self, now: float) -> EngineStatus:
        """The state at ``now`` for the status line and the preview."""
        mode = self.tempo.mode
        if self.origin is None:
            return EngineStatus("stopped" if self.gate.stopped else "warm-up", mode, None, None, None)
        beat = (now - self.origin) / self.period
        if self.gate.gain(beat) <= 0.0:
            state = "stopped" if self.gate.stopped else "away"
        elif self.gate.away:
            state = "fading"
        else:
            state = "playing"
        return EngineStatus(state, mode, 60.0 / self.period, math.floor(beat / 4), beat)

    def _plan_clock(self, now: float) -> None:
        """MIDI clock: Start once its downbeat (bar 0's, or a restart's) is frozen (so Start and the first
        pulse go out with it), then the pulses of the next ``horizon_s``, phase-locked to the grid; Stop on a
        stop's downbeat. Called every frame and every poll, so a slow frame never leaves pulses unplanned."""
        if self.clock is None or self.origin is None:
            return
        # the clock's own time, not the frame's: a frame's ``now`` is a few ms old by here (the rhythm step),
        # and a Start decided on it for a downbeat the re-anchoring just pulled that close went out late
        now = max(now, self.scheduler.clock.now())
        if not self._clock_running:
            start = self._clock_start_beat
            if start is None or self.send_time(start) - now >= self.scheduler.freeze_s:
                return
            self._clock_running, self._clock_beat0, self._clock_start_beat = True, start, None
            self.clock_state, msgs = self.clock.start(max(now, self.send_time(start)), 60.0 / self.period)
            for at, m in msgs:
                self.scheduler.schedule(at, m)
        stop = self._clock_stop_beat
        if stop is not None and self.send_time(stop) - now < self.clock.horizon_s:
            # the pulses planned so far end before the stop's downbeat (planned while it was further ahead)
            self.clock_state, msgs = self.clock.stop(self.clock_state, max(now, self.send_time(stop)))
            for at, m in msgs:
                self.scheduler.schedule(at, m)
            self._clock_running, self._clock_stop_beat = False, None
            return
        grid_beats = None
        if self.clock_state.next_pulse is not None:
            grid_beats = (self.clock_state.next_pulse + self.latency_s - self.origin) / self.period - self._clock_beat0
        self.clock_state, msgs = self.clock.plan(self.clock_state, now, 60.0 / self.period, grid_beats)
        for at, m in msgs:
            self.scheduler.schedule(at, m)

    def _record_sent(self, sent: list[tuple[int, float]]) -> None:
        """Capture-to-send time of the movement-driven hits among the events just sent."""
        for event_id, at in sent:
            cap = self._reaction_ids.pop(event_id, None)
            if cap is not None:
                self.stats.capture_to_send_ms.append((at - cap) * 1000)

    def poll(self, keep_going: bool = True) -> None:
        """Plan the clock and send what is due (the live loop calls this every millisecond between frames).
        With no frame for ``ADVANCE_S`` (the input paused: an OSC sender gone) and ``keep_going``, it also
        notices the dancer leaving and keeps the groove going (:meth:`_advance`); without (the input has
        ended: what is planned plays out), the grid stays where the last frame left it."""
        now = self.scheduler.clock.now()
        if keep_going and self.origin is not None and now - self._last_advance > ADVANCE_S:
            self._check_gate(now)
            self._advance(now)
        self._plan_clock(now)
        self._record_sent(self.scheduler.poll_sent())

    def stop(self) -> None:
        """Stop: MIDI clock Stop, then all notes off (the scheduler drops what is pending)."""
        self.planner.close()
        if self.clock is not None and self.clock_state.next_pulse is not None:
            self.scheduler.sink.send(mido_stop(), self.scheduler.clock.now())
        self.scheduler.stop()
