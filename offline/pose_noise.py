"""Pose-estimation noise measured on keypoint sequences: jitter and left/right swaps.

What a pose estimator adds to the true motion, measured without ground truth so that it works on real
video (issue 16, item 5) and on the synthetic dancer alike, by the same functions:

* **Jitter**: the residual after a Savitzky-Golay fit (``window`` frames, polynomial ``order``) of each
  joint's track. The fit follows the motion, so the residual is the frame-to-frame noise plus what the
  polynomial misses of fast motion; robust statistics (median absolute value) keep the rare large
  misses (landings, swaps, outliers) from dominating. For white noise of standard deviation ``s`` the
  residual has standard deviation ``s * sqrt(1 - w0)`` (``w0``: the fit's centre weight); the figures
  divide that factor out, so a *white-equivalent* jitter equals ``s`` for white noise. Temporally
  correlated noise (mediapipe smooths its landmarks in video mode) leaves less in the residual and
  correlates it between frames: the lag-1 autocorrelation of the residual and the growth of the
  residual with the window tell the two apart, and :func:`fit_noise_model` turns them into a white +
  AR(1) noise (level, white share, frame-to-frame coefficient) that leaves the same residuals. Jitter
  is in units of the figure's pixel height (:func:`figure_height_px`), so it transfers across image
  sizes and distances.
* **Left/right swaps**: frames where a left/right joint pair (eyes, ears, shoulders, elbows, wrists,
  hips, knees, ankles) is exchanged. Per pair, a two-state Viterbi path (as observed / exchanged) over
  each run of frames where both joints are seen minimises the squared accelerations of the de-swapped
  pair plus a penalty per switch and a small cost per exchanged frame (so the observed labelling wins
  unless exchanging fits the smooth trajectory much better). A swap of two joints ``d`` apart adds
  about ``2 d^2`` per joint at each of its two ends; ``penalty_frac`` sets the smallest ``d`` (in
  figure heights) that is called a swap. Frames where the pair is closer than ``min_sep_frac`` are
  ambiguous and counted neither way.

Shapes: keypoints (T, 17, 2) px, confidence (T, 17) (0 = unseen), times (T,) s; COCO-17 joint order.
Pure numpy; nothing here reads files or runs a pose model (``scripts/measure_pose_noise.py`` does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The COCO-17 left/right pairs (left, right) and their names.
LR_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
PAIR_NAMES: tuple[str, ...] = ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
#: Joint groups the figures are summarised over.
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "head": (0, 1, 2, 3, 4), "torso": (5, 6, 11, 12), "arms": (7, 8, 9, 10), "legs": (13, 14, 15, 16),
    "all": tuple(range(17)),
}  # fmt: skip
#: Confidence bins (lower edges; the last bin ends at 1) for jitter against confidence.
CONF_BINS: tuple[float, ...] = (0.0, 0.5, 0.8, 0.95)
_MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): median |x| of a standard normal is 1 / this
_HUBER = 0.1  # figure heights: accelerations beyond this cost linearly in the swap search


# ---------------------------------------------------------------------------------------------- basics


def savgol_weights(window: int, order: int) -> np.ndarray:
    """Centre-point weights of a Savitzky-Golay fit: the least-squares polynomial of ``order`` over
    ``window`` (odd) frames, evaluated at the middle. Shape (window,); they sum to 1."""
    if window < 3 or window % 2 == 0 or not 0 <= order < window:
        raise ValueError(f"need an odd window >= 3 and 0 <= order < window, got window={window}, order={order}")
    k = np.arange(window, dtype=np.float64) - window // 2
    a = np.vander(k, order + 1, increasing=True)  # (window, order + 1)
    return np.asarray(np.linalg.pinv(a)[0], dtype=np.float64)  # the constant term at k = 0


def white_residual_factor(window: int, order: int) -> float:
    """Standard deviation of the fit residual for unit white noise: ``sqrt(1 - w0)``."""
    return float(np.sqrt(1.0 - savgol_weights(window, order)[window // 2]))


def uniform_runs(valid: np.ndarray, times: np.ndarray, tol: float = 0.25) -> list[tuple[int, int]]:
    """Maximal runs ``[a, b)`` of consecutive valid frames with regular frame times (each step within
    ``tol`` of the median step: a dropped frame or a time jump ends a run). Shapes: (T,), (T,)."""
    valid = np.asarray(valid, bool)
    if len(valid) == 0:
        return []
    dt = np.diff(times)
    step = float(np.median(dt)) if len(dt) else 1.0
    link = valid[1:] & valid[:-1] & (np.abs(dt - step) <= tol * step)
    runs: list[tuple[int, int]] = []
    a = None
    for i in range(len(valid)):
        if a is None:
            if valid[i]:
                a = i
        if a is not None and (i == len(valid) - 1 or not link[i]):
            runs.append((a, i + 1))
            a = None
    return runs


def figure_height_px(keypoints: np.ndarray, confidence: np.ndarray) -> float:
    """The figure's standing height in pixels: the 90th percentile over frames of the distance from the
    nose to the midpoint of the ankles (frames where all three are seen). Shapes: (T, 17, 2), (T, 17).

    The 90th percentile is the upright figure even when it crouches or jumps part of the time. Falls
    back to the tallest extent of the seen joints when the nose or an ankle is never seen; nan if no
    joint is ever seen.
    """
    kp = np.asarray(keypoints, np.float64)
    c = np.asarray(confidence) > 0
    ok = c[:, 0] & c[:, 15] & c[:, 16]
    if ok.sum() >= 3:
        d = np.linalg.norm(kp[ok, 0] - 0.5 * (kp[ok, 15] + kp[ok, 16]), axis=-1)
        return float(np.percentile(d, 90))
    ext = [np.ptp(kp[i, c[i], 1]) for i in range(len(kp)) if c[i].sum() >= 2]
    return float(np.percentile(ext, 90)) if ext else float("nan")


def robust_sigma(x: np.ndarray) -> float:
    """Standard deviation of a zero-mean Gaussian sample from its median absolute value (nan if empty)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(_MAD_TO_SIGMA * np.median(np.abs(x))) if len(x) else float("nan")


