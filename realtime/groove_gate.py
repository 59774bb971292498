"""When live play sounds: the dancer leaving and coming back, and the start/stop gesture, as a velocity gain
on every planned note (positions in beats since bar 0 of the engine's grid).

* **The dancer leaves.** A frame shows the dancer when at least ``min_joints`` joints are seen with
  confidence >= ``min_confidence``. With no such frame for ``absent_after_s`` (frames without a person,
  or no frames at all: checked on every poll), the dancer is away: the groove keeps time (the engine holds
  its grid and the MIDI clock runs on), plays the bar it is in and ``keep_bars`` more at full velocity,
  then fades out over ``fade_bars`` bars (velocity ramped linearly down to 0 by position), then is silent.
* **The dancer comes back.** Seen again for ``return_after_s``, the groove resumes at full velocity on the
  next bar (the engine picks the first downbeat far enough ahead for its notes to be sent).
* **Stop / start** (the gesture, or OSC): silent from a given bar; from another bar on again.

:meth:`GrooveGate.gain` is the velocity factor of a note at a position; the engine sends a note only when
its velocity times the gain is at least 1, and sets the velocity of pending notes to it until they are
frozen. Only the latest leave/return and stop/start matter for notes still to come (earlier ones lie in
the past).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GateConfig", "GrooveGate"]


@dataclass(frozen=True)
class GateConfig:
    min_joints: int = 6
    min_confidence: float = 0.3
    absent_after_s: float = 0.5
    return_after_s: float = 0.3
    keep_bars: int = 0
    fade_bars: int = 2


class GrooveGate:
    """Presence of the dancer and the play/stop state, as a gain per note position (module docstring)."""

    def __init__(self, config: GateConfig = GateConfig()) -> None:  # noqa: B008
        self.config = config
        self.last_seen: float | None = None  # clock time of the last frame showing the dancer
        self.seen_since: float | None = None  # start of the current stretch of frames showing the dancer
        self.away = False
        self.stopped = False
        self.fade_from: float | None = None  # beats
        self.fade_to: float | None = None
        self.resume_from: float | None = None
        self.stop_from: float | None = None
        self.start_from: float | None = None
        self.departures = 0
        self.returns = 0

    # --- presence -------------------------------------------------------------------------------
    def shows_dancer(self, confidence: np.ndarray) -> bool:
        """Whether a frame's confidence (17,) shows the dancer."""
        c = self.config
        return int(np.count_nonzero(np.asarray(confidence) >= c.min_confidence)) >= c.min_joints

    def observe(self, now: float, confidence: np.ndarray) -> None:
        """One input frame, available at clock time ``now``."""
        if self.shows_dancer(confidence):
            if self.seen_since is None:
                self.seen_since = now
            self.last_seen = now
        else:
            self.seen_since = None

    def check(self, now: float) -> str | None:
        """'left' when the dancer has just been found away, 'back' when just found back, else None."""
        c = self.config
        if not self.away:
            if self.last_seen is not None and now - self.last_seen > c.absent_after_s:
                self.away, self.seen_since = True, None
                self.departures += 1
                return "left"
            return None
        if (self.seen_since is not None and self.last_seen is not None and now - self.seen_since >= c.return_after_s
                and now - self.last_seen <= c.absent_after_s):
            self.away = False
            self.returns += 1
            return "back"
        return None

    def leave(self, bar: int) -> None:
        """The dancer left during bar ``bar``: full to the end of it and ``keep_bars`` more, then the fade."""
        c = self.config
        self.fade_from = 4.0 * (bar + 1 + c.keep_bars)
        self.fade_to = self.fade_from + 4.0 * c.fade_bars
        self.resume_from = None

    def come_back(self, bar: int) -> None:
        """The dancer is back: full velocity from bar ``bar`` on."""
        self.resume_from = 4.0 * bar

    # --- stop / start ---------------------------------------------------------------------------
    def stop(self, bar: int) -> None:
        self.stopped, self.stop_from, self.start_from = True, 4.0 * bar, None

    def start(self, bar: int) -> None:
        self.stopped, self.start_from = False, 4.0 * bar

    # --- the gain -------------------------------------------------------------------------------
    def gain(self, beats: float) -> float:
        """Velocity factor in [0, 1] of a note at ``beats`` (beats since bar 0)."""
        if self.stop_from is not None and beats >= self.stop_from and (
                self.start_from is None or beats < self.start_from):
            return 0.0
        if self.fade_from is None or beats < self.fade_from:
            return 1.0
        if self.resume_from is not None and beats >= self.resume_from:
            return 1.0
        assert self.fade_to is not None
        if self.fade_to <= self.fade_from:
            return 0.0
        return float(min(1.0, max(0.0, 1.0 - (beats - self.fade_from) / (self.fade_to - self.fade_from))))

    def silent_from(self) -> float:
        """The first position (beats) from which nothing sounds until further notice (inf: none)."""
        out = math.inf
        if self.stopped and self.stop_from is not None:
            out = self.stop_from
        if self.away and self.resume_from is None and self.fade_to is not None:
            out = min(out, self.fade_to)
        return out
