"""Rhythm2Drum: rhythm on a 16th grid -> drum performance (H by the hits transformer, V/O by the U-Net).

One object serves ``render`` (offline) and ``live``: both generate **bar after bar** with a 2-bar
window whose first bar is the bar already played (its hit tokens forced as a prefix) and whose second
bar is generated from the window's rhythm — so drums stay continuous across bars and the encoder
never needs rhythm beyond the bar being planned. The first window generates both of its bars.
Velocities and offsets come from the U-Net on the same 2-bar window (hits of the played bar + the
new bar), and only the new bar's values are kept, so offline and live give the same drums.

Shapes: rhythm (S,) bool per 16th step, starting on a bar line; hits/velocities/offsets (9, S).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rhythmicnet.errors import WeightsError
from rhythmicnet.models.drum_grid import DEFAULT_BPM, NUM_CLASSES, DrumGrid
from rhythmicnet.models.drum_unet import DrumUNet, DrumUNetConfig
from rhythmicnet.models.hits_transformer import HitsTransformer, HitsTransformerConfig
from rhythmicnet.models.hits_vocabulary import HitsVocabulary
from rhythmicnet.models.rhythm_grid import STEPS_PER_BAR
from rhythmicnet.models.weights import WEIGHTS_DIR, load_into, load_manifest

WINDOW_STEPS = 2 * STEPS_PER_BAR
MANIFEST = "rhythm2drum.json"
HITS_WEIGHTS = "rhythm2drum_hits.pt"
UNET_WEIGHTS = "rhythm2drum_unet.pt"
VOCAB_FILE = "hits_vocabulary.json"


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_k: int | None = None
    seed: int | None = 0


class Rhythm2Drum:
    """The trained Rhythm2Drum stage. Build with ``Rhythm2Drum.load()`` (shipped weights) or from modules."""

    def __init__(self, hits_model: HitsTransformer, unet: DrumUNet, vocab: HitsVocabulary,
                 device: torch.device | str = "cpu", manifest: dict[str, Any] | None = None) -> None:
        if hits_model.config.vocab_size != vocab.size:
            raise ValueError(f"hits model has {hits_model.config.vocab_size} tokens, vocabulary {vocab.size}")
        self.device = torch.device(device)
        self.hits_model = hits_model.to(self.device).eval()
        self.unet = unet.to(self.device).eval()
        self.vocab = vocab
        self.manifest = manifest or {}
        self._word_mask = torch.as_tensor(vocab.word_mask(), device=self.device)

    @classmethod
    def load(cls, weights_dir: str | Path = WEIGHTS_DIR, device: torch.device | str = "cpu") -> Rhythm2Drum:
        """Load the weights shipped in ``models/weights`` (or another folder with the same files)."""
        d = Path(weights_dir)
        manifest = load_manifest(d / MANIFEST)
        try:
            hits_cfg = HitsTransformerConfig.from_dict(manifest["hits_transformer"]["config"])
            unet_cfg = DrumUNetConfig.from_dict(manifest["unet"]["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise WeightsError(f"{d / MANIFEST}: corrupt weights manifest ({e})") from e
        try:
            vocab = HitsVocabulary.load(d / VOCAB_FILE)
        except Exception as e:  # noqa: BLE001 - any unreadable vocabulary is a weights problem
            raise WeightsError(f"{d / VOCAB_FILE}: cannot read the hits vocabulary ({e})") from e
        hits_model, unet = HitsTransformer(hits_cfg), DrumUNet(unet_cfg)
        load_into(hits_model, d / HITS_WEIGHTS)
        load_into(unet, d / UNET_WEIGHTS)
        return cls(hits_model, unet, vocab, device, manifest)

    # --- pieces ---------------------------------------------------------------------------------

    @torch.no_grad()
    def generate_windows(self, rhythm: np.ndarray, *, prefix_hits: np.ndarray | None = None,
                         sampling: SamplingConfig = SamplingConfig(),
                         generator: torch.Generator | None = None) -> np.ndarray:
        """Hits for a batch of 2-bar windows. Shapes: rhythm (B, 32), prefix_hits (B, 9, P) -> (B, 9, 32)."""
        r = torch.as_tensor(np.asarray(rhythm, dtype=np.int64), device=self.device)
        prefix = None
        if prefix_hits is not None and prefix_hits.shape[-1] > 0:
            ids = np.stack([self.vocab.encode(h) for h in prefix_hits])
            prefix = torch.as_tensor(ids, device=self.device)
        if generator is None and sampling.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(int(sampling.seed))
        tokens = self.hits_model.generate(r, temperature=sampling.temperature, top_k=sampling.top_k,
                                          generator=generator, prefix=prefix, logit_mask=self._word_mask)
        return np.stack([self.vocab.decode(t) for t in tokens.cpu().numpy()])

    @torch.no_grad()
    def velocities_offsets(self, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """U-Net on hits. Shapes: (B, 9, T) with T a multiple of 16 -> V, O each (B, 9, T), zero off the hits."""
        h = torch.as_tensor(np.asarray(hits, dtype=np.float32), device=self.device)
        v, o = self.unet(h)
        mask = h > 0
        return (torch.where(mask, v, 0.0).cpu().numpy(), torch.where(mask, o, 0.0).cpu().numpy())

    # --- whole performances ----------------------------------------------------------------------

    def generate(self, rhythm: np.ndarray, *, sampling: SamplingConfig = SamplingConfig(),
                 bpm: float = DEFAULT_BPM) -> DrumGrid:
        """Drums for a whole rhythm, bar after bar. rhythm (S,) from a bar line -> DrumGrid (9, bars*16)."""
        r = np.asarray(rhythm, dtype=bool)
        n_bars = max(1, int(np.ceil(len(r) / STEPS_PER_BAR)))
        padded = np.zeros((n_bars + 1) * STEPS_PER_BAR, dtype=bool)
        padded[: len(r)] = r
        gen = torch.Generator(device=self.device)
        if sampling.seed is not None:
            gen.manual_seed(int(sampling.seed))
        hits = np.zeros((NUM_CLASSES, n_bars * STEPS_PER_BAR), dtype=bool)
        vel = np.zeros(hits.shape, np.float32)
        off = np.zeros(hits.shape, np.float32)
        first = self.generate_windows(padded[None, :WINDOW_STEPS], sampling=sampling, generator=gen)[0]
        v, o = self.velocities_offsets(first[None])
        keep = min(WINDOW_STEPS, hits.shape[1])
        hits[:, :keep], vel[:, :keep], off[:, :keep] = first[:, :keep], v[0][:, :keep], o[0][:, :keep]
        for bar in range(2, n_bars):
            a = (bar - 1) * STEPS_PER_BAR
            played = hits[:, a : a + STEPS_PER_BAR]
            window = self.generate_windows(padded[None, a : a + WINDOW_STEPS], prefix_hits=played[None],
                                           sampling=sampling, generator=gen)[0]
            v, o = self.velocities_offsets(window[None])
            s = bar * STEPS_PER_BAR
            hits[:, s : s + STEPS_PER_BAR] = window[:, STEPS_PER_BAR:]
            vel[:, s : s + STEPS_PER_BAR] = v[0][:, STEPS_PER_BAR:]
            off[:, s : s + STEPS_PER_BAR] = o[0][:, STEPS_PER_BAR:]
        return DrumGrid.from_arrays(hits, vel, off, bpm=bpm)

    def describe(self) -> str:
        return json.dumps({k: self.manifest.get(k) for k in ("version", "trained", "data")})