def robust_lag1(pairs: np.ndarray) -> float:
    """Robust correlation of pairs ``(r_t, r_{t+1})`` (shape (N, 2)): Gnanadesikan-Kettenring,
    ``(s(u)^2 - s(v)^2) / (s(u)^2 + s(v)^2)`` with u, v the sums and differences and s a median-based
    scale. Equals the Pearson correlation for Gaussian pairs of equal variance; nan if empty."""
    p = np.asarray(pairs, np.float64).reshape(-1, 2)
    p = p[np.all(np.isfinite(p), axis=1)]
    if len(p) < 2:
        return float("nan")
    su, sv = robust_sigma(p[:, 0] + p[:, 1]) ** 2, robust_sigma(p[:, 0] - p[:, 1]) ** 2
    return float((su - sv) / (su + sv)) if su + sv > 0 else float("nan")


# ---------------------------------------------------------------------------------------------- jitter


def sg_residuals(keypoints: np.ndarray, confidence: np.ndarray, times: np.ndarray, window: int = 7,
                 order: int = 2) -> np.ndarray:
    """Residual of each joint's track after the Savitzky-Golay fit, in pixels. Shape (T, 17, 2) float64,
    nan where it is not defined (unseen frames and the ``window // 2`` frames at each end of a run of
    regularly timed seen frames)."""
    kp = np.asarray(keypoints, np.float64)
    w = savgol_weights(window, order)
    half = window // 2
    out = np.full(kp.shape, np.nan)
    for j in range(kp.shape[1]):
        for a, b in uniform_runs(np.asarray(confidence)[:, j] > 0, times):
            if b - a < window:
                continue
            for ax in range(2):
                x = kp[a:b, j, ax]
                out[a + half : b - half, j, ax] = x[half:-half] - np.convolve(x, w[::-1], mode="valid")
    return out


@dataclass(frozen=True)
class JitterStats:
    """Jitter of one clip (or several pooled), in figure heights. Per-joint arrays have shape (17,)."""

    window: int
    order: int
    figure_px: float  #: the figure's height in pixels (the unit); for pooled clips their median
    sigma: np.ndarray  #: white-equivalent jitter per joint (x and y pooled), robust
    lag1: np.ndarray  #: robust lag-1 autocorrelation of the residual per joint
    count: np.ndarray  #: residual samples per joint (x and y counted once each)
    by_confidence: tuple[tuple[float, float, float, int], ...]  #: (lo, hi, sigma, samples) per bin
    groups: dict[str, tuple[float, float, int]]  #: group name -> (sigma, lag1, samples)


