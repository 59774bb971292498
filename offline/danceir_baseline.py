"""A peer baseline for the clip tempo: danceir (S. Dutta, MIT, PyPI ``danceir``), a row of ``eval beat``.

danceir estimates the tempo of the music from 2D COCO-17 keypoints (our joint order) with kinematic
"anchors". It is an optional extra (``pip install 'rhythmicnet[eval]'``: it brings librosa, numba and
scikit-learn), imported lazily here and nowhere else; :func:`danceir_available` says whether it is there.

**The call.** Keypoints are gap-filled and resampled to ``fps`` (30 fps, the model rate, unless asked
otherwise) by :func:`~rhythmicnet.models.keypoints.prepare_for_model`, then every joint's remaining unseen
stretches (gaps over 0.5 s, the clip's ends) are filled too (:func:`fill_all_gaps`): danceir has no notion
of confidence. Then ``danceir.pipelines.estimate_tempo_from_keypoints(keypoints, fps=fps,
tempi_range=60..180 BPM in 1 BPM steps)`` with its other defaults: vertical (y) axis, anchor groups both
wrists, both ankles and the torso centre of mass, zero-velocity anchors. Its own defaults assume 60 fps
and 45-140 BPM. danceir 1.0.0 still uses ``np.complex_``, which NumPy 2 removed: the alias
``np.complex_ = np.complex128`` is set around each call (:func:`_complex_alias`) and removed afterwards.

**The rule that gives one clip tempo** (read from danceir 1.0.0, ``analysis/tempo.py``,
``estimate_dance_tempo``). Its result is ``{"combined_anchors": {...}}``. For each anchor series (the
wrists, the ankles, the torso) it computes a tempogram (5 s Hann windows, hop 2.5 s, over the tempo
range) of the anchors drawn as 0.1 s pulses, takes the strongest tempo of each window and their median:
one tempo candidate per series (``per_anchor_tempo_features[i]["median_tempo"]``). Each candidate, rounded
to 0.01 Hz, is correlated with every series' pulses against a sinusoid at that frequency (the largest
normalised cross-correlation over all lags); the candidate with the largest absolute correlation wins
(``alignment["best"]``) and ``gtempo`` is its frequency x 60 (so tempi come in 0.6 BPM steps; with no
correlation at all, the median of the candidates). The clip tempo here is that ``gtempo``: danceir's own
answer, unchanged. When no series has a single anchor (a still body), danceir 1.0.0 raises a TypeError
(its aligned pulse is None); that clip gets no tempo (NaN, scored as a wrong tempo, class ``other``).

**What danceir 1.0.0 does at 30 fps** (kept as it is; the baseline is the published package): two
constants stay in frames of 60 fps. After the markers of a group are merged, anchors closer than
``0.4 s x 60 = 24`` frames are dropped, which at 30 fps is 0.8 s: a group keeps at most 75 anchors a
minute, so a faster beat loses every other anchor and the tempogram sees half the tempo (it lands on the
true tempo only through a harmonic). And a group of two markers is stacked to (T, 2) and reshaped to
(2T, 1), interleaving left and right samples into one series read at ``fps``: the wrist and ankle series
run at half speed (the torso series is not affected). The ``danceir_60`` row of ``eval beat`` runs the
same keypoints resampled to 60 fps, danceir's native rate, for comparison. On the 1.0 held-out set (200
clips): Acc1 50.0 % at 30 fps, 30.5 % of the clips at half tempo; Acc1 74.5 % at 60 fps, 13.5 % at half.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rhythmicnet.errors import RhythmicNetError
from rhythmicnet.models.keypoints import MODEL_FPS, KeypointSequence, prepare_for_model

#: The tempo range danceir searches (BPM, inclusive, 1 BPM steps): the project's beat tracker's range.
TEMPO_RANGE_BPM: tuple[int, int] = (60, 180)
#: danceir's own defaults that this adapter overrides: 60 fps and 45-140 BPM.
DANCEIR_DEFAULT_FPS = 60.0
INSTALL_HINT = "danceir is not installed: pip install 'rhythmicnet[eval]'"


def danceir_available() -> bool:
    """Whether the optional ``danceir`` package can be imported (without importing it)."""
    return importlib.util.find_spec("danceir") is not None


def fill_all_gaps(keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Every joint's unseen samples (confidence 0) filled by linear interpolation between its seen ones,
    held at the clip's ends. A joint never seen takes the mean of the other (filled) joints of each frame.
    keypoints (T, J, 2), confidence (T, J) -> (T, J, 2) float64; ValueError when no joint is ever seen."""
    kp = np.asarray(keypoints, dtype=np.float64).copy()
    seen = np.asarray(confidence) > 0
    t = np.arange(len(kp), dtype=np.float64)
    if not seen.any():
        raise ValueError("no joint is seen in any frame")
    never = ~seen.any(axis=0)
    for j in np.flatnonzero(~never):
        s = seen[:, j]
        for a in range(kp.shape[2]):
            kp[:, j, a] = np.interp(t, t[s], kp[s, j, a])
    if never.any():
        kp[:, never] = kp[:, ~never].mean(axis=1, keepdims=True)
    return kp


@contextmanager
def _complex_alias() -> Iterator[None]:
    """``np.complex_`` (removed in NumPy 2, used by danceir 1.0.0) for the duration of a danceir call."""
    added = not hasattr(np, "complex_")
    if added:
        np.complex_ = np.complex128  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.complex_  # type: ignore[attr-defined]


def _estimator() -> Callable[..., dict[str, Any]]:
    """danceir's ``estimate_tempo_from_keypoints``, imported on first use."""
    if not danceir_available():
        raise RhythmicNetError(INSTALL_HINT)
    with _complex_alias():
        from danceir.pipelines import estimate_tempo_from_keypoints
    return estimate_tempo_from_keypoints  # type: ignore[no-any-return]


def danceir_result(keypoints: np.ndarray, fps: float = MODEL_FPS,
                   tempo_range: tuple[int, int] = TEMPO_RANGE_BPM) -> dict[str, Any] | None:
    """danceir's raw result on gap-free COCO-17 keypoints (T, 17, 2) px at ``fps``: the nested dict of
    ``estimate_tempo_from_keypoints``, or None when it finds no anchor in any series (a still body)."""
    estimate = _estimator()
    tempi = np.arange(tempo_range[0], tempo_range[1] + 1, 1)
    with _complex_alias():
        try:
            return estimate(np.asarray(keypoints, dtype=np.float64), fps=float(fps), tempi_range=tempi)
        except TypeError as e:  # 1.0.0: len(None) of the aligned pulse when no series has an anchor
            if "NoneType" in str(e):
                return None
            raise


def clip_tempo(result: dict[str, Any] | None) -> float:
    """The clip tempo (BPM) of a danceir result: its ``combined_anchors`` ``gtempo`` (the module docstring
    gives the rule); NaN for no result."""
    if result is None:
        return float("nan")
    return float(result["combined_anchors"]["gtempo"])


def danceir_tempo(seq: KeypointSequence, fps: float = MODEL_FPS,
                  tempo_range: tuple[int, int] = TEMPO_RANGE_BPM) -> float:
    """danceir's clip tempo (BPM) of a keypoint sequence at any rate: gap-filled, resampled to ``fps``,
    every remaining gap filled; NaN when no joint is seen or danceir finds no anchor."""
    prepared = prepare_for_model(seq, fps)
    if prepared.num_frames < 2 or not np.any(prepared.confidence > 0):
        return float("nan")
    kp = fill_all_gaps(prepared.keypoints, prepared.confidence)
    return clip_tempo(danceir_result(kp, fps, tempo_range))
