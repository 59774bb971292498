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

__all__ = ["MusicGraphs", "MusicMemory", "decode_bar", "empty_memory", "music_graphs"]


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
    empty_bar: tuple[np.ndarray, np.ndarray, np.ndarray]  # bar_k, bar_v (Nd, 1, H, Lb, dh), bar_inputs (Nd, 1, Lb, D)


def music_graphs(model: Drum2MusicModel, factory: GraphFactory = torch_graph, source: str = "drum2music"
                 ) -> MusicGraphs:
    enc, step, mem = music_graph_modules(model, source)
    return MusicGraphs(factory(enc), factory(step), factory(mem), tuple(t.numpy() for t in step.empty_bar()))  # type: ignore[arg-type]


def empty_memory(model: Drum2MusicModel) -> MusicMemory:
    """The memory of a new piece (numpy; any backend takes it)."""
    enc, enc_valid, dec, dec_valid = (t.numpy() for t in MusicEncoderGraph(model).empty_memory())
    return MusicMemory(enc, enc_valid, dec, dec_valid, 0)


def decode_bar(graphs: MusicGraphs, drum_tokens: np.ndarray, instrument: int, memory: MusicMemory,
               grammar: RemiGrammar, sampling: SamplingConfig, generator: torch.Generator
               ) -> tuple[list[int], MusicMemory]:
    """One instrument bar for one drum bar. drum_tokens (1, Le) int64 -> tokens ``[Bar, ..., EndBar]`` and
    the memory after the bar. ``generator`` advances; ``grammar`` is reset here."""
    enc = graphs.encoder.run({"drum_tokens": np.ascontiguousarray(drum_tokens, dtype=np.int64),
                              "enc_memory": memory.enc, "enc_valid": memory.enc_valid,
                              "dec_memory": memory.dec, "dec_valid": memory.dec_valid})
    grammar.reset(must_play=sampling.first_bar_plays and memory.bars == 0)
    grammar.advance(VOCAB.bar)
    # The bar's buffers live on the host and are written in place, one row per token (see MusicStepGraph).
    bar_k, bar_v, bar_inputs = (np.zeros_like(b) for b in graphs.empty_bar)
    fixed: dict[str, Any] = {name: enc[name] for name in graphs.step.spec.inputs if name in enc}
    fixed.update(instrument=np.array([instrument], dtype=np.int64), dec_valid=memory.dec_valid)
    step = graphs.step.prepare(fixed)
    varying: dict[str, Any] = {}
    for i in range(len(bar_k)):  # per-layer views of the buffers, rebound each step after the writes below
        varying[f"bar_k.{i}"], varying[f"bar_v.{i}"] = bar_k[i], bar_v[i]
    tokens = [VOCAB.bar]
    position = 0
    while True:
        varying["token"] = np.array([tokens[-1]], dtype=np.int64)
        varying["position"] = np.array(position, dtype=np.int64)
        out = step(varying)
        bar_k[:, 0, :, position] = out["k_row"][:, :, 0]
        bar_v[:, 0, :, position] = out["v_row"][:, :, 0]
        bar_inputs[:, :, position] = out["input_row"]
        t = sample_token(torch.from_numpy(np.asarray(out["logits"])[0]), grammar.allowed(), sampling, generator)
        grammar.advance(t)
        tokens.append(t)
        if t == VOCAB.end_bar:
            break
        position += 1
    # EndBar is never fed: the memory holds Bar .. the last note (position + 1 tokens).
    mem = graphs.memory.run({"dec_memory": memory.dec, "dec_valid": memory.dec_valid,
                             "bar_inputs": bar_inputs, "n_tokens": np.array(position + 1, dtype=np.int64)})
    return tokens, MusicMemory(enc["enc_memory_out"], enc["enc_valid_out"], mem["dec_memory_out"],
                               mem["dec_valid_out"], memory.bars + 1)