def _pooled(res: list[np.ndarray], conf: list[np.ndarray], window: int, order: int,
            heights: list[float]) -> JitterStats:
    """Jitter figures from residuals already divided by each clip's figure height."""
    f = white_residual_factor(window, order)
    r = np.concatenate(res, axis=0)  # (T, 17, 2)
    c = np.concatenate(conf, axis=0)  # (T, 17)
    lagged = [np.stack([x[:-1], x[1:]], -1) for x in res]  # (T - 1, 17, 2, 2) per clip: no pairs across clips
    pairs = np.concatenate(lagged, axis=0) if lagged else np.zeros((0, 17, 2, 2))
    nj = r.shape[1]
    sigma = np.array([robust_sigma(r[:, j]) / f for j in range(nj)])
    lag1 = np.array([robust_lag1(pairs[:, j]) for j in range(nj)])
    count = np.isfinite(r).sum(axis=(0, 2))
    by_conf = []
    edges = (*CONF_BINS, 1.0 + 1e-9)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (c > lo) & (c <= hi) if lo > 0 else (c > 0) & (c <= hi)
        vals = r[sel]
        by_conf.append((float(lo), float(min(hi, 1.0)), robust_sigma(vals) / f, int(np.isfinite(vals).sum())))
    groups = {}
    for name, js in JOINT_GROUPS.items():
        idx = list(js)
        groups[name] = (robust_sigma(r[:, idx]) / f, robust_lag1(pairs[:, idx]), int(np.isfinite(r[:, idx]).sum()))
    return JitterStats(window, order, float(np.median(heights)), sigma, lag1, count, tuple(by_conf), groups)


def measure_jitter(clips: list[tuple[np.ndarray, np.ndarray, np.ndarray]], window: int = 7,
                   order: int = 2) -> JitterStats:
    """Jitter of one or more clips, each ``(keypoints (T, 17, 2) px, confidence (T, 17), times (T,))``,
    pooled after dividing each clip's residual by its own figure height."""
    res, conf, heights = [], [], []
    for kp, c, t in clips:
        h = figure_height_px(kp, c)
        if not np.isfinite(h) or h <= 0:
            continue
        res.append(sg_residuals(kp, c, t, window, order) / h)
        conf.append(np.asarray(c, np.float64))
        heights.append(h)
    if not res:
        raise ValueError("no clip with a seen figure to measure")
    return _pooled(res, conf, window, order, heights)


