"""The trained beat network as Video2Rhythm's beat activation (weights from ``models/weights``).

``LearnedBeatModel.load("full")`` is the offline model (bidirectional attention over the clip) used by
``rhythm`` and ``render``; ``"full_causal"`` is the live model (its streaming form is
:class:`~rhythmicnet.models.beat_net.BeatNetStream`). Loading is local only; a missing or corrupt file
is a ``WeightsError`` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rhythmicnet.errors import WeightsError
from rhythmicnet.models.beat_features import beat_input_features
from rhythmicnet.models.beat_net import BeatNet, BeatNetConfig
from rhythmicnet.models.graphs import GraphFactory, torch_graph
from rhythmicnet.models.keypoints import MODEL_FPS
from rhythmicnet.models.step_graphs import BeatWindowGraph
from rhythmicnet.models.tcn_beat import TCNBeat, TCNBeatConfig
from rhythmicnet.models.weights import WEIGHTS_DIR, load_into, load_manifest


def downbeats_from(beats: np.ndarray, downbeat_act: np.ndarray, fps: float = MODEL_FPS) -> np.ndarray:
    """4/4 downbeats: the phase (0-3) of the beats that collects the most downbeat activation."""
    if len(beats) == 0:
        return beats
    idx = np.clip(np.round(beats * fps).astype(int), 0, len(downbeat_act) - 1)
    scores = [downbeat_act[idx[p::4]].sum() for p in range(4)]
    return beats[int(np.argmax(scores))::4]


def model_from_manifest(manifest: dict[str, Any], source: str = "manifest") -> torch.nn.Module:
    """An untrained network of the architecture a beat manifest describes."""
    try:
        arch = manifest["architecture"]
        if arch["kind"] == "tcn":
            return TCNBeat(TCNBeatConfig.from_dict(arch["config"]))
        return BeatNet(BeatNetConfig.from_dict(arch["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{source}: corrupt beat model manifest ({e})") from e


def load_beat_model(name: str, weights_dir: str | os.PathLike[str] = WEIGHTS_DIR) -> torch.nn.Module:
    """``beat_<name>.pt`` + ``beat_<name>.json`` from ``weights_dir``, in eval mode."""
    d = Path(weights_dir)
    manifest = load_manifest(d / f"beat_{name}.json")
    model = model_from_manifest(manifest, str(d / f"beat_{name}.json"))
    load_into(model, d / f"beat_{name}.pt")
    return model.eval()


def is_causal(model: torch.nn.Module) -> bool:
    """True for a causal (live) beat model: it reads running-normalised keypoints (``normalize_running``)."""
    return bool(getattr(getattr(model, "config", None), "causal", False))


def output_delay(model: torch.nn.Module | None) -> int:
    """Frames a beat model's output lags its input (``BeatNetConfig.output_delay``; 0 for the others)."""
    return int(getattr(getattr(model, "config", None), "output_delay", 0))


def has_beat_model(name: str, weights_dir: str | os.PathLike[str] = WEIGHTS_DIR) -> bool:
    d = Path(weights_dir)
    return (d / f"beat_{name}.json").is_file() and (d / f"beat_{name}.pt").is_file()


#: Frames of one window of the offline beat network over a long clip: 16 s at 30 fps, twice the windows
#: it was trained on (``BeatTrainConfig.window_frames``, 240). The generator-2.0 network reads the longer
#: context well: on the 200 held-out clips windows of 240 frames scored F 93.08, of 480 93.79, one pass over
#: each 30 s clip 93.95; on 20 clips of 90 s 93.03 / 93.37 / 93.95 (windows of 600, 720, 900 frames: 93.12,
#: 93.35, 93.26; margins of 60-90 frames or cross-fades of 120 did no better), on 60 clips of 90 s 92.62
#: windowed against 92.40 whole (per-clip differences have a 4 F spread: 20 clips are a noisy mean).
#: Attention grows with the square of the window, so memory stays bounded and time linear in the clip.
WINDOW_FRAMES = 480
#: Frames dropped at each inner edge of a window (attention there sees only one side), 1 s.
WINDOW_MARGIN = 30
#: Frames over which two neighbouring windows cross-fade, 2 s.
WINDOW_CROSSFADE = 60


def window_weights(length: int, *, first: bool, last: bool, margin: int, crossfade: int) -> np.ndarray:
    """Overlap-add weight of each frame of one window (length,): 0 on the ``margin`` frames of an inner
    edge, a linear ramp over the next ``crossfade`` frames, 1 in the middle; the clip's own ends keep
    weight 1. Two neighbours ``length - 2 * margin - crossfade`` frames apart have ramps that sum to 1."""
    w = np.ones(length)
    ramp = (np.arange(crossfade) + 0.5) / crossfade  # (crossfade,) in (0, 1)
    if not first:
        w[:margin] = 0.0
        w[margin : margin + crossfade] = ramp
    if not last:
        w[length - margin :] = 0.0
        fade_out = slice(length - margin - crossfade, length - margin)
        w[fade_out] = np.minimum(w[fade_out], ramp[::-1])
    return w


