"""Motion onset envelope: the baseline beat activation (``--beat-model onset``).

Kinematic offsets at the model rate (30 fps), lightly smoothed and scaled to [0, 1], stand in for the
learned beat network until it lands, and stay as the baseline row of later evaluations. A dancer's
landings, stops and direction changes give acceleration bursts, which the DBN beat decoder turns into
a steady beat.

Scaling: divide by the clip's 95th percentile of the smoothed offsets and clip to [0, 1], so a few
huge movements (a jump, a flip) do not flatten every other beat. The smoothing is centred (one frame
of look-ahead): this is the offline baseline; the live path uses the causal beat network.
"""

from __future__ import annotations

import numpy as np

from rhythmicnet.models.directogram import kinematic_offsets

#: Smoothing kernel over 3 frames (100 ms at 30 fps): keeps a beat's burst one peak.
_KERNEL = np.array([0.25, 0.5, 0.25])
PERCENTILE = 95.0


def onset_envelope(keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Smoothed kinematic offsets. Shapes: (T, 17, 2), (T, 17) -> (T,)."""
    ko = kinematic_offsets(keypoints, confidence)
    if len(ko) < 3:
        return ko
    return np.convolve(ko, _KERNEL, mode="same")


def onset_activation(keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Beat activation in [0, 1] from motion onsets. Shapes: (T, 17, 2), (T, 17) -> (T,)."""
    env = onset_envelope(keypoints, confidence)
    if len(env) == 0:
        return env
    scale = float(np.percentile(env, PERCENTILE))
    if scale <= 1e-9:
        return np.zeros_like(env)
    return np.clip(env / scale, 0.0, 1.0)
