"""ONNX export of the live graphs (:mod:`rhythmicnet.models.step_graphs`), with a manifest per graph.

``export_graph(module, path)`` traces a :class:`~rhythmicnet.models.graphs.GraphModule` with
``torch.onnx.export(dynamo=True)`` (torch.export, then the ONNX translation and optimiser of
``onnxscript``) at opset :data:`OPSET`, writes ``<path>`` atomically and returns its manifest entry:
input/output names, shapes and dtypes, the hash of the weights it came from and the exporter.
``graph_modules(weights_dir)`` lists every graph of the shipped live models; ``rhythmicnet export`` writes
them through the export cache, with ``manifest.json``.

Why the dynamo exporter and not the TorchScript one (which traces ~20x faster): the TorchScript
exporter is deprecated in torch 2.x and slated for removal, and torch.export checks the graphs'
static-shape contract (a data-dependent branch is an export error, not a silently frozen branch).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import logging
import os
import sys
import time
import types
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from rhythmicnet.fileio import atomic_path, write_text_atomic
from rhythmicnet.models.graphs import GraphModule, weights_hash

__all__ = ["EXPORTER", "OPSET", "export_graph", "graph_file", "graph_modules", "read_graph_manifest"]

OPSET = 20  # 20: GELU is one Gelu node (opset 18 spelt it as five: Div, Erf, Add, Mul, Mul)
EXPORTER = f"torch.onnx.export(dynamo=True) torch {torch.__version__}"


def _hash_code(h: Any, code: types.CodeType) -> None:
    """Feed a code object's bytecode, names and constants (recursively) into ``h``: deterministic across
    processes, unlike ``marshal`` (whose reference flags follow refcounts)."""
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(h, const)
        elif isinstance(const, frozenset):  # set order follows string hashing, which varies per process
            h.update(repr(sorted(map(repr, const))).encode())
        else:
            h.update(repr(const).encode())


def code_hash(module: GraphModule) -> str:
    """SHA-256 (16 hex) of the code this process *runs* for ``module``: every function and class defined in
    the Python modules of its classes (the graph wrapper, the network, its layers and their helpers). A
    graph exported before the code changed is stale even when the weights are the same, and, as the
    loaded code (not the file on disk) is hashed, a file edited after import cannot file an old graph
    under the new code's key."""
    names = sorted({type(m).__module__ for m in module.modules()})
    h = hashlib.sha256()
    for name in names:
        mod = sys.modules.get(name)
        if mod is None:
            continue
        h.update(name.encode())
        for attr, value in sorted(vars(mod).items()):
            if getattr(value, "__module__", None) != name:
                continue  # imported from elsewhere: hashed with its own module, if it is a graph's
            funcs = [value] if inspect.isfunction(value) else (
                [f for _, f in sorted(vars(value).items()) if inspect.isfunction(f)] if inspect.isclass(value) else [])
            for f in funcs:
                h.update(f"{attr}.{f.__name__}".encode())
                _hash_code(h, f.__code__)
    return h.hexdigest()[:16]


def graph_key(module: GraphModule) -> str:
    """What an exported graph depends on: weights, code, opset, exporter (8 hex)."""
    parts = f"{weights_hash(module)} {code_hash(module)} {OPSET} {EXPORTER}"
    return hashlib.sha256(parts.encode()).hexdigest()[:8]