def noise_residual_moments(a: float | np.ndarray, white_share: float | np.ndarray = 0.0, window: int = 7,
                           order: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """What the Savitzky-Golay residual shows of unit-variance noise made of a white part (``white_share``
    of the variance) and a stationary AR(1) part ``n_t = a n_{t-1} + e_t`` (the rest): its white-equivalent
    jitter (residual standard deviation over the white factor; 1 for white noise) and its lag-1
    autocorrelation. ``a`` and ``white_share`` broadcast against each other; the results have their shape."""
    g = -savgol_weights(window, order)
    g[window // 2] += 1.0  # residual taps; r_t = sum_i g_i n_{t+i}
    d = np.arange(-(window - 1), window)
    ac = np.array([float(np.dot(g[max(0, -k) : window - max(0, k)], g[max(0, k) : window - max(0, -k)]))
                   for k in d.tolist()])  # autocorrelation of the taps at lag d
    a_, ws = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(white_share, np.float64))

    def cov(shift: int) -> np.ndarray:  # E[r_t r_{t+shift}] = sum_d ac(d) acov(d + shift)
        k = np.abs(d + shift)
        ar = np.sum(ac * a_[..., None] ** k, axis=-1)
        white = ac[d == shift].sum() if abs(shift) < window else 0.0
        return np.asarray(ws * white + (1.0 - ws) * ar)

    v0 = cov(0)
    return np.sqrt(v0) / white_residual_factor(window, order), cov(1) / v0


@dataclass(frozen=True)
class NoiseFit:
    """Noise = white (``white_share`` of the variance) + AR(1) with coefficient ``a`` per frame, standard
    deviation ``sigma`` (figure heights); ``time_s``: the AR(1) part's time constant at ``fps``."""

    sigma: float
    a: float
    white_share: float
    fps: float
    rms_error: float  #: of the fitted lag-1 values and log jitter ratios

    @property
    def time_s(self) -> float:
        return float(-1.0 / (self.fps * np.log(self.a))) if 0.0 < self.a < 1.0 else 0.0


def fit_noise_model(windows: tuple[int, ...], sigma_white: np.ndarray, lag1: np.ndarray, fps: float,
                    order: int = 2) -> NoiseFit:
    """The white + AR(1) noise whose residuals show the measured white-equivalent jitter ``sigma_white``
    and lag-1 autocorrelation ``lag1`` at each fit ``window`` (shapes (W,)): a grid search over the white
    share (steps of 0.05) and ``a`` (0 to 0.98, steps of 0.01) minimising the squared errors of the lag-1
    values and of the log jitter (``sigma`` is the best scale for each shape). Several windows tell a
    slow wobble (the residual grows with the window) from white noise (it does not)."""
    sw, l1 = np.asarray(sigma_white, np.float64), np.asarray(lag1, np.float64)
    if len(windows) < 2 or sw.shape != (len(windows),) or l1.shape != (len(windows),):
        raise ValueError("need the jitter and lag-1 at two or more windows")
    ws_grid, a_grid = np.meshgrid(np.linspace(0.0, 1.0, 21), np.linspace(0.0, 0.98, 99), indexing="ij")
    m = [noise_residual_moments(a_grid, ws_grid, w, order) for w in windows]  # per window: (level, lag1) grids
    level = np.stack([x[0] for x in m], -1)  # (21, 99, W)
    lag = np.stack([x[1] for x in m], -1)
    log_s = np.mean(np.log(sw) - np.log(level), axis=-1)  # (21, 99): the best scale per shape
    err_grid = np.sum((lag - l1) ** 2, -1) + np.sum((np.log(level) + log_s[..., None] - np.log(sw)) ** 2, -1)
    i, k = np.unravel_index(int(np.argmin(err_grid)), err_grid.shape)
    err, sigma, a, ws = float(err_grid[i, k]), float(np.exp(log_s[i, k])), float(a_grid[i, k]), float(ws_grid[i, k])
    return NoiseFit(sigma, a, ws, float(fps), float(np.sqrt(err / (2 * len(windows)))))


# ---------------------------------------------------------------------------------------------- swaps


def _swap_path(p: np.ndarray, q: np.ndarray, penalty: float, stay: float, min_sep: float) -> np.ndarray:
    """Viterbi over (observed, exchanged) for one run: ``p``, ``q`` (n, 2) the pair's positions in figure
    heights. Cost: squared accelerations of the de-swapped tracks, ``penalty`` per switch, ``stay`` per
    exchanged frame. Where the pair is closer than ``min_sep`` it counts as observed (exchanging is
    meaningless there), so a swap starts only between two frames where the pair is apart and ends at
    the latest where the joints meet. Returns (n,) bool, True where the pair is exchanged."""
    n = len(p)
    if n < 3:
        return np.zeros(n, bool)
    apart = np.linalg.norm(p - q, axis=-1) >= min_sep
    sw = np.where(apart[:-1], penalty, np.inf).tolist()  # (n - 1,) cost of a switch after frame t
    x1 = np.where(apart, stay, np.inf).tolist()  # (n,) cost of frame t exchanged
    pos = np.stack([np.stack([p, q], 1), np.stack([q, p], 1)])  # (state, n, joint, xy)
    # acc[s0, s1, s2, t - 1]: squared acceleration at frame t with states s0, s1, s2 at t - 1, t, t + 1
    acc = pos[None, None, :, 2:] - 2.0 * pos[None, :, None, 1:-1] + pos[:, None, None, :-2]
    mag = np.linalg.norm(acc, axis=-1)  # (2, 2, 2, n - 2, joint)
    huber = np.where(mag <= _HUBER, mag * mag, 2.0 * _HUBER * mag - _HUBER**2)  # a garbage frame weighs little
    a2 = huber.sum(axis=-1).tolist()  # nested lists (2, 2, 2, n - 2): fast scalar access
    # Viterbi over state pairs (s_{t-1}, s_t), kept as plain floats (four of them per frame)
    cost = [[(x1[0] if s0 else 0.0) + (x1[1] if s1 else 0.0) + (sw[0] if s0 != s1 else 0.0) for s1 in (0, 1)]
            for s0 in (0, 1)]
    back = np.zeros((n, 2, 2), np.int8)  # back[t + 2, s1, s2] = best s0
    for t in range(n - 2):
        new = [[0.0, 0.0], [0.0, 0.0]]
        trans = [[(x1[t + 2] if s2 else 0.0) + (sw[t + 1] if s2 != s1 else 0.0) for s2 in (0, 1)] for s1 in (0, 1)]
        for s1 in (0, 1):
            for s2 in (0, 1):
                c0 = cost[0][s1] + a2[0][s1][s2][t]
                c1 = cost[1][s1] + a2[1][s1][s2][t]
                if c1 < c0:
                    new[s1][s2], back[t + 2, s1, s2] = c1 + trans[s1][s2], 1
                else:
                    new[s1][s2] = c0 + trans[s1][s2]
        cost = new
    flat = [cost[0][0], cost[0][1], cost[1][0], cost[1][1]]
    best = int(np.argmin(flat))
    path = np.zeros(n, bool)
    s_prev, s_cur = best >> 1, best & 1
    path[n - 1], path[n - 2] = bool(s_cur), bool(s_prev)
    for t in range(n - 1, 1, -1):
        s0 = int(back[t, s_prev, s_cur])
        path[t - 2] = bool(s0)
        s_prev, s_cur = s0, s_prev
    return path


def detect_swaps(keypoints: np.ndarray, confidence: np.ndarray, times: np.ndarray, *,
                 penalty_frac: float = 0.04, noise_k: float = 3.0, stay_frac: float = 0.03,
                 min_sep_frac: float = 0.04, height_px: float | None = None) -> np.ndarray:
    """Frames where each left/right pair is exchanged. Shape (T, 8) bool (pairs in ``LR_PAIRS`` order).

    ``penalty_frac``: a switch costs ``4 * d^2`` (figure heights squared), what a swap of two joints ``d``
    apart saves at one end, with ``d`` the larger of ``penalty_frac`` and ``noise_k`` times the run's
    acceleration noise (robust standard deviation of the pair's second differences: a swap must stand
    out of the noise); ``stay_frac``: each exchanged frame costs ``stay_frac^2``;
    ``min_sep_frac``: frames where the pair is closer than this count as observed, so a swap starts
    only between two frames where the pair is at least this far apart, and ends at the latest where
    the joints meet (there, exchanging them is indistinguishable from motion that turns back, as the
    feet of a jumping jack do: a swap that starts where the joints meet is not seen).
    ``height_px``: the unit (default :func:`figure_height_px`).
    """
    kp = np.asarray(keypoints, np.float64)
    h = figure_height_px(kp, confidence) if height_px is None else float(height_px)
    out = np.zeros((kp.shape[0], len(LR_PAIRS)), bool)
    if not np.isfinite(h) or h <= 0:
        return out
    c = np.asarray(confidence) > 0
    for i, (l, r) in enumerate(LR_PAIRS):
        for a, b in uniform_runs(c[:, l] & c[:, r], times):
            pl, pr = kp[a:b, l] / h, kp[a:b, r] / h
            noise = robust_sigma(np.concatenate([np.diff(pl, 2, axis=0), np.diff(pr, 2, axis=0)])) if b - a > 2 else 0.0
            d = max(penalty_frac, noise_k * noise)
            out[a:b, i] = _swap_path(pl, pr, 4.0 * d * d, stay_frac**2, min_sep_frac)
    return out


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of True in a (T,) bool array."""
    x = np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]]))
    return list(zip(np.flatnonzero(x == 1).tolist(), np.flatnonzero(x == -1).tolist(), strict=True))


@dataclass(frozen=True)
class SwapStats:
    """Left/right swaps of one clip or several pooled. Per-pair arrays have shape (8,) (``LR_PAIRS``).

    A *flip* is a frame where ``flip_min_pairs`` or more pairs are exchanged at once: the pose estimator
    took the dancer to face the other way (all of the left side for the right side)."""

    frames: np.ndarray  #: pair-frames counted (both seen, in a run of >= 3 frames, pair >= min_sep apart)
    swapped: np.ndarray  #: of those, exchanged
    events: np.ndarray  #: runs of exchanged frames per pair
    pair_seconds: np.ndarray  #: seconds of counted frames per pair
    durations_s: tuple[float, ...]  #: length of every event, seconds (all pairs)
    co_swaps: dict[str, int]  #: pairs exchanged together ("shoulder+hip+...") -> frames
    seen_seconds: float  #: seconds with the dancer seen (any joint)
    flip_durations_s: tuple[float, ...]  #: length of every flip event, seconds

    @property
    def rate(self) -> float:
        """Share of counted pair-frames that are exchanged (all pairs)."""
        n = int(self.frames.sum())
        return float(self.swapped.sum() / n) if n else float("nan")

    @property
    def events_per_pair_minute(self) -> float:
        s = float(self.pair_seconds.sum())
        return float(60.0 * self.events.sum() / s) if s > 0 else float("nan")

    @property
    def mean_duration_s(self) -> float:
        return float(np.mean(self.durations_s)) if self.durations_s else float("nan")

    @property
    def flips_per_minute(self) -> float:
        return float(60.0 * len(self.flip_durations_s) / self.seen_seconds) if self.seen_seconds > 0 else float("nan")

    @property
    def flip_share(self) -> float:
        """Share of seen time spent flipped."""
        return float(sum(self.flip_durations_s) / self.seen_seconds) if self.seen_seconds > 0 else float("nan")


def measure_swaps(clips: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, penalty_frac: float = 0.04,
                  noise_k: float = 3.0, stay_frac: float = 0.03, min_sep_frac: float = 0.04,
                  flip_min_pairs: int = 4) -> SwapStats:
    """Left/right swap and flip figures of one or more clips ``(keypoints, confidence, times)``, pooled
    (the detector's parameters as :func:`detect_swaps`)."""
    npairs = len(LR_PAIRS)
    frames, swapped, events = np.zeros(npairs, np.int64), np.zeros(npairs, np.int64), np.zeros(npairs, np.int64)
    pair_s = np.zeros(npairs)
    durations: list[float] = []
    flips: list[float] = []
    co: dict[str, int] = {}
    seen_s = 0.0
    for kp, c, t in clips:
        kp = np.asarray(kp, np.float64)
        h = figure_height_px(kp, c)
        if not np.isfinite(h) or h <= 0:
            continue
        sw = detect_swaps(kp, c, t, penalty_frac=penalty_frac, noise_k=noise_k, stay_frac=stay_frac,
                          min_sep_frac=min_sep_frac, height_px=h)
        dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        seen = np.asarray(c) > 0
        seen_s += float(seen.any(axis=1).sum()) * dt
        counted = np.zeros(sw.shape, bool)
        for i, (l, r) in enumerate(LR_PAIRS):
            for a, b in uniform_runs(seen[:, l] & seen[:, r], t):
                counted[a:b, i] = b - a >= 3
            counted[:, i] &= np.linalg.norm(kp[:, l] - kp[:, r], axis=-1) / h >= min_sep_frac
            frames[i] += int(counted[:, i].sum())
            swapped[i] += int((sw[:, i] & counted[:, i]).sum())
            pair_s[i] += counted[:, i].sum() * dt
            for a, b in _true_runs(sw[:, i]):
                if counted[a:b, i].any():
                    events[i] += 1
                    durations.append((b - a) * dt)
        flips += [(b - a) * dt for a, b in _true_runs((sw & counted).sum(axis=1) >= flip_min_pairs)]
        for f in np.flatnonzero(sw.any(axis=1)):
            key = "+".join(PAIR_NAMES[i] for i in np.flatnonzero(sw[f]))
            co[key] = co.get(key, 0) + 1
    return SwapStats(frames, swapped, events, pair_s, tuple(durations), co, seen_s, tuple(flips))


__all__ = [
    "CONF_BINS", "JOINT_GROUPS", "LR_PAIRS", "PAIR_NAMES", "JitterStats", "NoiseFit", "SwapStats", "detect_swaps",
    "figure_height_px", "fit_noise_model", "measure_jitter", "measure_swaps", "noise_residual_moments", "robust_lag1",
    "robust_sigma",
    "savgol_weights", "sg_residuals", "uniform_runs", "white_residual_factor",
]  # fmt: skip
