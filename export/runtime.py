"""ONNX Runtime behind the step protocol: :class:`OrtGraph` runs one exported graph, and
:class:`OnnxGraphs` is the :data:`~rhythmicnet.models.graphs.GraphFactory` the stages use
(``--backend onnx``): it finds the module's graph in a cache folder, exports it on first use (or when
the weights changed: the hash in its manifest differs), atomically and under a file lock so that
parallel processes export it once, and opens it on the best provider.

Providers: CUDA, then CPU (:func:`available_providers`). ``CUDAExecutionProvider`` is used only when
ONNX Runtime lists it *and* a session can actually be created on it (the GPU wheel lists it on
machines without a driver); the choice is reported once, on one line (:func:`provider_note`), and
ONNX Runtime's own provider warnings are silenced.

Threads are set here, never left to defaults: step graphs (a frame or a token at a time) run on one
intra-op thread without spinning, so an idle spinning pool never steals the core that pose
estimation or a second process needs; the window/encoder graphs get ``window_threads`` (default 1:
``rhythmicnet bench models`` measured no gain from a second thread on a loaded 2-core machine).

On CUDA, inputs and outputs go through I/O binding: the kept outputs (state, encoder memories) stay on
the GPU as ``OrtValue`` handles and feed the next call without a copy; only logits come back to the
host. On a GPU, each step graph is timed on the CPU and the CUDA provider when first opened, and the
faster one is kept (the small beat step may well stay on the CPU); the beat step also gets a
CUDA-graph variant (two captured sessions that ping-pong the state buffers) kept only if it is faster.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rhythmicnet.errors import OutputError, WeightsError
from rhythmicnet.models.graphs import GraphModule, GraphSpec, weights_hash

__all__ = ["OnnxGraphs", "OrtGraph", "available_providers", "default_cache_dir", "provider_note", "session_options"]

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def _ort() -> Any:
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # errors only: no provider-fallback walls of text
    return ort


def default_cache_dir() -> Path:
    """Where graphs are exported on first use: ``$RHYTHMICNET_ONNX_CACHE``, else the user cache folder."""
    env = os.environ.get("RHYTHMICNET_ONNX_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rhythmicnet" / "onnx"


#: Options of every CUDA session: full FP32 math. ONNX Runtime's CUDA provider uses TF32 tensor cores by
#: default (10-bit mantissa): on the lent H200 the beat step's state then differed from torch and from the
#: CPU graphs by 1.6e-4, beyond the parity tolerance; these graphs are small enough that TF32 buys nothing.
CUDA_OPTIONS = {"use_tf32": "0"}

_CUDA_OK: bool | None = None
_CUDA_WHY = ""  # why CUDA is not usable, for provider_note


def probe_model() -> bytes:
    """A one-node ONNX model (Identity on a float (1,)) that any ONNX Runtime since 1.16 opens: IR version 9,
    opset 17 (onnx's own default IR version runs ahead of ONNX Runtime's: onnx 1.23 writes IR 14, which
    ONNX Runtime 1.31 refuses, and the CUDA probe failed on every GPU for that reason)."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    g = helper.make_graph([node], "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    return onnx._serialize(model) if hasattr(onnx, "_serialize") else model.SerializeToString()


def _cuda_probe(ort: Any) -> bool:
    """Open :func:`probe_model` on the CUDA provider alone; True when it really runs there (ONNX Runtime falls
    back to CPU, with only a log line, when the provider's CUDA or cuDNN libraries do not load)."""
    sess = ort.InferenceSession(probe_model(), providers=[CUDA])
    return CUDA in sess.get_providers()


