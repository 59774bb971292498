"""Periodicity of a beat activation, and the octave check of a decoded tempo against it.

The beat DBN (``beat_hmm``) picks the tempo whose beats best explain the activation frame by frame.
Where a dancer steps on the "and", the activation has a peak between the beats too, and a path at twice
the tempo explains those peaks as beats: on real dancers the shipped models decoded 164-180 BPM for music
at 67-130. The octave check is a second opinion from the whole clip's periodicity: if a metrical relative
of the decoded tempo (x2, x1/2, x3/2, x2/3 of its beat period) is a clearly stronger periodicity of the
activation, the clip is decoded again inside that relative's tempo region.

**Periodicity** (:func:`comb`): the unbiased autocorrelation ``r`` of the centred activation, normalised
to 1 at lag 0, read at a beat period ``p`` (a comb with ``HARMONICS`` teeth averages ``r`` at ``p, 2p, ...``;
one tooth, ``r(p)`` interpolated between lags, was the only form tried on the validation clips). It is read
as the best value within ``TOLERANCE`` (4 %, the Acc1 window) of a period, on a log grid ``GRID_STEP``
apart, so the DBN's whole-frame beat intervals and a few % of tempo drift do not matter.

What it can and cannot tell: beats with weaker steps half-way between them give ``r(p)`` near 1 and
``r(p/2)`` well below (strong x weak products), so a decode at twice the tempo is caught while the steps
are clearly weaker than the beats (``r(p/2) / r(p)`` about 0.6 at steps of 0.35 the beats' height). Steps
as strong as the beats are a real ambiguity: ``r(p/2) = r(p)``, and the check leaves the DBN's choice.
The other way round is risky: a pulse train repeats at ``2p`` too, and a dancer's left/right alternation
makes ``r(2p)`` even exceed ``r(p)``; only ``margin`` keeps the check from halving a correct fast tempo.

**The check** (:func:`octave_relative`): a relative period ``m p`` (inside the tempo range) dominates the
decoded period ``p`` when ``C(m p) > margin * max(C(p), 0)`` and ``C(m p) > floor``. ``margin`` and
``floor`` are in :class:`~.beat_hmm.BeatTrackerConfig` (``octave_margin``, ``octave_floor``).

**Streaming** (:class:`RunningPeriodicity`, :class:`OctaveCheck`): the same read of an exponentially
weighted autocorrelation with a time constant of ``window_s`` seconds (a frozen state and a pure
``step``); the fixed-lag tracker turns it into a per-frame penalty on every tempo state whose period a
relative dominates (``fixed_lag_beats``). An 8 s running estimate is noisier than the whole clip's: with
margin 1.3 it penalised correct 160-180 BPM tempi mid-clip (their ``r(2p)`` rose above ``1.3 r(p)`` for a
few seconds) and lost 0.6 F on the validation clips; margin 1.5 keeps that to 0.4.

**Chosen on validation clips only** (``benchmarks/bench_tempo_ambiguity.py``; the weights shipped before
generator 2.0's retraining; generator 2.0 as of commit d304752, whose observation model has changed since:
re-run the benchmark after a change of weights or generator. 100 clips each: ``validation_clip(0..99)`` of
the training config; and a footwork set, ``validation_clip(1000..1099)`` of the training config
with only the training families that step off the beat or at double time (``double``, ``and-steps``,
``cha-cha``, ``kick-ball-change``) danced by footwork dancers, the stand-in for the real dancers' fault).
F / Acc1 / Acc2 (%), the full offline model decoded by Viterbi, the full causal model by the fixed-lag
tracker (lag 15 and 30 frames):

====================================  ==================  ==================
variant                               validation          footwork
====================================  ==================  ==================
Viterbi, no prior, no check           91.0 / 93 / 96      62.9 / 62 / 76
Viterbi, prior 3/s                    90.7 / 92 / 96      63.1 / 61 / 75
Viterbi, prior 10/s                   88.8 / 86 / 97      63.0 / 58 / 73
Viterbi, prior 30/s                   88.2 / 84 / 98      63.0 / 62 / 75
Viterbi, check (margin 1.3)           91.0 / 93 / 97      63.3 / 66 / 78
Viterbi, check (margin 1.5)           90.8 / 92 / 96      63.2 / 65 / 78
Viterbi, prior 3/s + check 1.5        90.9 / 93 / 97      63.4 / 64 / 77
Viterbi, prior 30/s + check 1.5       89.9 / 93 / 98      63.8 / 67 / 78
lag 15, no prior, no check            82.1 / 89 / 92      56.2 / 72 / 77
lag 15, prior 10/s                    82.3 / 83 / 90      56.5 / 69 / 78
lag 15, check 1.3                     81.5 / 87 / 91      56.4 / 78 / 82
lag 15, check 1.5                     81.7 / 89 / 92      56.4 / 77 / 81
lag 15, prior 10/s + check 1.3        81.3 / 85 / 89      56.7 / 72 / 76
lag 30, no prior, no check            82.4 / 86 / 89      56.9 / 68 / 75
lag 30, prior 10/s                    82.6 / 83 / 90      57.7 / 70 / 77
lag 30, check 1.5                     82.5 / 87 / 90      57.1 / 72 / 77
lag 30, prior 3/s + check 1.5         82.4 / 84 / 88      57.4 / 71 / 77
====================================  ==================  ==================

Rule, fixed before the held-out figures: the variant with the best mean of F and Acc1 over both sets, as
long as F on the validation set drops by no more than 0.5. That is the check with margin 1.5 and no prior
(``BeatTrackerConfig``'s defaults). The prior's pull towards 120 BPM doubled slow clips (60-80 BPM: the
Viterbi decodes at twice the true tempo went from 3 to 11 and 14 of 100 validation clips at 10 and 30 per
second), did not undo the footwork set's double-tempo decodes (14 -> 13 at 30 per second: there the steps are
mostly as strong as the beats), and cost the causal tracker 3-6 points of validation Acc1 at every strength.
It stays available (``tempo_prior_bpm``, ``tempo_prior_per_s``), off by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Comb teeth per period (the longest lag read is HARMONICS x the longest period).
HARMONICS = 1
#: The metrical relatives checked, as candidate period / decoded period (tempo x1/2, x2, x2/3, x3/2).
RELATIVES = (2.0, 0.5, 1.5, 2.0 / 3.0)
#: A period's periodicity is the best comb value within this relative distance (the Acc1 window).
TOLERANCE = 0.04
#: Spacing of the period grid (relative).
GRID_STEP = 0.005


def autocorrelation(activation: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of the centred activation, normalised to 1 at lag 0 (all zeros for a
    constant input). NaN frames count as the mean. Shape: (T,) -> (max_lag + 1,); lags >= T are 0."""
    a = np.asarray(activation, dtype=np.float64).reshape(-1)
    out = np.zeros(max_lag + 1)
    if a.size == 0 or np.all(np.isnan(a)):
        return out
    x = np.where(np.isnan(a), 0.0, a - np.nanmean(a))
    n = x.size
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spec = np.fft.rfft(x, size)
    full = np.fft.irfft(spec * np.conj(spec), size)[: min(max_lag + 1, n)]
    full /= n - np.arange(full.size)  # unbiased: each lag's sum over its own number of products
    if full[0] <= 1e-12:
        return out
    out[: full.size] = full / full[0]
    return out