def window_starts(num_frames: int, window: int, hop: int) -> list[int]:
    """First frames of the windows covering ``num_frames`` frames: every ``hop`` frames, the last one
    flush with the clip's end (one window when the clip fits in one)."""
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window, hop))
    starts.append(num_frames - window)
    return starts


def windowed_logits(run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], features: np.ndarray, *,
                    window: int = WINDOW_FRAMES, margin: int = WINDOW_MARGIN,
                    crossfade: int = WINDOW_CROSSFADE) -> tuple[np.ndarray, np.ndarray]:
    """Beat and downbeat probabilities of a whole clip from windows of ``window`` frames: each window is
    run on its own (``run``: features (W, 17, C) -> beat, downbeat logits (W,)), its probabilities are
    weighted by :func:`window_weights` and overlap-added, then divided by the summed weights. Memory and
    time are linear in the clip's length (the attention and the self-similarity bias are W x W per
    window); a clip of at most ``window`` frames is one pass, the whole-clip result.
    Shapes: (T, 17, C) -> (T,), (T,) float64."""
    t = len(features)
    if window < 2 * (margin + crossfade) + 1:
        raise ValueError(f"window ({window}) must exceed 2 * (margin + crossfade) = {2 * (margin + crossfade)}")
    hop = window - 2 * margin - crossfade  # the weighted cores of neighbours overlap by `crossfade` frames
    beat, down, total = np.zeros(t), np.zeros(t), np.zeros(t)
    starts = window_starts(t, window, hop)
    for i, s in enumerate(starts):
        e = min(s + window, t)
        b, d = run(features[s:e])
        w = window_weights(e - s, first=i == 0, last=i == len(starts) - 1, margin=margin, crossfade=crossfade)
        beat[s:e] += w * _sigmoid(np.asarray(b, dtype=np.float64))
        down[s:e] += w * _sigmoid(np.asarray(d, dtype=np.float64))
        total[s:e] += w
    total = np.maximum(total, 1e-12)
    return beat / total, down / total


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + e^-x) without overflow


class LearnedBeatModel:
    """Beat and downbeat activations of a clip. Shapes: (T, 17, 2) normalised keypoints, (T, 17) -> (T,), (T,)."""

    def __init__(self, model: torch.nn.Module, name: str = "full", graphs: GraphFactory | None = None) -> None:
        self.model = model.eval()
        self.name = name
        # The window graph (torch eager or ONNX Runtime) where the model has one; the TCN baseline and the
        # absolute-position ablation rows run as torch modules.
        cfg = getattr(model, "config", None)
        windowed = isinstance(model, BeatNet) and (cfg.use_rel_attn or not cfg.use_transformer)  # type: ignore[union-attr]
        self.graph = (graphs or torch_graph)(BeatWindowGraph(model, f"beat_{name}")) if windowed else None  # type: ignore[arg-type]

    @classmethod
    def load(cls, name: str = "full", weights_dir: str | os.PathLike[str] = WEIGHTS_DIR,
             graphs: GraphFactory | None = None) -> LearnedBeatModel:
        return cls(load_beat_model(name, weights_dir), name, graphs)

    @torch.no_grad()
    def logits(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Beat and downbeat logits of one pass over ``features``. Shapes: (T, 17, C) -> (T,), (T,)."""
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if self.graph is not None:
            out = self.graph.run({"features": feats[None]})
            return np.asarray(out["beat_logits"][0]), np.asarray(out["downbeat_logits"][0])
        o = self.model(torch.from_numpy(feats)[None])
        return o.beat_logits[0].numpy(), o.downbeat_logits[0].numpy()

    def activation(self, keypoints_norm: np.ndarray, confidence: np.ndarray, *,
                   window: int | None = WINDOW_FRAMES) -> tuple[np.ndarray, np.ndarray]:
        """Beat and downbeat probabilities of a clip, over windows of ``window`` frames overlap-added
        (:func:`windowed_logits`; linear in the clip's length). ``window=None``: one pass over the whole
        clip (attention and self-similarity grow with the square of its length)."""
        feats = np.ascontiguousarray(beat_input_features(keypoints_norm, confidence), dtype=np.float32)
        if window is None or len(feats) <= window:
            b, d = self.logits(feats)
            return _sigmoid(np.asarray(b, dtype=np.float64)), _sigmoid(np.asarray(d, dtype=np.float64))
        return windowed_logits(self.logits, feats, window=window)
