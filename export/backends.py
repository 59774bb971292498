"""Choosing the backend that runs the graphs: ``--backend onnx`` (default) or ``--backend torch``.

:func:`graph_factory` returns the :data:`~rhythmicnet.models.graphs.GraphFactory` the stages take
(one :class:`~.runtime.OnnxGraphs` per process and device, so every stage shares its export cache and
provider report); :func:`configure_threads` sets torch's thread count in code (never left to the
default); :func:`backend_record` is what reports and benchmarks write about the backend.
"""

from __future__ import annotations

from typing import Any

import torch

from rhythmicnet.models.graphs import GraphFactory, torch_graph

__all__ = ["BACKENDS", "DEVICES", "backend_record", "configure_threads", "graph_factory"]

BACKENDS = ("onnx", "torch")
DEVICES = ("auto", "cpu", "cuda")

#: torch threads for the commands that decode step by step. Measured on the 2-core development machine
#: with another job running: ``rhythmicnet music`` took 184.6 s with torch's default 2 threads and
#: 16.1 s with 1 (each of ~500 small ops per step waited for a descheduled partner thread).
TORCH_THREADS = 1

_FACTORIES: dict[tuple[str, str], Any] = {}


def configure_threads(threads: int = TORCH_THREADS) -> None:
    """Set torch's intra-op threads (ONNX Runtime's are set per session in :mod:`.runtime`)."""
    torch.set_num_threads(max(1, int(threads)))


def graph_factory(backend: str = "onnx", device: str = "auto") -> GraphFactory:
    """The factory for ``backend`` (onnx | torch) on ``device`` (auto | cpu | cuda), shared per process."""
    if backend not in BACKENDS:
        raise ValueError(f"backend is one of {BACKENDS}, got {backend!r}")
    if device not in DEVICES:
        raise ValueError(f"device is one of {DEVICES}, got {device!r}")
    if backend == "torch":
        return torch_graph
    key = (backend, device)
    if key not in _FACTORIES:
        from rhythmicnet.export.runtime import OnnxGraphs

        _FACTORIES[key] = OnnxGraphs(device=device)
    return _FACTORIES[key]  # type: ignore[no-any-return]


def backend_note(backend: str = "onnx", device: str = "auto") -> str:
    """One line for the terminal: what runs the models."""
    if backend == "torch":
        return f"backend: torch eager ({torch.get_num_threads()} thread(s))"
    from rhythmicnet.export.runtime import provider_note

    return provider_note(device)


def backend_record(factory: GraphFactory) -> dict[str, Any]:
    """What a report records about the backend: name, and per ONNX graph the provider that ran it."""
    from rhythmicnet.export.runtime import OnnxGraphs

    if isinstance(factory, OnnxGraphs):
        return {"name": "onnx", "providers": factory.providers, "graphs": dict(factory.choices),
                "cache_dir": str(factory.cache_dir), "exported_now": list(factory.exported)}
    return {"name": "torch", "threads": torch.get_num_threads()}