def period_grid(min_period: float, max_period: float) -> np.ndarray:
    """Log-spaced beat periods (frames), ``GRID_STEP`` apart, covering [min_period, max_period] widened by
    ``TOLERANCE``. Shape: (P,)."""
    lo, hi = min_period / (1.0 + TOLERANCE), max_period * (1.0 + TOLERANCE)
    n = int(math.ceil(math.log(hi / lo) / math.log1p(GRID_STEP))) + 1
    return lo * (1.0 + GRID_STEP) ** np.arange(n)


def max_lag_for(max_period: float) -> int:
    """The longest autocorrelation lag the comb reads for periods up to ``max_period`` (frames)."""
    return int(math.ceil(HARMONICS * max_period * (1.0 + TOLERANCE) ** 2)) + 1


def comb(acf: np.ndarray, periods: np.ndarray, harmonics: int = HARMONICS) -> np.ndarray:
    """The comb read of an autocorrelation at each period: the mean of ``acf`` at the first ``harmonics``
    multiples of the period (interpolated between lags; lags beyond the autocorrelation count as 0).
    Shapes: (L + 1,), (P,) -> (P,)."""
    k = np.arange(1, harmonics + 1, dtype=np.float64)
    lags = np.arange(acf.size, dtype=np.float64)
    return np.asarray(np.interp(np.outer(periods, k), lags, acf, right=0.0).mean(axis=1))