def cuda_usable() -> bool:
    """True when ONNX Runtime lists the CUDA provider and a session really opens on it. When the first try
    falls back to CPU, the CUDA and cuDNN libraries are preloaded with ``onnxruntime.preload_dlls`` (from
    torch's CUDA build or the nvidia-* wheels; onnxruntime-gpu >= 1.21) and the session tried again."""
    global _CUDA_OK, _CUDA_WHY
    if _CUDA_OK is None:
        ort = _ort()
        _CUDA_OK = False
        if CUDA not in ort.get_available_providers():
            _CUDA_WHY = "this onnxruntime has no CUDA provider (install onnxruntime-gpu)"
            return False
        # a CPU-only machine with onnxruntime-gpu fails here by design: no error lines from ONNX Runtime's
        # logger, nor from preload_dlls (which prints each library it could not load)
        ort.set_default_logger_severity(4)
        try:
            _CUDA_OK = _cuda_probe(ort)
            if not _CUDA_OK and hasattr(ort, "preload_dlls"):
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    ort.preload_dlls()
                _CUDA_OK = _cuda_probe(ort)
            if not _CUDA_OK:
                _CUDA_WHY = "the CUDA provider did not load: its CUDA / cuDNN libraries were not found"
        except Exception as e:  # noqa: BLE001 - any failure means: no usable CUDA
            _CUDA_OK = False
            _CUDA_WHY = f"a CUDA session failed: {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}"
        finally:
            ort.set_default_logger_severity(3)  # as _ort() leaves it
    return _CUDA_OK


def available_providers(device: str = "auto") -> list[str]:
    """Providers in order of preference for ``device`` (auto | cpu | cuda)."""
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        if not cuda_usable():
            raise WeightsError("--device cuda: ONNX Runtime cannot use CUDA on this machine")
        return [CUDA, CPU]
    return [CUDA, CPU] if cuda_usable() else [CPU]


def provider_note(device: str = "auto") -> str:
    """One line saying which provider runs the graphs (printed once by the CLI)."""
    if available_providers(device)[0] == CUDA:
        return "onnx: CUDAExecutionProvider (GPU); step graphs pick CPU or CUDA by measurement"
    return f"onnx: CPUExecutionProvider (no usable CUDA GPU{': ' + _CUDA_WHY if _CUDA_WHY else ''})"


