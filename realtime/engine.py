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
from dataclasses import dataclass, field

import mido
import numpy as np

from rhythmicnet.models.live_rhythm import LiveFrame, LiveRhythm
from rhythmicnet.models.midi_messages import DRUM_CHANNEL, DRUM_NOTES, INSTRUMENT_CHANNEL, note_off, note_on
from rhythmicnet.realtime.bar_planner import BarPlan, BarPlanner
from rhythmicnet.realtime.midi_clock import ClockState, MidiClock
from rhythmicnet.realtime.scheduler import Scheduler

__all__ = ["EngineStats", "LiveEngine", "PlannedNote"]


def mido_stop() -> mido.Message:
    return mido.Message("stop")

STEPS_PER_BAR = 16
SNARE = 1


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

    def timed(self, stage: str, ms: float) -> None:
        self.stage_ms.setdefault(stage, []).append(ms)


class LiveEngine:
    def __init__(self, rhythm: LiveRhythm, planner: BarPlanner, scheduler: Scheduler, *, warmup_beats: int = 6,
                 lead_s: float = 0.7, latency_offset_s: float = 0.0, clock: MidiClock | None = None) -> None:
        self.rhythm, self.planner, self.scheduler = rhythm, planner, scheduler
        self.warmup_beats, self.lead_s, self.latency_s = warmup_beats, lead_s, latency_offset_s
        self.clock, self.clock_state, self._clock_started = clock, ClockState(), False
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

    # --- the beat grid ---------------------------------------------------------------------------
    def beat_time(self, beats: float) -> float:
        """Clock time of a position in beats since bar 0 on the current grid."""
        assert self.origin is not None
        return self.origin + beats * self.period

    def send_time(self, beats: float) -> float:
        """When a note at ``beats`` is sent: its grid time less the latency offset."""
        return self.beat_time(beats) - self.latency_s

    def _reanchor(self, frame: LiveFrame) -> None:
        """Move the grid to the latest prediction, keeping the index of the beats being played: the next
        quarter note not yet frozen goes to the predicted beat nearest its old time, and the origin follows.

        Matching at the present, not at the origin: bar 0 may be minutes ago, and a beat k beats from the
        origin moves by k times any period change, so matching there renumbered the current beats whenever
        the tempo changed (the sent grid jumped back or skipped whole bars, 40 ms x k after a 1 ms change)."""
        g = frame.grid
        if g is None or self.origin is None:
            return
        ref = float(self._grid_beat)
        old = self.beat_time(ref)
        anchor = g.anchor + self.rhythm_offset
        self.period = g.period
        self.origin = anchor + round((old - anchor) / self.period) * self.period - ref * self.period

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
            notes = []
            cls, step = np.nonzero(plan.drums.hits)
            for c, st in zip(cls.tolist(), step.tolist(), strict=True):
                start = base + (st + float(plan.drums.offsets[c, st])) / 4
                vel = int(np.clip(round(float(plan.drums.velocities[c, st]) * 127), 1, 127))
                notes.append(PlannedNote(start, start + 0.125, DRUM_CHANNEL, DRUM_NOTES[c], vel))
            for n in plan.music:
                start = base + n.step / 4
                notes.append(PlannedNote(start, start + n.duration / 4, INSTRUMENT_CHANNEL, n.pitch, n.velocity))
            self.bars[bar] = notes
            self.stats.notes_planned += len(notes)

    def _schedule_or_retime(self) -> None:
        """Give every planned note its time on the current grid (new notes scheduled, pending ones moved). A
        note whose time has passed before it could be scheduled (an accompaniment bar that came late) is
        skipped, never sent late."""
        now = self.scheduler.clock.now()
        for notes in self.bars.values():
            for n in notes:
                on, off = self.send_time(n.start_beats), self.send_time(n.end_beats)
                if n.on_id is None and on < now + 0.002:
                    n.on_id = n.off_id = -1  # skipped
                    self.stats.skipped += 1
                    continue
                if n.on_id == -1:
                    continue
                on, off = max(now, on), max(now, off)
                if n.on_id is None:
                    n.on_id = self.scheduler.schedule(on, note_on(n.channel, n.note, n.velocity))
                    n.off_id = self.scheduler.schedule(off, note_off(n.channel, n.note))
                    if self.stats.first_note_time is None:
                        self.stats.first_note_time = on
                    if n.capture_time is not None:
                        self._reaction_ids[n.on_id] = n.capture_time
                else:
                    self.scheduler.retime(n.on_id, on)
                    assert n.off_id is not None
                    self.scheduler.retime(n.off_id, max(off, on + 0.01))

    def _react(self, now: float, capture_time: float) -> None:
        """A movement onset (seen in the frame captured at ``capture_time``) now: a snare on the next 16th
        step that can still be sent if free, else accent what is there."""
        if self.origin is None:
            return
        # the next 16th whose send time is still ahead (a step too close to now would be skipped)
        step = math.floor((now + self.latency_s + 0.003 - self.origin) / self.period * 4) + 1
        bar = step // STEPS_PER_BAR
        at_beats = step / 4
        existing = [n for n in self.bars.get(bar, []) if n.channel == DRUM_CHANNEL
                    and abs(n.start_beats - at_beats) < 0.125]
        if existing:
            for n in existing:
                n.velocity = min(127, n.velocity + 30)
            self.stats.accents += 1
            return
        if bar not in self.bars:  # only into a bar whose content is planned (the next one is, always)
            return
        self.bars[bar].append(PlannedNote(at_beats, at_beats + 0.125, DRUM_CHANNEL, DRUM_NOTES[SNARE], 110,
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
        for frame in frames:
            self.stats.frames += 1
            if self.stats.frames == 1:
                self.rhythm_offset = capture_time - frame.time
            if frame.estimate.is_beat:
                self.decided_beats += 1
            if self.origin is None:
                if self.decided_beats >= self.warmup_beats and frame.grid is not None:
                    self.period = frame.grid.period
                    # bar 0 starts on a predicted beat at least ``lead_s`` ahead: its plan (drums and
                    # accompaniment, a few hundred ms in the planner's process) is back before it is due
                    ahead = now + self.lead_s + self.latency_s - self.rhythm_offset
                    self.origin = float(frame.grid.next_beats(ahead, 1)[0]) + self.rhythm_offset
                    self.plan_bar(0)
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
        current = math.floor((now - self.origin) / self.period / 4)
        # the bar being played and the next one are always asked for, in order (the planner's drummer
        # and accompanist carry their state from bar to bar)
        for bar in range(max(self._planned_upto + 1, current), current + 2):
            if bar >= 0:
                self.plan_bar(bar)
        t3 = time.perf_counter()
        self.stats.timed("plan", (t3 - t2) * 1000)
        for bar in [b for b in self.bars if b < current - 1]:  # sent long ago (note-offs included)
            del self.bars[bar]
        self._collect_plans()
        self._schedule_or_retime()
        self._plan_clock(now)
        # the beat grid as sent: a quarter note's time is final once it is frozen (FREEZE_S before it)
        while self.send_time(self._grid_beat) - now < self.scheduler.freeze_s:
            self.stats.beat_grid.append(self.send_time(self._grid_beat))
            self._grid_beat += 1
        self.stats.timed("schedule", (time.perf_counter() - t3) * 1000)
        self._record_sent(self.scheduler.poll_sent())

    def _plan_clock(self, now: float) -> None:
        """MIDI clock: Start once bar 0's downbeat is frozen (so Start and the first pulse go out with it),
        then the pulses of the next ``horizon_s``, phase-locked to the grid. Called every frame and every
        poll, so a slow frame never leaves pulses unplanned."""
        if self.clock is None or self.origin is None:
            return
        if not self._clock_started:
            if self.send_time(0.0) - now >= self.scheduler.freeze_s:
                return
            self._clock_started = True
            self.clock_state, msgs = self.clock.start(max(now, self.send_time(0.0)), 60.0 / self.period)
            for at, m in msgs:
                self.scheduler.schedule(at, m)
        grid_beats = None
        if self.clock_state.next_pulse is not None:
            grid_beats = (self.clock_state.next_pulse + self.latency_s - self.origin) / self.period
        self.clock_state, msgs = self.clock.plan(self.clock_state, now, 60.0 / self.period, grid_beats)
        for at, m in msgs:
            self.scheduler.schedule(at, m)

    def _record_sent(self, sent: list[tuple[int, float]]) -> None:
        """Capture-to-send time of the movement-driven hits among the events just sent."""
        for event_id, at in sent:
            cap = self._reaction_ids.pop(event_id, None)
            if cap is not None:
                self.stats.capture_to_send_ms.append((at - cap) * 1000)

    def poll(self) -> None:
        """Plan the clock and send what is due (the live loop calls this every millisecond between frames)."""
        self._plan_clock(self.scheduler.clock.now())
        self._record_sent(self.scheduler.poll_sent())

    def stop(self) -> None:
        """Stop: MIDI clock Stop, then all notes off (the scheduler drops what is pending)."""
        self.planner.close()
        if self.clock is not None and self.clock_state.next_pulse is not None:
            self.scheduler.sink.send(mido_stop(), self.scheduler.clock.now())
        self.scheduler.stop()
