"""The live engine: keypoint frames in, drums and accompaniment out on the scheduler, following the dancer.

The design notes' live timing, as built here (one thread, driven by :meth:`LiveEngine.on_frame`):

* **Warm-up.** Nothing plays until the fixed-lag tracker has decided ``warmup_beats`` beats (default 4, so
  about 2 s at 120 BPM plus its 1 s lag). Then bar 0 starts on the next predicted beat (no live downbeat
  tracking yet: the first predicted beat after warm-up is bar 0's downbeat).
* **Plan a bar ahead.** When bar i starts (its downbeat is the next event), bar i+1's content is planned:
  the drum bar from a rhythm of the predicted beats (steps 0/4/8/12) plus the steps of the movement onsets
  seen during bar i-1 (the style of the bar just played), then Drum2Music's bar from that drum bar.
* **Times are not frozen.** Each planned note has a position in beats since bar 0 (step / 4 plus the
  groove's micro-offset); its clock time comes from the latest beat estimate (the tracker's next
  predicted beat and tempo) and is re-anchored on every frame until 50 ms before it is sent.
* **Movement reactions.** A movement onset adds a hit (snare) on the next 16th step of the bar being
  played if that step is free, and accents the planned hit there if not; the accompaniment is never
  changed by it.

Drum2Music runs on a worker thread (ONNX Runtime and torch release the GIL while they compute), so a bar
of accompaniment (a few hundred ms here; a bar lasts ~2 s) never holds up a frame; the issue's
own-process variant is still to come.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from rhythmicnet.models.drum2music import Drum2Music
from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.live_rhythm import LiveFrame, LiveRhythm
from rhythmicnet.models.midi_messages import DRUM_CHANNEL, DRUM_NOTES, INSTRUMENT_CHANNEL, note_off, note_on
from rhythmicnet.models.remi import BarNote, DrumBar
from rhythmicnet.models.rhythm2drum import DrumPerformer
from rhythmicnet.realtime.scheduler import Scheduler

__all__ = ["EngineStats", "LiveEngine", "PlannedNote"]

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


class LiveEngine:
    def __init__(self, rhythm: LiveRhythm, performer: DrumPerformer, scheduler: Scheduler,
                 music: Drum2Music | None = None, *, warmup_beats: int = 4, lead_s: float = 0.1,
                 music_worker: bool = True) -> None:
        self.rhythm, self.performer, self.scheduler, self.music = rhythm, performer, scheduler, music
        self.warmup_beats, self.lead_s = warmup_beats, lead_s
        self.stats = EngineStats()
        self.decided_beats = 0
        self.origin: float | None = None  # clock time of bar 0's downbeat (the beat grid's anchor)
        self.period = 0.5  # seconds per beat, from the tracker's tempo
        self.bars: dict[int, list[PlannedNote]] = {}
        self.onset_times: list[float] = []
        self.rhythm_offset = 0.0  # rhythm time -> clock time (the replay's start)
        # ``music_worker=False`` plans the accompaniment inline: deterministic runs on a simulated clock
        self._music_worker = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="drum2music") if music_worker
                              else None)
        self._pending_music: dict[int, Future[list[BarNote]]] = {}

    # --- the beat grid ---------------------------------------------------------------------------
    def beat_time(self, beats: float) -> float:
        """Clock time of a position in beats since bar 0 on the current grid."""
        assert self.origin is not None
        return self.origin + beats * self.period

    def _reanchor(self, frame: LiveFrame) -> None:
        """Move the grid to the latest estimate: the tracker's next predicted beat is the grid point nearest
        to it; the tempo is the tracker's."""
        est = frame.estimate
        if not math.isfinite(est.tempo_bpm) or est.tempo_bpm <= 0 or self.origin is None:
            return
        self.period = 60.0 / est.tempo_bpm
        nxt = float(est.next_beats[0]) + self.rhythm_offset
        k = round((nxt - self.origin) / self.period)
        self.origin = nxt - k * self.period

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

    def plan_bar(self, bar: int) -> list[PlannedNote]:
        rhythm = np.zeros(STEPS_PER_BAR, bool)
        rhythm[::4] = True
        rhythm[self._style_steps(bar - 2)] = True  # the style of the bar just played
        grid: DrumGrid = self.performer.next_bar(rhythm)
        notes = []
        base = bar * 4.0
        cls, step = np.nonzero(grid.hits)
        for c, s in zip(cls.tolist(), step.tolist(), strict=True):
            start = base + (s + float(grid.offsets[c, s])) / 4
            vel = int(np.clip(round(float(grid.velocities[c, s]) * 127), 1, 127))
            notes.append(PlannedNote(start, start + 0.125, DRUM_CHANNEL, DRUM_NOTES[c], vel))
        if self.music is not None:
            # Drum2Music's bar off the frame loop (ONNX Runtime and torch release the GIL while they compute):
            # bars are planned in order on one worker, so its memory sees them in order.
            music = self.music
            drum_bar = DrumBar(grid.hits, grid.velocities, 60.0 / self.period)
            if self._music_worker is not None:
                self._pending_music[bar] = self._music_worker.submit(music.next_bar, drum_bar)
            else:
                done: Future[list[BarNote]] = Future()
                done.set_result(music.next_bar(drum_bar))
                self._pending_music[bar] = done
        self.bars[bar] = notes
        self.stats.bars_planned += 1
        self.stats.notes_planned += len(notes)
        return notes

    def _collect_music(self) -> None:
        """Accompaniment bars that the worker finished join their bar's notes."""
        for bar, fut in list(self._pending_music.items()):
            if fut.done():
                del self._pending_music[bar]
                if bar not in self.bars:
                    continue
                base = bar * 4.0
                for n in fut.result():
                    start = base + n.step / 4
                    self.bars[bar].append(PlannedNote(start, start + n.duration / 4, INSTRUMENT_CHANNEL, n.pitch,
                                                      n.velocity))
                    self.stats.notes_planned += 1

    def _schedule_or_retime(self) -> None:
        """Give every planned note its time on the current grid (new notes scheduled, pending ones moved). A
        note whose time has passed before it could be scheduled (an accompaniment bar that came late) is
        skipped, never sent late."""
        now = self.scheduler.clock.now()
        for notes in self.bars.values():
            for n in notes:
                on, off = self.beat_time(n.start_beats), self.beat_time(n.end_beats)
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
                else:
                    self.scheduler.retime(n.on_id, on)
                    assert n.off_id is not None
                    self.scheduler.retime(n.off_id, max(off, on + 0.01))

    def _react(self, now: float) -> None:
        """A movement onset now: a snare on the next 16th step if free, else accent what is there."""
        if self.origin is None:
            return
        step = math.floor((now - self.origin) / self.period * 4) + 1  # the next 16th
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
        self.bars[bar].append(PlannedNote(at_beats, at_beats + 0.125, DRUM_CHANNEL, DRUM_NOTES[SNARE], 110))
        self.stats.reactions += 1

    # --- the frame loop ---------------------------------------------------------------------------
    def on_frame(self, capture_time: float, keypoints: np.ndarray, confidence: np.ndarray, now: float) -> None:
        """One input frame (stamped at capture) available at clock time ``now``: update the rhythm, start
        after warm-up, keep the next bar planned, re-anchor pending notes, react to movement onsets."""
        for frame in self.rhythm.process_online(capture_time, keypoints, confidence):
            self.stats.frames += 1
            if self.stats.frames == 1:
                self.rhythm_offset = capture_time - frame.time
            if frame.estimate.is_beat:
                self.decided_beats += 1
            if self.origin is None:
                if self.decided_beats >= self.warmup_beats and math.isfinite(frame.estimate.tempo_bpm):
                    self.period = 60.0 / frame.estimate.tempo_bpm
                    first = float(frame.estimate.next_beats[0]) + self.rhythm_offset
                    while first < now + self.lead_s:  # bar 0 starts on a beat still ahead of us
                        first += self.period
                    self.origin = first
                    self.plan_bar(0)
            else:
                self._reanchor(frame)
                if frame.onset:
                    self.onset_times.append(frame.time + self.rhythm_offset)
                    self._react(now)
                    # only the bar before the one being planned is read: older onsets go (bounded memory)
                    keep_from = self.beat_time(4.0 * (math.floor((now - self.origin) / self.period / 4) - 2))
                    self.onset_times = [t for t in self.onset_times if t >= keep_from]
        if self.origin is None:
            return
        current = math.floor((now - self.origin) / self.period / 4)
        for bar in (current, current + 1):  # the bar being played and the next one are always planned
            if bar >= 0 and bar not in self.bars:
                self.plan_bar(bar)
        for bar in [b for b in self.bars if b < current - 1]:  # sent long ago (note-offs included)
            del self.bars[bar]
        self._collect_music()
        self._schedule_or_retime()
        beat = math.floor((now - self.origin) / self.period)
        if beat >= 0 and (not self.stats.beat_grid or self.beat_time(beat) > self.stats.beat_grid[-1] + 0.5 *
                          self.period):
            self.stats.beat_grid.append(self.beat_time(beat))
        self.scheduler.poll()

    def stop(self) -> None:
        if self._music_worker is not None:
            self._music_worker.shutdown(wait=False, cancel_futures=True)
        self.scheduler.stop()