def local_max(values: np.ndarray) -> np.ndarray:
    """Each grid point's best value within ``TOLERANCE`` on the grid. Shape: (P,) -> (P,)."""
    w = int(round(math.log1p(TOLERANCE) / math.log1p(GRID_STEP)))
    padded = np.pad(values, w, constant_values=-np.inf)
    return np.asarray(np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1).max(axis=1))


@dataclass(frozen=True, eq=False)
class Periodicity:
    """A periodicity function on a period grid: ``periods`` (P,) frames, ``raw`` (P,) the comb read at each
    period, ``contrast`` (P,) its best within ``TOLERANCE`` (``local_max``)."""

    periods: np.ndarray
    raw: np.ndarray
    contrast: np.ndarray

    def at(self, period: float | np.ndarray) -> np.ndarray:
        """``contrast`` at a period (or an array of them), from the nearest grid point (-inf off the grid)."""
        p = np.asarray(period, dtype=np.float64)
        idx = np.rint(np.log(p / self.periods[0]) / math.log1p(GRID_STEP)).astype(np.int64)
        ok = (idx >= 0) & (idx < self.periods.size)
        return np.where(ok, self.contrast[np.clip(idx, 0, self.periods.size - 1)], -np.inf)

    def best_near(self, period: float) -> float:
        """The grid period with the highest ``raw`` within ``TOLERANCE`` of ``period`` (frames)."""
        near = np.abs(np.log(self.periods / period)) <= math.log1p(TOLERANCE) + 1e-9
        if not near.any():
            return float(period)
        return float(self.periods[int(np.argmax(np.where(near, self.raw, -np.inf)))])


def periodicity_from_acf(acf: np.ndarray, min_period: float, max_period: float) -> Periodicity:
    """The periodicity of an autocorrelation (L + 1,) over the periods [min_period, max_period] (frames)."""
    periods = period_grid(min_period, max_period)
    raw = comb(acf, periods)
    return Periodicity(periods, raw, local_max(raw))


def clip_periodicity(activation: np.ndarray, min_period: float, max_period: float) -> Periodicity:
    """The whole clip's periodicity over beat periods [min_period, max_period] (frames). Shape: (T,)."""
    return periodicity_from_acf(autocorrelation(activation, max_lag_for(max_period)), min_period, max_period)


def octave_relative(per: Periodicity, period: float, min_period: float, max_period: float,
                    margin: float, floor: float) -> float | None:
    """The beat period (frames) of the relative of ``period`` that dominates it (see the module
    docstring), the strongest one if several do; None when none does. Relatives outside
    [min_period, max_period] are not considered."""
    own = float(per.at(period))
    best, best_value = None, -np.inf
    for m in RELATIVES:
        cand = m * period
        if not min_period <= cand <= max_period:
            continue
        value = float(per.at(cand))
        if value > floor and value > margin * max(own, 0.0) and value > best_value:
            best, best_value = per.best_near(cand), value
    return best


