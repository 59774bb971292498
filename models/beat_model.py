"""The trained beat network as Video2Rhythm's beat activation (weights from ``models/weights``).

``LearnedBeatModel.load("full")`` is the offline model (bidirectional attention over the clip) used by
``rhythm`` and ``render``; ``"full_causal"`` is the live model (its streaming form is
:class:`~rhythmicnet.models.beat_net.BeatNetStream`). Loading is local only; a missing or corrupt file
is a ``WeightsError`` naming it.
"""

from __future__ import annotations

import os
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


def has_beat_model(name: str, weights_dir: str | os.PathLike[str] = WEIGHTS_DIR) -> bool:
    d = Path(weights_dir)
    return (d / f"beat_{name}.json").is_file() and (d / f"beat_{name}.pt").is_file()


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
    def activation(self, keypoints_norm: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats = np.ascontiguousarray(beat_input_features(keypoints_norm, confidence), dtype=np.float32)
        if self.graph is not None:
            out = self.graph.run({"features": feats[None]})
            beat, down = out["beat_logits"][0], out["downbeat_logits"][0]
        else:
            o = self.model(torch.from_numpy(feats)[None])
            beat, down = o.beat_logits[0].numpy(), o.downbeat_logits[0].numpy()
        return (torch.sigmoid(torch.from_numpy(np.asarray(beat))).numpy().astype(np.float64),
                torch.sigmoid(torch.from_numpy(np.asarray(down))).numpy().astype(np.float64))
