"""Sampling hit tokens through the step protocol (any backend): the hits transformer's generation loop.

:func:`sample_hits` runs the encoder graph once per batch of windows, then the decoder step graph once
per 16th step with its key/value cache going in and out (a forced prefix, the bar already played, goes
through the prefill graph in one pass), and samples each token with the seeded
``torch.Generator`` (:func:`~.hits_transformer.sample_step`), forcing a prefix where given. It is the
loop of :meth:`~.hits_transformer.HitsTransformer.generate` (which calls it with torch graphs), so both
backends give the same tokens for the same generator state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from rhythmicnet.models.graphs import Graph, GraphFactory, torch_graph
from rhythmicnet.models.hits_transformer import HitsTransformer, sample_step
from rhythmicnet.models.step_graphs import HitsEncoderGraph, HitsPrefillGraph, HitsStepGraph

__all__ = ["HitsGraphs", "hits_graphs", "sample_hits"]


class HitsGraphs(NamedTuple):
    """The hits transformer's graphs on one backend, and what the loop needs of its config."""

    encoder: Graph
    step: Graph
    prefill: Graph
    step_module: HitsStepGraph  # for empty caches (shapes only)
    bos_id: int


def hits_graphs(model: HitsTransformer, factory: GraphFactory = torch_graph, source: str = "rhythm2drum_hits"
                ) -> HitsGraphs:
    step = HitsStepGraph(model, source)
    return HitsGraphs(factory(HitsEncoderGraph(model, source)), factory(step), factory(HitsPrefillGraph(model, source)),
                      step, model.config.bos_id)


def sample_hits(graphs: HitsGraphs, rhythm: np.ndarray, allowed: torch.Tensor, *, temperature: float,
                top_k: int | None, generator: torch.Generator | None, prefix: np.ndarray | None = None
                ) -> np.ndarray:
    """One token per step of each window. rhythm (B, S) 0/1; allowed (B, V) bool; prefix (B, P) forced
    tokens -> tokens (B, S) int64."""
    r = np.ascontiguousarray(rhythm, dtype=np.int64)
    b, s = r.shape
    enc = graphs.encoder.run({"rhythm": r})
    context = {"cross_k": enc["cross_k"], "cross_v": enc["cross_v"], "memory": enc["memory"]}
    step = graphs.step.prepare(context)
    tokens = np.zeros((b, s), dtype=np.int64)
    bos = np.full((b,), graphs.bos_id, dtype=np.int64)
    n_forced = 0 if prefix is None else prefix.shape[1]
    token = bos
    if prefix is not None and 0 < n_forced < s:
        # the forced tokens in one decoder pass; its logits are those of the first position to sample
        tokens[:, :n_forced] = prefix
        out = graphs.prefill.run({"tokens_in": np.concatenate([bos[:, None], prefix], axis=1).astype(np.int64),
                                  **context})
        start = n_forced
    else:
        self_k, self_v, length = (t.numpy() for t in graphs.step_module.empty_cache(b))
        out = step({"token": bos, "self_k": self_k, "self_v": self_v, "length": length})
        start = 0
    for t in range(start, s):
        if t > start:
            out = step({"token": token, "self_k": out["self_k_out"], "self_v": out["self_v_out"],
                        "length": out["length_out"]})
        if t < n_forced:
            assert prefix is not None
            token = np.ascontiguousarray(prefix[:, t], dtype=np.int64)
        else:
            logits = torch.from_numpy(np.asarray(out["logits"]))
            token = sample_step(logits, allowed, temperature=temperature, top_k=top_k, generator=generator).numpy()
        tokens[:, t] = token
    return tokens