class OctaveCheck:
    """Which of a fixed set of beat ``periods`` (K,) frames a relative inside [min_period, max_period]
    dominates, read from an autocorrelation: the same rule as :func:`octave_relative`, with the grid
    look-ups precomputed (the streaming tracker asks once per frame)."""

    def __init__(self, periods: np.ndarray, min_period: float, max_period: float) -> None:
        self.periods = np.asarray(periods, dtype=np.float64)
        self.grid = period_grid(min_period, max_period)
        w = int(round(math.log1p(TOLERANCE) / math.log1p(GRID_STEP)))
        offsets = np.arange(-w, w + 1)

        def neighbourhood(p: np.ndarray) -> np.ndarray:
            idx = np.rint(np.log(p / self.grid[0]) / math.log1p(GRID_STEP)).astype(np.int64)
            return np.clip(idx[..., None] + offsets, 0, self.grid.size - 1)

        rel = np.asarray(RELATIVES)[:, None] * self.periods[None, :]  # (R, K)
        self._own = neighbourhood(self.periods)  # (K, 2w + 1)
        self._rel = neighbourhood(rel)  # (R, K, 2w + 1)
        self._valid = (rel >= min_period) & (rel <= max_period)  # (R, K)
        # the comb's linear interpolation, precomputed: lags (P, H) split into floor index and fraction
        lags = np.outer(self.grid, np.arange(1, HARMONICS + 1, dtype=np.float64))
        self._lag0 = np.floor(lags).astype(np.int64)
        self._frac = lags - self._lag0

    def dominated(self, acf: np.ndarray, margin: float, floor: float) -> np.ndarray:
        """Shape: (L + 1,) autocorrelation -> (K,) bool (the lags the comb reads must lie in ``acf``)."""
        raw = (acf[self._lag0] * (1.0 - self._frac) + acf[self._lag0 + 1] * self._frac).mean(axis=1)
        own = np.maximum(raw[self._own].max(axis=-1), 0.0)
        rel = np.where(self._valid, raw[self._rel].max(axis=-1), -np.inf)
        return np.asarray(((rel > floor) & (rel > margin * own)).any(axis=0))


# ------------------------------------------------------------------------------------- streaming
@dataclass(frozen=True, eq=False)
class RunningPeriodicityState:
    """``history``: the last ``max_lag + 1`` activations, newest first (NaN frames as the running mean);
    ``products``: exponentially weighted mean of (a_t - mean)(a_{t-L} - mean) for each lag L;
    ``mean``: exponentially weighted mean activation; ``frames``: frames seen. Shapes: (L + 1,), (L + 1,)."""

    history: np.ndarray
    products: np.ndarray
    mean: float = 0.0
    frames: int = 0


class RunningPeriodicity:
    """The periodicity of the last ``window_s`` seconds (an exponential window with that time constant) of
    an activation at ``fps``, over beat periods [min_period, max_period] (frames). Pure ``step``."""

    def __init__(self, fps: float, min_period: float, max_period: float, window_s: float) -> None:
        self.min_period, self.max_period = float(min_period), float(max_period)
        self.max_lag = max_lag_for(max_period)
        self.alpha = math.exp(-1.0 / (window_s * fps))
        self.periods = period_grid(min_period, max_period)

    def init_state(self) -> RunningPeriodicityState:
        n = self.max_lag + 1
        return RunningPeriodicityState(_frozen(np.zeros(n)), _frozen(np.zeros(n)))

    def step(self, state: RunningPeriodicityState, activation_value: float) -> RunningPeriodicityState:
        """One frame. ``state`` is not changed."""
        a, alpha = float(activation_value), self.alpha
        frames = state.frames + 1
        if math.isnan(a):
            a = state.mean
        mean = alpha * state.mean + (1.0 - alpha) * a
        unbiased = mean / (1.0 - alpha ** frames)
        history = np.empty_like(state.history)
        history[0] = a
        history[1:] = state.history[:-1]
        x = history - unbiased
        x[frames:] = 0.0  # lags older than the stream
        products = alpha * state.products + (1.0 - alpha) * x[0] * x
        return RunningPeriodicityState(_frozen(history), _frozen(products), mean, frames)

    @staticmethod
    def autocorrelation(state: RunningPeriodicityState) -> np.ndarray:
        """The running autocorrelation of a state, normalised to 1 at lag 0. Shape: (L + 1,)."""
        p0 = state.products[0]
        return state.products / p0 if p0 > 1e-12 else np.zeros_like(state.products)

    def periodicity(self, state: RunningPeriodicityState) -> Periodicity:
        """The running periodicity of a state."""
        return periodicity_from_acf(self.autocorrelation(state), self.min_period, self.max_period)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a
