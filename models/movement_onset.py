"""Low-latency detector of sudden movements for live reactions (the design notes' "style reaction").

The paper's style stream needs ~0.7 s of context (16-point STFT at 15 fps), too slow to play a hit
with a movement. This detector works on the kinematic offsets at the model rate (30 fps): a frame is
a movement onset when its offset exceeds a running threshold

    thr = max(floor, mean + k * mad)

where ``mean`` and ``mad`` (mean absolute deviation) are exponential running estimates over the
past ``tau_s`` seconds, updated *after* the decision so a spike cannot raise its own threshold.
An onset fires on the rising edge (the previous frame was below threshold) and not within
``refractory_s`` of the last one. The offset at frame t already responds to a movement that starts
between frames t-1 and t, so the event is reported on the movement's first frame (latency 0-1
frames) — the design target is 2 frames.

Streaming contract: ``reset()``, ``process_online(kp (N,17,2), conf (N,17)) -> bool (N,)``,
``process_offline(kp, conf) -> bool (T,)`` (the same causal detector over a whole clip), and the pure
``advance`` on an explicit :class:`OnsetStreamState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from rhythmicnet.models.directogram import N_BINS, KinematicOffsetState, KinematicOffsetStream


@dataclass(frozen=True)
class MovementOnsetConfig:
    fps: float = 30.0
    tau_s: float = 2.0
    k: float = 6.0
    #: Offsets below this (body units/frame^2) never fire: a still performer triggers nothing.
    floor: float = 0.02
    refractory_s: float = 0.2
    warmup_s: float = 0.5
    n_bins: int = N_BINS


@dataclass(frozen=True)
class MovementOnsetState:
    frame: int = 0
    mean: float = 0.0
    mad: float = 0.0
    above: bool = False
    last_onset: int = -(10**9)


@dataclass(frozen=True)
class OnsetStreamState:
    """The detector's whole state: the kinematic-offset stream's and the decision's."""

    offsets: KinematicOffsetState = field(default_factory=KinematicOffsetState)
    decision: MovementOnsetState = field(default_factory=MovementOnsetState)


@dataclass
class MovementOnsetDetector:
    config: MovementOnsetConfig = field(default_factory=MovementOnsetConfig)

    def __post_init__(self) -> None:
        self._ko = KinematicOffsetStream(self.config.n_bins)
        self._state = MovementOnsetState()

    def reset(self) -> None:
        self._ko.reset()
        self._state = MovementOnsetState()

    def decide(self, state: MovementOnsetState, ko: float) -> tuple[MovementOnsetState, bool]:
        """Pure update for one kinematic-offset value."""
        c = self.config
        thr = max(c.floor, state.mean + c.k * state.mad)
        above = ko > thr
        warm = state.frame >= int(round(c.warmup_s * c.fps))
        refractory = state.frame - state.last_onset < int(round(c.refractory_s * c.fps))
        onset = above and not state.above and warm and not refractory
        alpha = 1.0 - float(np.exp(-1.0 / (c.tau_s * c.fps)))
        if state.frame == 0:
            mean, mad = ko, 0.0
        else:
            mean = state.mean + alpha * (ko - state.mean)
            mad = state.mad + alpha * (abs(ko - state.mean) - state.mad)
        new = replace(state, frame=state.frame + 1, mean=mean, mad=mad, above=above,
                      last_onset=state.frame if onset else state.last_onset)
        return new, onset

    def advance(self, state: OnsetStreamState, keypoints: np.ndarray, confidence: np.ndarray
                ) -> tuple[OnsetStreamState, bool]:
        """Pure: one frame (17, 2), (17,) -> the new state and whether a sudden movement starts here."""
        ko, ko_state = self._ko.advance(state.offsets, keypoints, confidence)
        decision, onset = self.decide(state.decision, ko)
        return OnsetStreamState(ko_state, decision), onset

    def step(self, keypoints: np.ndarray, confidence: np.ndarray) -> bool:
        """One frame: (17, 2), (17,) -> whether a sudden movement starts at this frame."""
        self._state, onset = self.decide(self._state, self._ko.step(keypoints, confidence))
        return onset

    def process_online(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return np.array([self.step(k, c) for k, c in zip(keypoints, confidence, strict=True)], dtype=bool)

    def process_offline(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """The causal detector over a whole clip from a fresh state (the stream's own state is kept)."""
        saved = (self._ko, self._state)
        self._ko, self._state = KinematicOffsetStream(self.config.n_bins), MovementOnsetState()
        try:
            return self.process_online(keypoints, confidence)
        finally:
            self._ko, self._state = saved
