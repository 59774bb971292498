"""Generating one Drum2Music bar through the step protocol (any backend), with the segment memory explicit.

:func:`decode_bar` is the one generation loop of the Transformer-XL: the encoder graph reads the drum
bar and the memories, then the decoder step graph is called once per token (the bar's key/value
buffers go in; the token's key, value and layer inputs come out and are written into them here), a
token is sampled after each step with the seeded ``torch.Generator`` under the REMI grammar, and the
memory graph writes the memory for the next bar.
The torch module is never called here, only :class:`~.graphs.Graph` s, so ``--backend torch`` and
``--backend onnx`` run the same loop.

:class:`MusicMemory` is the state between bars: the per-layer memories (backend handles: torch
tensors, numpy arrays or GPU ``OrtValue`` s), their validity and the number of bars generated. Nothing
else is remembered: there is no token history beyond what the memory holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from rhythmicnet.models.graphs import Graph, GraphFactory, torch_graph
from rhythmicnet.models.music_transformer import Drum2MusicModel, SamplingConfig, sample_token
from rhythmicnet.models.remi import VOCAB, RemiGrammar
from rhythmicnet.models.step_graphs import MusicEncoderGraph, music_graph_modules

__all__ = ["BarSteps", "MusicGraphs", "MusicMemory", "decode_bar", "empty_memory", "music_graphs", "score_bar"]


@dataclass(frozen=True)
class MusicMemory:
    """Segment memory between bars. Shapes: enc (Ne, 1, M, D), enc_valid (1, M) bool, dec (Nd, 1, M, D),
    dec_valid (1, M) bool, as backend values; M = max(mem_len, 1). ``bars``: bars since the reset."""

    enc: Any
    enc_valid: Any
    dec: Any
    dec_valid: Any
    bars: int = 0


class MusicGraphs(NamedTuple):
    """The three graphs of a Drum2Music model on one backend, and an empty bar-inputs buffer."""

    encoder: Graph
    step: Graph
    memory: Graph
    empty_bar: tuple[np.ndarray, np.ndarray, np.ndarray]  # bar_k, bar_v (Nd, H, Lb, dh), bar_inputs (Nd, 1, Lb, D)


def music_graphs(model: Drum2MusicModel, factory: GraphFactory = torch_graph, source: str = "drum2music"
                 ) -> MusicGraphs:
    enc, step, mem = music_graph_modules(model, source)
    return MusicGraphs(factory(enc), factory(step), factory(mem), tuple(t.numpy() for t in step.empty_bar()))  # type: ignore[arg-type]


def empty_memory(model: Drum2MusicModel) -> MusicMemory:
    """The memory of a new piece (numpy; any backend takes it)."""
    enc, enc_valid, dec, dec_valid = (t.numpy() for t in MusicEncoderGraph(model).empty_memory())
    return MusicMemory(enc, enc_valid, dec, dec_valid, 0)


class BarSteps:
    """One bar on the graphs, a token at a time: the encoder runs at construction, :meth:`feed` runs the
    decoder step for the next token and writes its key, value and layer inputs into the bar's buffers
    (on the host, in place), :meth:`finish` runs the memory graph. Shapes as in :class:`MusicGraphs`."""

    def __init__(self, graphs: MusicGraphs, drum_tokens: np.ndarray, instrument: int, memory: MusicMemory) -> None:
        self.graphs, self.memory = graphs, memory
        self.enc = graphs.encoder.run({"drum_tokens": np.ascontiguousarray(drum_tokens, dtype=np.int64),
                                       "enc_memory": memory.enc, "enc_valid": memory.enc_valid,
                                       "dec_memory": memory.dec, "dec_valid": memory.dec_valid})
        self.bar_k, self.bar_v, self.bar_inputs = (np.zeros_like(b) for b in graphs.empty_bar)
        fixed: dict[str, Any] = {name: self.enc[name] for name in graphs.step.spec.inputs if name in self.enc}
        fixed.update(instrument=np.array([instrument], dtype=np.int64), dec_valid=memory.dec_valid)
        self._step = graphs.step.prepare(fixed)
        self._varying: dict[str, Any] = {}
        for i in range(len(self.bar_k)):  # per-layer views of the buffers: the writes in feed() are seen next step
            self._varying[f"bar_k.{i}"], self._varying[f"bar_v.{i}"] = self.bar_k[i], self.bar_v[i]
        self.position = 0

    def feed(self, token: int) -> np.ndarray:
        """Feed the token at the next position; returns the logits of the one after it, (V,)."""
        p = self.position
        self._varying["token"] = np.array([token], dtype=np.int64)
        self._varying["position"] = np.array(p, dtype=np.int64)
        out = self._step(self._varying)
        self.bar_k[:, :, p] = out["k_row"][:, :, 0]
        self.bar_v[:, :, p] = out["v_row"][:, :, 0]
        self.bar_inputs[:, :, p] = out["input_row"]
        self.position = p + 1
        return np.asarray(out["logits"])[0]

    def finish(self) -> MusicMemory:
        """The memory after the bar: the tokens fed so far appended (EndBar is never fed)."""
        m = self.memory
        mem = self.graphs.memory.run({"dec_memory": m.dec, "dec_valid": m.dec_valid, "bar_inputs": self.bar_inputs,
                                      "n_tokens": np.array(self.position, dtype=np.int64)})
        return MusicMemory(self.enc["enc_memory_out"], self.enc["enc_valid_out"], mem["dec_memory_out"],
                           mem["dec_valid_out"], m.bars + 1)


def decode_bar(graphs: MusicGraphs, drum_tokens: np.ndarray, instrument: int, memory: MusicMemory,
               grammar: RemiGrammar, sampling: SamplingConfig, generator: torch.Generator
               ) -> tuple[list[int], MusicMemory]:
    """One instrument bar for one drum bar. drum_tokens (1, Le) int64 -> tokens ``[Bar, ..., EndBar]`` and
    the memory after the bar. ``generator`` advances; ``grammar`` is reset here."""
    bar = BarSteps(graphs, drum_tokens, instrument, memory)
    grammar.reset(must_play=sampling.first_bar_plays and memory.bars == 0)
    grammar.advance(VOCAB.bar)
    tokens = [VOCAB.bar]
    while True:
        logits = bar.feed(tokens[-1])
        t = sample_token(torch.from_numpy(logits), grammar.allowed(), sampling, generator)
        grammar.advance(t)
        tokens.append(t)
        if t == VOCAB.end_bar:
            return tokens, bar.finish()


def score_bar(graphs: MusicGraphs, drum_tokens: np.ndarray, instrument: int, memory: MusicMemory,
              tokens: list[int]) -> tuple[np.ndarray, MusicMemory]:
    """Teacher forcing through the same graphs: feed ``tokens`` (``Bar ...``, without ``EndBar``). Returns the
    logits after each token, (len(tokens), V), and the memory after the bar (as :func:`decode_bar` leaves it
    when it samples these tokens, then ``EndBar``). For parity checks and for timing a bar of a chosen length."""
    bar = BarSteps(graphs, drum_tokens, instrument, memory)
    logits = np.stack([bar.feed(t) for t in tokens])
    return logits, bar.finish()
