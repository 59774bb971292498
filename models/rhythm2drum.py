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
from rhythmicnet.models.drum_grid import DEFAULT_BPM, DrumGrid
from rhythmicnet.models.drum_unet import DrumUNet, DrumUNetConfig
from rhythmicnet.models.graphs import GraphFactory, torch_graph
from rhythmicnet.models.hits_decoding import hits_graphs, sample_hits
from rhythmicnet.models.hits_transformer import HitsTransformer, HitsTransformerConfig
from rhythmicnet.models.hits_vocabulary import HitsVocabulary
from rhythmicnet.models.rhythm_grid import STEPS_PER_BAR
from rhythmicnet.models.step_graphs import DrumUNetGraph
from rhythmicnet.models.weights import WEIGHTS_DIR, load_into, load_manifest

WINDOW_STEPS = 2 * STEPS_PER_BAR
MANIFEST = "rhythm2drum.json"
HITS_WEIGHTS = "rhythm2drum_hits.pt"
UNET_WEIGHTS = "rhythm2drum_unet.pt"
VOCAB_FILE = "hits_vocabulary.json"


#: Default sampling temperature of the hits transformer. At 1.0 the samples are less diverse than real
#: drumming (NDB 24 against 40 for real test windows, N = 9000); at 1.3 they match it (NDB 37 vs 40),
#: with a slightly denser output (81 % of steps with an onset vs 77 %). See models/weights/rhythm2drum.json.
DEFAULT_TEMPERATURE = 1.3


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int | None = None
    seed: int | None = 0