def graph_file(module: GraphModule) -> str:
    """File name of a module's graph: ``<weights name>.<graph name>.<graph_key>.onnx``. The key is in the
    name because two folders can hold weights of one name (the shipped ``drum2music`` and the
    ablation's): each keeps its own graph instead of re-exporting over the other's."""
    return f"{module.source}.{module.spec.name}.{graph_key(module)}.onnx"


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _describe(names: Iterable[str], tensors: Iterable[torch.Tensor], dynamic: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, t in zip(names, tensors, strict=True):
        axes = dynamic.get(name, {})
        shape = [axes.get(i, int(n)) for i, n in enumerate(t.shape)]
        out.append({"name": name, "shape": shape, "dtype": _dtype_name(t)})
    return out


def export_graph(module: GraphModule, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Export ``module`` to ``path`` (atomically); returns its manifest entry (also written as ``<path>.json``)."""
    path = Path(path)
    module = module.eval()
    spec = module.spec
    with torch.no_grad():
        args = tuple(a.detach() for a in module.example_inputs())
        outs = module(*args)
    # per input, in forward order; None when nothing is dynamic (a ``*context`` forward takes no per-input spec)
    dynamic = tuple(({axis: torch.export.Dim.AUTO for axis in spec.dynamic[n]} if n in spec.dynamic else None)
                    for n in spec.inputs) if spec.dynamic else None
    t0 = time.perf_counter()
    with atomic_path(path) as tmp, warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(tmp), dynamo=True, opset_version=OPSET, input_names=list(spec.inputs),
                          output_names=list(spec.outputs), dynamic_shapes=dynamic, external_data=False,
                          verbose=False)
    dyn_names = {n: dict(spec.dynamic[n]) for n in spec.dynamic}
    entry = {
        "graph": spec.name,
        "file": path.name,
        "source": module.source,
        "weights_sha256_16": weights_hash(module),
        "code_sha256_16": code_hash(module),
        "inputs": _describe(spec.inputs, args, dyn_names),
        "outputs": _describe(spec.outputs, outs, {}),
        "kept": list(spec.kept),
        "step": spec.step,
        "opset": OPSET,
        "exporter": EXPORTER,
        "export_seconds": round(time.perf_counter() - t0, 2),
    }
    write_text_atomic(path.with_suffix(".json"), json.dumps(entry, indent=1))
    return entry


def read_graph_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest entry written beside an exported graph, or None when missing or unreadable."""
    p = Path(path).with_suffix(".json")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _quiet_exporter() -> Any:
    """The dynamo exporter prints progress lines and logs warnings per graph: keep them off the terminal."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def graph_modules(weights_dir: str | os.PathLike[str] | None = None,
                  instruments: Iterable[str] = ("piano", "guitar")) -> list[GraphModule]:
    """Every graph of the shipped live models: the causal beat net (step + window), the offline beat net
    (window), the hits transformer (encoder, step, prefill), the U-Net, and Drum2Music per weights that play an
    instrument (encoder, step, memory)."""
    from rhythmicnet.models.beat_model import has_beat_model, load_beat_model
    from rhythmicnet.models.drum2music import Drum2Music, music_model_name
    from rhythmicnet.models.rhythm2drum import Rhythm2Drum
    from rhythmicnet.models.step_graphs import (
        BeatStepGraph,
        BeatWindowGraph,
        DrumUNetGraph,
        HitsEncoderGraph,
        HitsPrefillGraph,
        HitsStepGraph,
        music_graph_modules,
    )
    from rhythmicnet.models.weights import WEIGHTS_DIR

    d = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    mods: list[GraphModule] = []
    if has_beat_model("full_causal", d):
        causal = load_beat_model("full_causal", d)
        mods += [BeatStepGraph(causal, "beat_full_causal"), BeatWindowGraph(causal, "beat_full_causal")]  # type: ignore[arg-type]
    if has_beat_model("full", d):
        mods.append(BeatWindowGraph(load_beat_model("full", d), "beat_full"))  # type: ignore[arg-type]
    r2d = Rhythm2Drum.load(d)
    mods += [HitsEncoderGraph(r2d.hits_model), HitsStepGraph(r2d.hits_model), HitsPrefillGraph(r2d.hits_model),
             DrumUNetGraph(r2d.unet)]
    seen = set()
    for inst in instruments:
        name = music_model_name(d, inst)
        if name is None or name in seen:
            continue
        seen.add(name)
        mods += list(music_graph_modules(Drum2Music.load(d, inst, name=name).model, name))
    return mods
