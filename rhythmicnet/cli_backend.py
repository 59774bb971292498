"""``--backend`` / ``--device`` for every command that runs the networks, and the ``export`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_REPORTED: set[tuple[str, str]] = set()


def add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["onnx", "torch"], default="onnx",
                   help="what runs the networks: ONNX Runtime (exported graphs, exported on first use into the user "
                        "cache folder; CUDA when a GPU is usable, else CPU) or torch eager (default: onnx)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="ONNX Runtime provider: auto = CUDA when usable, else CPU (default: auto)")


def backend_from_args(args: argparse.Namespace) -> Any:
    """The graph factory for ``args.backend``/``args.device``; says once, on stderr, which provider runs it
    (unless --quiet). Sets torch's threads too (step-wise decoding runs on one thread)."""
    from rhythmicnet.export.backends import backend_note, configure_threads, graph_factory

    configure_threads()
    backend, device = getattr(args, "backend", "onnx"), getattr(args, "device", "auto")
    factory = graph_factory(backend, device)
    if hasattr(factory, "announce"):
        factory.announce = not getattr(args, "quiet", False)
    if not getattr(args, "quiet", False) and (backend, device) not in _REPORTED:
        _REPORTED.add((backend, device))
        print(f"rhythmicnet: {backend_note(backend, device)}", file=sys.stderr)
    return factory


def add_export_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export the live models as ONNX graphs (step graphs with explicit state) with a manifest",
        description="Export every network of the live path to ONNX (opset 18, torch.onnx dynamo exporter): the causal "
                    "beat net (one-frame step with its state, and the full window), the offline beat net (window), "
                    "the hits transformer (encoder + decoder step with its key/value cache), the U-Net (2-bar "
                    "window), and Drum2Music's Transformer-XL per instrument model (encoder, decoder step, memory "
                    "update). Writes <weights>.<graph>.onnx files and manifest.json (input/output names, shapes, "
                    "dtypes, the weights hash, the exporter). Without --out it fills the cache that --backend onnx "
                    "reads, so later runs start at once.")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder to write the graphs and manifest.json into (default: the user cache folder, "
                        "$RHYTHMICNET_ONNX_CACHE or ~/.cache/rhythmicnet/onnx)")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="folder with the trained weights (default: the shipped models/weights)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    import json
    import time

    from rhythmicnet.export.backends import configure_threads
    from rhythmicnet.export.onnx_export import EXPORTER, OPSET, graph_modules, read_graph_manifest
    from rhythmicnet.export.runtime import OnnxGraphs, default_cache_dir
    from rhythmicnet.fileio import ensure_output_dir, write_text_atomic

    configure_threads()
    out = ensure_output_dir(args.out if args.out is not None else default_cache_dir())
    t0 = time.perf_counter()
    modules = graph_modules(args.weights)
    cache = OnnxGraphs(out, device="cpu", measure=False)
    entries = []
    for m in modules:
        path = cache.ensure_exported(m)  # skips graphs already there with the same weights
        entry = read_graph_manifest(path) or {}
        entries.append(entry)
        if not args.quiet:
            state = "exported" if path.name in cache.exported else "up to date"
            print(f"{path.name}: {state}", file=sys.stderr)
    write_text_atomic(out / "manifest.json", json.dumps({"exporter": EXPORTER, "opset": OPSET,
                                                         "onnx_graphs": entries}, indent=1) + "\n")
    if not args.quiet:
        print(f"{len(entries)} graphs in {out} ({len(cache.exported)} exported now, "
              f"{time.perf_counter() - t0:.0f} s); manifest {out / 'manifest.json'}")
    return 0