class Rhythm2Drum:
    """The trained Rhythm2Drum stage. Build with ``Rhythm2Drum.load()`` (shipped weights) or from modules."""

    def __init__(self, hits_model: HitsTransformer, unet: DrumUNet, vocab: HitsVocabulary,
                 device: torch.device | str = "cpu", manifest: dict[str, Any] | None = None,
                 graphs: GraphFactory = torch_graph) -> None:
        if hits_model.config.vocab_size != vocab.size:
            raise ValueError(f"hits model has {hits_model.config.vocab_size} tokens, vocabulary {vocab.size}")
        self.device = torch.device(device)
        self.hits_model = hits_model.to(self.device).eval()
        self.unet = unet.to(self.device).eval()
        self.vocab = vocab
        self.manifest = manifest or {}
        self._word_mask = torch.as_tensor(vocab.word_mask(), device=self.device)
        # the generation loops call these graphs only (torch eager or ONNX Runtime)
        self.hits_graphs = hits_graphs(self.hits_model, graphs, HITS_WEIGHTS.removesuffix(".pt"))
        self.unet_graph = graphs(DrumUNetGraph(self.unet, UNET_WEIGHTS.removesuffix(".pt")))
        self.backend = self.unet_graph.backend

    @classmethod
    def load(cls, weights_dir: str | Path = WEIGHTS_DIR, device: torch.device | str = "cpu",
             graphs: GraphFactory = torch_graph) -> Rhythm2Drum:
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
        return cls(hits_model, unet, vocab, device, manifest, graphs)

    # --- pieces ---------------------------------------------------------------------------------

    @torch.no_grad()
    def generate_windows(self, rhythm: np.ndarray, *, prefix_hits: np.ndarray | None = None,
                         sampling: SamplingConfig = SamplingConfig(),
                         generator: torch.Generator | None = None) -> np.ndarray:
        """Hits for a batch of 2-bar windows. Shapes: rhythm (B, 32), prefix_hits (B, 9, P) -> (B, 9, 32)."""
        r = np.asarray(rhythm, dtype=np.int64)
        prefix = None
        if prefix_hits is not None and prefix_hits.shape[-1] > 0:
            prefix = np.stack([self.vocab.encode(h) for h in prefix_hits])
        if generator is None and sampling.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(int(sampling.seed))
        allowed = self._word_mask.expand(len(r), -1)
        tokens = sample_hits(self.hits_graphs, r, allowed, temperature=sampling.temperature, top_k=sampling.top_k,
                             generator=generator, prefix=prefix)
        return np.stack([self.vocab.decode(t) for t in tokens])

    @torch.no_grad()
    def velocities_offsets(self, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """U-Net on hits. Shapes: (B, 9, T) with T a multiple of 16 -> V, O each (B, 9, T), zero off the hits."""
        out = self.unet_graph.run({"hits": np.ascontiguousarray(hits, dtype=np.float32)})
        return out["velocity"], out["offset"]

    # --- bar after bar ---------------------------------------------------------------------------

    def plan_bars(self, rhythm_bars: np.ndarray, prev_rhythm: np.ndarray | None = None,
                  prev_hits: np.ndarray | None = None, *, sampling: SamplingConfig = SamplingConfig(),
                  generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next bar of B drum streams (see DrumPerformer for the 2-bar window).

        Shapes: rhythm_bars (B, 16) bool; prev_rhythm (B, 16) and prev_hits (B, 9, 16) of the bar
        already played, both None for first bars -> hits, velocities, offsets, each (B, 9, 16).
        """
        r = np.asarray(rhythm_bars, dtype=bool)
        if r.ndim != 2 or r.shape[1] != STEPS_PER_BAR:
            raise ValueError(f"a bar of rhythm has {STEPS_PER_BAR} steps, got shape {r.shape}")
        if prev_hits is None or prev_rhythm is None:
            window = self.generate_windows(np.concatenate([r, r], axis=1), sampling=sampling, generator=generator)
            sl = slice(0, STEPS_PER_BAR)
        else:
            window = self.generate_windows(np.concatenate([prev_rhythm, r], axis=1), prefix_hits=prev_hits,
                                           sampling=sampling, generator=generator)
            sl = slice(STEPS_PER_BAR, WINDOW_STEPS)
        v, o = self.velocities_offsets(window)
        return window[:, :, sl], v[:, :, sl], o[:, :, sl]

    def performer(self, sampling: SamplingConfig = SamplingConfig()) -> DrumPerformer:
        """A stateful bar-after-bar generator (the one ``render`` and ``live`` both use)."""
        return DrumPerformer(self, sampling)

    def generate(self, rhythm: np.ndarray, *, sampling: SamplingConfig = SamplingConfig(),
                 bpm: float = DEFAULT_BPM) -> DrumGrid:
        """Drums for a whole rhythm, bar after bar. rhythm (S,) from a bar line -> DrumGrid (9, bars*16)."""
        r = np.asarray(rhythm, dtype=bool)
        n_bars = max(1, int(np.ceil(len(r) / STEPS_PER_BAR)))
        padded = np.zeros(n_bars * STEPS_PER_BAR, dtype=bool)
        padded[: len(r)] = r
        hits, velocities, offsets = self.generate_batch(padded[None], sampling=sampling)
        return DrumGrid.from_arrays(hits[0], velocities[0], offsets[0]).with_bpm(bpm)

    def generate_batch(self, rhythms: np.ndarray, *, sampling: SamplingConfig = SamplingConfig()
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Drums for B rhythms at once, bar after bar as ``DrumPerformer`` plays them (one generator for
        the batch, so B = 1 gives the performer's drums). rhythms (B, n_bars * 16) -> hits, velocities,
        offsets (B, 9, n_bars * 16)."""
        r = np.asarray(rhythms, dtype=bool)
        if r.ndim != 2 or r.shape[1] % STEPS_PER_BAR:
            raise ValueError(f"rhythms must have shape (B, bars * {STEPS_PER_BAR}), got {r.shape}")
        generator = torch.Generator(device=self.device)
        if sampling.seed is not None:
            generator.manual_seed(int(sampling.seed))
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        prev_r: np.ndarray | None = None
        for i in range(r.shape[1] // STEPS_PER_BAR):
            bar = r[:, i * STEPS_PER_BAR : (i + 1) * STEPS_PER_BAR]
            out.append(self.plan_bars(bar, prev_r, out[-1][0] if out else None, sampling=sampling,
                                      generator=generator))
            prev_r = bar
        if not out:
            empty = np.zeros((len(r), 9, 0), np.float32)
            return empty.astype(bool), empty, empty
        return tuple(np.concatenate([o[k] for o in out], axis=2) for k in range(3))  # type: ignore[return-value]

    def describe(self) -> str:
        return json.dumps({k: self.manifest.get(k) for k in ("version", "trained", "data")})


@dataclass(frozen=True)
class DrumPerformerState:
    """The drummer between two bars: the bar just played (its rhythm (16,) and hits (9, 16); None before
    the first bar), the bars played, and the sampler's RNG state (``torch.Generator.get_state()``)."""

    prev_rhythm: np.ndarray | None
    prev_hits: np.ndarray | None
    bars_played: int
    rng: torch.Tensor


class DrumPerformer:
    """Plans one bar of drums at a time from that bar's rhythm (the streaming contract: explicit
    :class:`DrumPerformerState`, a pure :meth:`step`, ``reset`` / ``next_bar`` (= ``process_online``) /
    ``process_offline``).

    Bar i is generated in the 2-bar window [bar i-1, bar i]: the played bar's hit tokens are forced
    as a prefix and the encoder reads both bars' rhythm — never rhythm beyond bar i. The first bar has
    no played bar: its window is [bar 0, bar 0] (the planned rhythm repeated) and only the first half
    is kept. Velocities and offsets come from the U-Net on the same window. Sampling is reproducible
    from ``sampling.seed``.
    """

    def __init__(self, model: Rhythm2Drum, sampling: SamplingConfig = SamplingConfig()) -> None:
        self.model = model
        self.sampling = sampling
        self.reset()

    def initial_state(self) -> DrumPerformerState:
        generator = torch.Generator(device=self.model.device)
        if self.sampling.seed is not None:
            generator.manual_seed(int(self.sampling.seed))
        return DrumPerformerState(None, None, 0, generator.get_state())

    def step(self, state: DrumPerformerState, rhythm_bar: np.ndarray) -> tuple[DrumGrid, DrumPerformerState]:
        """rhythm_bar (16,) bool -> the drum bar (9, 16) and the state after it; ``state`` is not changed."""
        r = np.asarray(rhythm_bar, dtype=bool)
        if r.shape != (STEPS_PER_BAR,):
            raise ValueError(f"a bar of rhythm has {STEPS_PER_BAR} steps, got shape {r.shape}")
        generator = torch.Generator(device=self.model.device)
        generator.set_state(state.rng)
        prev_r = None if state.prev_rhythm is None else state.prev_rhythm[None]
        prev_h = None if state.prev_hits is None else state.prev_hits[None]
        h, v, o = self.model.plan_bars(r[None], prev_r, prev_h, sampling=self.sampling, generator=generator)
        new = DrumPerformerState(r.copy(), h[0], state.bars_played + 1, generator.get_state())
        return DrumGrid.from_arrays(h[0], v[0], o[0]), new

    def reset(self) -> None:
        self.state = self.initial_state()

    @property
    def bars_played(self) -> int:
        return self.state.bars_played

    def next_bar(self, rhythm_bar: np.ndarray) -> DrumGrid:
        """rhythm_bar (16,) bool -> the drum bar (9, 16); the kept state moves on by one bar."""
        grid, self.state = self.step(self.state, rhythm_bar)
        return grid

    def process_online(self, rhythm_bar: np.ndarray) -> DrumGrid:
        return self.next_bar(rhythm_bar)

    def process_offline(self, rhythm: np.ndarray) -> list[DrumGrid]:
        """Every bar of ``rhythm`` (n_bars * 16,) from a fresh state."""
        r = np.asarray(rhythm, dtype=bool)
        state = self.initial_state()
        bars = []
        for i in range(len(r) // STEPS_PER_BAR):
            grid, state = self.step(state, r[i * STEPS_PER_BAR : (i + 1) * STEPS_PER_BAR])
            bars.append(grid)
        return bars
