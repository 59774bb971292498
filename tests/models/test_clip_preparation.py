"""Clip preparation for the beat network: per-frame targets, model-rate features, clip-level vs running norm."""

from dataclasses import dataclass

import numpy as np

from rhythmicnet.models.beat_features import beat_input_features
from rhythmicnet.models.clip_preparation import PreparedClip, beat_targets, prepare_clip
from rhythmicnet.models.keypoints import MODEL_FPS, KeypointSequence, prepare_for_model
from rhythmicnet.models.skeleton import normalize_clip


def test_beat_targets_shape():
    times = np.arange(90) / 30.0
    beat, down = beat_targets(times, np.array([1.0, 2.01, 5.0]), np.array([1.0]))
    assert beat.shape == down.shape == (90,) and beat.dtype == np.float32
    assert beat[30] == 1.0 and beat[29] == beat[31] == 0.5 and beat[60] == 1.0 and beat[59] == beat[61] == 0.5
    assert beat.sum() == 2 * (1.0 + 2 * 0.5)  # 5.0 s is outside the frames
    assert down[30] == 1.0 and down.sum() == 2.0
    b0, _ = beat_targets(times, np.array([0.0]), np.array([]), widen=0)
    assert b0[0] == 1.0 and b0.sum() == 1.0
    b2, _ = beat_targets(times, np.array([1.0]), np.array([]), widen=2)
    assert list(b2[28:33]) == [0.5, 0.5, 1.0, 0.5, 0.5]


@dataclass(frozen=True)
class _Clip:
    sequence: KeypointSequence
    beats: np.ndarray
    downbeats: np.ndarray


def _clip(seconds: float = 4.0, fps: float = 60.0) -> _Clip:
    rng = np.random.default_rng(0)
    n = int(seconds * fps)
    t = np.arange(n) / fps
    base = rng.uniform(100, 400, (17, 2))
    kp = base[None] + 20 * np.sin(2 * np.pi * 2.0 * t)[:, None, None] + rng.normal(0, 1, (n, 17, 2))
    seq = KeypointSequence(kp.astype(np.float32), np.ones((n, 17), np.float32), t, (640, 480))
    beats = np.arange(0.5, seconds, 0.5)
    return _Clip(seq, beats, beats[::4])


def test_prepare_clip_at_the_model_rate():
    clip = _clip()
    p = prepare_clip(clip)
    assert isinstance(p, PreparedClip)
    seq = prepare_for_model(clip.sequence)
    t = seq.num_frames
    assert abs(t - 4.0 * MODEL_FPS) <= 1
    assert p.features.dtype == np.float32 and p.features.shape[:2] == (t, 17)
    expected = beat_input_features(normalize_clip(seq.keypoints, seq.confidence), seq.confidence)
    assert np.allclose(p.features, expected.astype(np.float32))
    bt, dt = beat_targets(seq.times, clip.beats, clip.downbeats)
    assert np.array_equal(p.beat_target, bt) and np.array_equal(p.downbeat_target, dt)
    assert np.array_equal(p.beats, clip.beats) and np.array_equal(p.downbeats, clip.downbeats)


def test_running_normalisation_differs_but_keeps_shapes():
    clip = _clip()
    offline, live = prepare_clip(clip), prepare_clip(clip, running=True)
    assert live.features.shape == offline.features.shape
    assert np.array_equal(live.beat_target, offline.beat_target)
    assert not np.allclose(live.features, offline.features)
