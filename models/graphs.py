"""The step protocol: how generation loops call a network, whatever runs it (torch eager or ONNX Runtime).

Every network on the live path is cut into **graphs** with fixed, named inputs and outputs: a beat
step (one frame + the streaming state in, logits + the new state out), the hits transformer's encoder
and decoder step, the U-Net, the Transformer-XL encoder, decoder step and memory update
(:mod:`~rhythmicnet.models.step_graphs` defines them as plain ``nn.Module`` s). A loop holds a
:class:`Graph` per piece and calls :meth:`Graph.run` with numpy arrays; it never touches the module.

* :class:`GraphSpec` names the inputs and outputs, in the order of the module's ``forward`` (and of the
  exported ONNX graph), and says which outputs are **kept**: state and per-bar context that only feeds
  later calls of the same graphs. A kept output comes back as an opaque *handle* in the backend's own
  memory (a torch tensor; a numpy array on ONNX Runtime's CPU provider; an ``OrtValue`` on the GPU, so
  the state never leaves the GPU between steps). Any input takes a numpy array or such a handle;
  :meth:`Graph.fetch` turns a handle into numpy.
* :class:`TorchGraph` (here) runs the module eagerly; ``export/`` adds ``OrtGraph`` (ONNX Runtime)
  and a :data:`GraphFactory` that exports a module on first use. ``models/`` never imports ``export/``:
  stages take a factory (default :func:`torch_graph`) and build their graphs through it.

Sampling stays outside the graphs, with the seeded ``torch.Generator`` samplers of each stage, so a
seed gives the same output on every backend (up to a top-k tie decided by a last-bit difference).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Graph", "GraphFactory", "GraphModule", "GraphSpec", "TorchGraph", "torch_graph", "weights_hash"]


@dataclass(frozen=True)
class GraphSpec:
    """Names of a graph's inputs and outputs, in ``forward`` order.

    ``kept``: outputs returned as backend handles (state, encoder memories). ``dynamic``: for export,
    the axes of each input that may change size between calls (``{"rhythm": {0: "batch"}}``).
    ``step``: a per-token/per-frame graph (one thread, no spinning; CUDA-graph candidate).
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    kept: tuple[str, ...] = ()
    dynamic: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    step: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.kept) - set(self.outputs)
        if unknown:
            raise ValueError(f"{self.name}: kept outputs {sorted(unknown)} are not outputs")


class GraphModule(nn.Module):
    """A network piece with a :class:`GraphSpec`: ``forward(*inputs) -> tuple of outputs`` (spec order).

    Subclasses set ``spec`` and ``source`` (the weights' name, for manifests) and implement
    :meth:`example_inputs` (tensors of the right shapes and dtypes, used to trace the export).
    """

    spec: GraphSpec
    source: str = ""

    def example_inputs(self) -> tuple[Tensor, ...]:
        raise NotImplementedError


class Graph(Protocol):
    """One runnable graph. ``run`` takes every input by name (numpy or a handle of this backend) and
    returns every output by name: numpy arrays, except the spec's kept outputs (handles)."""

    spec: GraphSpec
    #: ``torch`` or ``onnx``
    backend: str
    #: what runs it: ``torch (cpu)``, ``CPUExecutionProvider``, ``CUDAExecutionProvider``
    provider: str

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]: ...

    def prepare(self, fixed: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        """Bind inputs that stay the same for many calls (a bar's context); the returned function takes the
        remaining inputs and runs. ``fixed`` values must not change while the function is used."""
        ...

    def fetch(self, value: Any) -> np.ndarray: ...


#: Builds the runnable graph of a module (``torch_graph`` here; ``export.runtime.onnx_graphs`` there).
GraphFactory = Callable[[GraphModule], Graph]


class TorchGraph:
    """A :class:`GraphModule` run by torch eager (in ``eval`` mode, without autograd)."""

    backend = "torch"

    def __init__(self, module: GraphModule) -> None:
        self.module = module.eval()
        self.spec = module.spec
        # the module's device (a model moved to CUDA runs there; numpy inputs are moved to it)
        self.device = next(itertools.chain(module.parameters(), module.buffers()), torch.zeros(0)).device
        self.provider = f"torch ({self.device.type})"

    def _tensor(self, value: Any) -> Tensor:
        if isinstance(value, Tensor):
            return value
        return torch.from_numpy(_c_array(value)).to(self.device)

    @torch.no_grad()
    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        args = [self._tensor(inputs[name]) for name in self.spec.inputs]
        outs = self.module(*args)
        kept = set(self.spec.kept)
        return {name: (o if name in kept else o.cpu().numpy()) for name, o in zip(self.spec.outputs, outs, strict=True)}

    def prepare(self, fixed: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        bound = {name: self._tensor(value) for name, value in fixed.items()}
        return lambda varying: self.run({**bound, **varying})

    def fetch(self, value: Any) -> np.ndarray:
        return value.cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


def _c_array(value: Any) -> np.ndarray:
    """A C-contiguous array of ``value`` with its shape kept (``np.ascontiguousarray`` makes a 0-d scalar
    like a step's ``length`` 1-d)."""
    return np.asarray(value, order="C")


def torch_graph(module: GraphModule) -> Graph:
    """The default :data:`GraphFactory`: run the module with torch."""
    return TorchGraph(module)


def weights_hash(module: nn.Module) -> str:
    """SHA-256 (16 hex digits) of a module's parameters and buffers, names included: the key of an export."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        a = t.detach().cpu().contiguous()
        h.update(str((a.dtype, tuple(a.shape))).encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()[:16]