def session_options(step: bool, threads: int = 1) -> Any:
    """Session options with explicit thread counts; step graphs: 1 thread, no spinning."""
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = 1 if step else max(1, int(threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class OrtGraph:
    """One exported graph in an ONNX Runtime session (the :class:`~rhythmicnet.models.graphs.Graph` protocol).

    On the CPU provider, handles are numpy arrays and ``run`` is ``session.run``. On CUDA, ``run`` binds
    inputs (numpy is copied to the GPU, ``OrtValue`` handles are bound as they are) and outputs (kept
    ones on the GPU, the rest on the host).
    """

    backend = "onnx"

    def __init__(self, path: str | os.PathLike[str], spec: GraphSpec, provider: str = CPU, *,
                 threads: int = 1) -> None:
        ort = _ort()
        self.path = Path(path)
        self.spec = spec
        providers: list[Any] = [provider] if provider == CPU else [(provider, CUDA_OPTIONS), CPU]
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(spec.step, threads),
                                                providers=providers)
        except Exception as e:  # noqa: BLE001 - ORT raises several types for an unreadable graph
            raise WeightsError(f"{self.path}: cannot load the ONNX graph ({str(e).splitlines()[0][:200]})") from e
        self.provider = self.session.get_providers()[0]
        self.on_gpu = self.provider == CUDA
        self._kept = set(spec.kept)
        names = [i.name for i in self.session.get_inputs()]
        if names != list(spec.inputs):
            raise WeightsError(f"{self.path}: graph inputs {names} do not match {list(spec.inputs)}")

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if not self.on_gpu:
            # a handle from a graph on the GPU (when this step graph measured faster on the CPU) comes over
            feeds = {n: _host(inputs[n]) for n in self.spec.inputs}
            outs = self.session.run(list(self.spec.outputs), feeds)
            return dict(zip(self.spec.outputs, outs, strict=True))
        ort = _ort()
        binding = self.session.io_binding()
        for name in self.spec.inputs:
            value = inputs[name]
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, _c_array(value))
        for name in self.spec.outputs:
            binding.bind_output(name, "cuda" if name in self._kept else "cpu")
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return {name: (v if name in self._kept else v.numpy()) for name, v in zip(self.spec.outputs, values,
                                                                                   strict=True)}

    def prepare(self, fixed: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        """An I/O binding with ``fixed`` bound once: each call binds only the varying inputs (binding all
        53 inputs of a Transformer-XL step anew cost ~0.4 ms per token)."""
        ort = _ort()
        binding = self.session.io_binding()
        device = "cuda" if self.on_gpu else "cpu"
        keep_alive = []
        for name, value in fixed.items():
            if not self.on_gpu:
                value = _host(value)
            if not isinstance(value, ort.OrtValue):
                value = ort.OrtValue.ortvalue_from_numpy(_c_array(value), device, 0)
            keep_alive.append(value)
            binding.bind_ortvalue_input(name, value)
        outputs = self.spec.outputs
        kept = self._kept if self.on_gpu else set()

        def run(varying: Mapping[str, Any]) -> dict[str, Any]:
            for name, value in varying.items():
                if isinstance(value, ort.OrtValue) and (self.on_gpu or value.device_name() == "cpu"):
                    binding.bind_ortvalue_input(name, value)
                else:
                    binding.bind_cpu_input(name, _c_array(_host(value)))
            # outputs bound anew each run: ORT then allocates fresh buffers, so an output fed back as the
            # next input (the state) is never overwritten while it is read
            for name in outputs:
                binding.bind_output(name, "cuda" if (self.on_gpu and name in self._kept) else "cpu")
            self.session.run_with_iobinding(binding)
            values = binding.get_outputs()
            return {n: (v if n in kept else v.numpy()) for n, v in zip(outputs, values, strict=True)}

        run.keep_alive = keep_alive  # type: ignore[attr-defined]
        return run

    def fetch(self, value: Any) -> np.ndarray:
        return value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else np.asarray(value)


def _c_array(value: Any) -> np.ndarray:
    """A C-contiguous array with its shape kept (``np.ascontiguousarray`` makes a 0-d scalar 1-d)."""
    return np.asarray(value, order="C")


def _host(value: Any) -> Any:
    """A numpy array for ``value`` (an ``OrtValue`` on any device is copied to the host)."""
    return value.numpy() if hasattr(value, "device_name") else value


class CudaGraphStep:
    """A step graph under CUDA-graph capture: two sessions, each captured once with fixed buffers, that
    ping-pong the state (session A reads buffers 0 and writes buffers 1, B the reverse). Only for graphs
    whose non-state inputs are small host arrays (the beat step). A state handle stays valid until the
    step after next (live loops only ever pass the latest state back)."""

    backend = "onnx"

    def __init__(self, path: Path, spec: GraphSpec, example: Mapping[str, np.ndarray],
                 example_outputs: Mapping[str, np.ndarray]) -> None:
        ort = _ort()
        self.spec = spec
        self.provider = f"{CUDA} (CUDA graph)"
        self.pairs = {n: f"{n}_out" for n in spec.inputs if f"{n}_out" in spec.outputs}
        so = session_options(True)
        opts = [{"enable_cuda_graph": "1", **CUDA_OPTIONS}]
        self.sessions = [ort.InferenceSession(str(path), so, providers=[(CUDA, opts[0])]) for _ in range(2)]

        def buf(a: np.ndarray) -> Any:
            return ort.OrtValue.ortvalue_from_numpy(_c_array(a), "cuda", 0)

        self.inputs = {n: buf(example[n]) for n in spec.inputs if n not in self.pairs}
        self.state = [{n: buf(example[n]) for n in self.pairs}, {n: buf(example[n]) for n in self.pairs}]
        # every output at a fixed address: a captured graph replays with the same pointers
        self.fetched = {n: ort.OrtValue.ortvalue_from_numpy(np.zeros_like(o), "cuda", 0)
                        for n, o in example_outputs.items() if n not in self.pairs.values()}
        self.bindings = []
        for i, sess in enumerate(self.sessions):
            b = sess.io_binding()
            for n, v in self.inputs.items():
                b.bind_ortvalue_input(n, v)
            for n, out in self.pairs.items():
                b.bind_ortvalue_input(n, self.state[i][n])
                b.bind_ortvalue_output(out, self.state[1 - i][n])
            for n, v in self.fetched.items():
                b.bind_ortvalue_output(n, v)
            self.bindings.append(b)
        self.turn = 0

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        i = self.turn
        for n, v in self.inputs.items():
            v.update_inplace(_c_array(inputs[n]))
        for n in self.pairs:
            given = inputs[n]
            if given is not self.state[i][n]:  # a fresh state (numpy) goes into this turn's buffer
                self.state[i][n].update_inplace(_c_array(self.fetch(given)))
        self.sessions[i].run_with_iobinding(self.bindings[i])
        self.turn = 1 - i
        out: dict[str, Any] = {n: v.numpy() for n, v in self.fetched.items()}
        out.update({o: self.state[1 - i][n] for n, o in self.pairs.items()})
        return out

    def prepare(self, fixed: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        return lambda varying: self.run({**fixed, **varying})

    def fetch(self, value: Any) -> np.ndarray:
        return value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else np.asarray(value)


def _time_graph(graph: Any, feeds: Mapping[str, Any], n: int = 50) -> float:
    """Median seconds per run over ``n`` runs after 5 warm-up runs."""
    for _ in range(5):
        graph.run(feeds)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        graph.run(feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class OnnxGraphs:
    """The ONNX :data:`~rhythmicnet.models.graphs.GraphFactory`: ``OnnxGraphs()(module) -> OrtGraph``.

    ``cache_dir``: where graphs live (default :func:`default_cache_dir`); a graph whose manifest names
    other weights (hash) or another exporter opset is exported again. ``device``: auto | cpu | cuda.
    ``window_threads``: intra-op threads of the non-step graphs. ``choices`` records, per graph, the
    provider used (and the timings behind a choice made by measurement).
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, device: str = "auto", *,
                 window_threads: int = 1, measure: bool = True, announce: bool = False) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.device = device
        self.providers = available_providers(device)
        self.window_threads = window_threads
        self.measure = measure
        self.announce = announce  # one stderr line per graph exported on first use
        self.choices: dict[str, dict[str, Any]] = {}
        self.exported: list[str] = []

    def path_for(self, module: GraphModule) -> Path:
        from rhythmicnet.export.onnx_export import graph_file

        return self.cache_dir / graph_file(module)

    def ensure_exported(self, module: GraphModule) -> Path:
        """The module's graph in the cache, exported now if missing or stale (under a file lock)."""
        from rhythmicnet.export.onnx_export import OPSET, export_graph, read_graph_manifest

        path = self.path_for(module)
        want = weights_hash(module)

        def fresh() -> bool:
            m = read_graph_manifest(path)
            return (path.is_file() and m is not None and m.get("weights_sha256_16") == want
                    and m.get("opset") == OPSET and m.get("inputs") is not None
                    and [i["name"] for i in m["inputs"]] == list(module.spec.inputs))

        if not fresh():
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"{self.cache_dir}: cannot use as the ONNX cache folder ({e.strerror or e}); "
                                  "set RHYTHMICNET_ONNX_CACHE to a writable folder") from e
            with _file_lock(path.with_suffix(".lock")):
                if not fresh():  # another process may have exported it while we waited
                    log.info("exporting %s", path.name)
                    if self.announce:
                        print(f"rhythmicnet: exporting {path.name} to ONNX (first use; kept in {self.cache_dir})",
                              file=sys.stderr, flush=True)
                    export_graph(module, path)
                    self.exported.append(path.name)
        return path

    def __call__(self, module: GraphModule) -> Any:
        path = self.ensure_exported(module)
        spec = module.spec
        key = path.name
        if self.providers[0] != CUDA:
            g = OrtGraph(path, spec, CPU, threads=self.window_threads)
            self.choices[key] = {"provider": g.provider}
            return g
        if not (spec.step and self.measure):
            g = OrtGraph(path, spec, CUDA, threads=self.window_threads)
            self.choices[key] = {"provider": g.provider}
            return g
        # A step graph on a GPU machine: measure and keep the faster provider.
        import torch

        with torch.no_grad():
            example = module.example_inputs()
            feeds = {n: a.detach().cpu().numpy() for n, a in zip(spec.inputs, example, strict=True)}
            outs = {n: o.cpu().numpy() for n, o in zip(spec.outputs, module(*example), strict=True)}
        candidates: dict[str, Any] = {CPU: OrtGraph(path, spec, CPU), CUDA: OrtGraph(path, spec, CUDA)}
        if spec.name == "beat_step":  # its only non-state input is one small host array
            with contextlib.suppress(Exception):  # capture can fail on some graphs/drivers: keep the others
                candidates["cuda_graph"] = CudaGraphStep(path, spec, feeds, outs)
        timings = {}
        for name, g in candidates.items():
            try:
                timings[name] = _time_graph(g, feeds)
            except Exception:  # noqa: BLE001 - a candidate that cannot run is not chosen
                continue
        best = min(timings, key=lambda k: timings[k])
        self.choices[key] = {"provider": candidates[best].provider,
                             "median_ms": {k: round(v * 1e3, 4) for k, v in timings.items()}}
        return candidates[best]
