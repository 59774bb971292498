"""The export cache of ``--backend onnx`` (export/runtime.py ``OnnxGraphs``): first use exports with a manifest,
later uses do not, new weights give a new file, a corrupt graph is a one-line WeightsError, parallel processes
export once under the file lock, and no temporary files stay behind. Slow: ``rhythmicnet export`` of every
shipped model, each graph checked against torch.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rhythmicnet.errors import WeightsError
from rhythmicnet.export.onnx_export import EXPORTER, OPSET, code_hash, graph_file, read_graph_manifest
from rhythmicnet.export.runtime import CPU, OnnxGraphs, OrtGraph
from rhythmicnet.models.graphs import GraphModule, TorchGraph, weights_hash
from rhythmicnet.models.music_transformer import Drum2MusicModel
from rhythmicnet.models.step_graphs import MusicMemoryGraph
from tests.export.conftest import TOL, assert_outputs_match, random_inputs


def cache_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def assert_no_temp_files(d: Path) -> None:
    left = [n for n in cache_files(d) if ".part" in n or n.startswith(".")]
    assert not left, f"temporary files left in {d}: {left}"


def feeds_of(module: GraphModule, seed: int = 0) -> dict[str, np.ndarray]:
    """The module's example inputs (some are random: seeded here)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return {n: t.detach().numpy() for n, t in zip(module.spec.inputs, module.example_inputs(), strict=True)}


def check_runs_like_torch(module: GraphModule, graph: Any) -> None:
    feeds = feeds_of(module)
    assert_outputs_match((TorchGraph(module), graph), TorchGraph(module).run(feeds), graph.run(feeds))


@pytest.fixture()
def module(music_model: Drum2MusicModel) -> MusicMemoryGraph:
    """The cheapest graph to export (~2 s), under its own source name so its files are this test's."""
    return MusicMemoryGraph(music_model, "cachetest")


@pytest.fixture()
def exported(module: MusicMemoryGraph, tmp_path: Path) -> tuple[Path, Path]:
    """``module`` exported into a fresh cache folder: (cache folder, graph path)."""
    cache = OnnxGraphs(tmp_path / "cache", device="cpu")
    g = cache(module)
    assert cache.exported == [graph_file(module)]
    return tmp_path / "cache", g.path


# ---------------------------------------------------------------------------------- first and second use
def test_first_use_exports_with_a_manifest_beside_the_graph(module: MusicMemoryGraph, tmp_path: Path) -> None:
    d = tmp_path / "cache"  # not there yet: created on first use
    cache = OnnxGraphs(d, device="cpu")
    assert cache.providers == [CPU]
    g = cache(module)
    name = graph_file(module)
    assert g.path == d / name and cache.exported == [name]
    assert name.startswith("cachetest.music_memory.") and name.endswith(".onnx")
    stem = name.removesuffix(".onnx")
    assert cache_files(d) == [f"{stem}.json", f"{stem}.lock", name]
    assert_no_temp_files(d)
    m = read_graph_manifest(g.path)
    assert m is not None
    assert (m["graph"], m["file"], m["source"]) == ("music_memory", name, "cachetest")
    assert m["weights_sha256_16"] == weights_hash(module) and m["code_sha256_16"] == code_hash(module)
    assert (m["opset"], m["exporter"]) == (OPSET, EXPORTER) and "dynamo=True" in m["exporter"]
    assert m["kept"] == list(module.spec.kept) and m["step"] is False
    # names, shapes and dtypes of the inputs and outputs, as torch sees them and as the graph declares them
    feeds = feeds_of(module)
    assert [i["name"] for i in m["inputs"]] == list(module.spec.inputs)
    assert [o["name"] for o in m["outputs"]] == list(module.spec.outputs)
    for i in m["inputs"]:
        assert i["shape"] == list(feeds[i["name"]].shape) and i["dtype"] == str(feeds[i["name"]].dtype)
    session_inputs = {i.name: i for i in g.session.get_inputs()}
    for i in m["inputs"]:
        assert session_inputs[i["name"]].shape == i["shape"]
    ref = TorchGraph(module).run(feeds)
    for o in m["outputs"]:
        assert o["shape"] == list(np.asarray(TorchGraph(module).fetch(ref[o["name"]])).shape)
    dtypes = {"float32": "tensor(float)", "bool": "tensor(bool)", "int64": "tensor(int64)"}
    for o, so in zip(m["outputs"], g.session.get_outputs(), strict=True):
        assert so.name == o["name"] and so.type == dtypes[o["dtype"]]
    assert_outputs_match((TorchGraph(module), g), ref, g.run(feeds))


def test_manifest_names_dynamic_axes(graph_pairs: Any) -> None:
    """A dynamic axis is named in the manifest (``batch``, ``frames``), the rest are numbers."""
    for kind, name, axis, label in [("drum_unet", "hits", 0, "batch"), ("beat_window", "features", 1, "frames"),
                                    ("hits_step", "self_k", 1, "batch")]:
        m = read_graph_manifest(graph_pairs[kind].onnx.path)
        assert m is not None
        shape = next(i["shape"] for i in m["inputs"] if i["name"] == name)
        assert shape[axis] == label and all(isinstance(n, int) for i, n in enumerate(shape) if i != axis), kind


def test_second_use_does_not_export_again(module: MusicMemoryGraph, exported: tuple[Path, Path]) -> None:
    d, path = exported
    before = {n: (d / n).stat().st_mtime_ns for n in cache_files(d)}
    time.sleep(0.05)
    again = OnnxGraphs(d, device="cpu")
    g = again(module)
    assert again.exported == [] and g.path == path
    assert {n: (d / n).stat().st_mtime_ns for n in cache_files(d)} == before
    check_runs_like_torch(module, g)


def test_new_weights_give_a_new_file_and_a_fresh_export(module: MusicMemoryGraph, music_model: Drum2MusicModel,
                                                        exported: tuple[Path, Path]) -> None:
    d, old_path = exported
    changed = copy.deepcopy(music_model)
    with torch.no_grad():
        changed.dec_norm.weight[0] += 0.5  # one parameter the memory graph does not even read
    other = MusicMemoryGraph(changed, "cachetest")
    assert weights_hash(other) != weights_hash(module)
    cache = OnnxGraphs(d, device="cpu")
    g = cache(other)
    assert g.path != old_path and cache.exported == [g.path.name]
    assert old_path.is_file()  # the other weights' graph stays
    m = read_graph_manifest(g.path)
    assert m is not None and m["weights_sha256_16"] == weights_hash(other)
    assert len([n for n in cache_files(d) if n.endswith(".onnx")]) == 2
    assert_no_temp_files(d)
    check_runs_like_torch(other, g)


def test_stale_or_missing_manifest_exports_again(module: MusicMemoryGraph, exported: tuple[Path, Path]) -> None:
    d, path = exported
    manifest = path.with_suffix(".json")
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "weights_sha256_16": "0" * 16}))
    cache = OnnxGraphs(d, device="cpu")
    cache(module)
    assert cache.exported == [path.name]
    assert json.loads(manifest.read_text())["weights_sha256_16"] == weights_hash(module)
    manifest.unlink()
    cache = OnnxGraphs(d, device="cpu")
    g = cache(module)
    assert cache.exported == [path.name] and manifest.is_file()
    check_runs_like_torch(module, g)
    assert_no_temp_files(d)


# ---------------------------------------------------------------------------------- corrupt graphs
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_graph_with_a_matching_manifest_is_a_one_line_weights_error(
        module: MusicMemoryGraph, exported: tuple[Path, Path], damage: str) -> None:
    d, path = exported
    data = path.read_bytes()
    path.write_bytes({"garbage": b"this is not an onnx graph\n" * 40, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])
    cache = OnnxGraphs(d, device="cpu")
    with pytest.raises(WeightsError) as info:
        cache(module)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and len(msg) < 400, msg
    assert cache.exported == []  # the manifest still matches: the code reports the file, it does not re-export


def test_corrupt_cached_graph_through_the_cli(tiny_weights: Path, onnx_cache: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, fresh_factories: None,
                                              capsys: pytest.CaptureFixture, ort_factory: Any,
                                              music_model: Drum2MusicModel) -> None:
    """``rhythmicnet music --backend onnx`` with a damaged graph in the cache: exit 2, one line naming it."""
    from rhythmicnet.cli import main
    from rhythmicnet.models.music_decoding import music_graphs
    from tests.export.test_render_backends import write_drum_midi

    music_graphs(music_model, ort_factory)  # the tiny model's graphs in the session cache (usually there already)
    cache = tmp_path / "cache"
    cache.mkdir()
    for p in onnx_cache.glob("drum2music.music_*"):
        (cache / p.name).write_bytes(p.read_bytes())
    step = next(cache.glob("drum2music.music_step.*.onnx"))
    step.write_bytes(b"\x00" * 100)
    monkeypatch.setenv("RHYTHMICNET_ONNX_CACHE", str(cache))
    drums = write_drum_midi(tmp_path / "drums.mid")
    capsys.readouterr()
    rc = main(["music", str(drums), "-o", str(tmp_path / "out.mid"), "--weights", str(tiny_weights), "--backend",
               "onnx", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("rhythmicnet: error: ") and str(step) in err[0], err
    assert not (tmp_path / "out.mid").exists()


# ---------------------------------------------------------------------------------- code changes, bad folders
EDITED = textwrap.dedent("""
    import torch
    from rhythmicnet.models.graphs import GraphModule, GraphSpec

    class Scale(GraphModule):
        def __init__(self):
            super().__init__()
            self.source = "edited"
            self.spec = GraphSpec("scale", ("x",), ("y",))

        def forward(self, x):
            return (x * {factor},)

        def example_inputs(self):
            return (torch.ones(2, 3),)
""")


def _load_module(name: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, mod)  # inspect.getsourcefile finds the class's file through it
    spec.loader.exec_module(mod)
    return mod


def test_a_graph_is_filed_under_the_code_it_was_built_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache key holds a hash of the graph's source files so that a graph exported before the code changed
    is stale. A process that imported the code, then exports after the file changed on disk (an edit or a
    package upgrade while it runs), must not file its graph under the new code's key.

    Fails at present: ``code_hash`` (export/onnx_export.py) reads the source files when the key is computed,
    not the code the process runs, and ``OnnxGraphs.ensure_exported`` (export/runtime.py) trusts the file name;
    so a later process with the new code is served the old graph (here y = 2x where its module computes 30x).
    Seen for real in this session: an edit of models/step_graphs.py during a ``rhythmicnet music --backend
    onnx`` run left a music_step graph with the old output shapes under the new key, and every later run
    crashed in ``BarSteps.feed`` (ValueError: could not broadcast (8,1,1,128) into (8,1,128))."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    src = tmp_path / "edited_graph.py"
    src.write_text(EDITED.format(factor=2))
    old = _load_module("edited_graph_old", src, monkeypatch).Scale()
    src.write_text(EDITED.format(factor=30))  # the file changes while the first process runs
    cache = tmp_path / "cache"
    first = OnnxGraphs(cache, device="cpu")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(first(old).run({"x": x})["y"], 2 * x)  # the graph is the code that ran
    new = _load_module("edited_graph_new", src, monkeypatch).Scale()  # a later process, with the new code
    second = OnnxGraphs(cache, device="cpu")
    got = second(new).run({"x": x})["y"]
    assert np.allclose(got, 30 * x), (f"a process running y = 30x got the graph of y = {got[0, 1]:g}x from the cache "
                                      f"({second.path_for(new).name}, exported now: {second.exported})")


def test_an_unusable_cache_folder_is_a_one_line_error(tiny_weights: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, fresh_factories: None,
                                                      capsys: pytest.CaptureFixture) -> None:
    """``$RHYTHMICNET_ONNX_CACHE`` where no folder can be made (under a regular file): ``rhythmicnet music
    --backend onnx`` exits 2 with one line naming the folder, like any output folder it cannot write.

    Fails at present: ``_file_lock`` (export/runtime.py) calls ``path.parent.mkdir`` unguarded, so the command
    dies with a raw ``NotADirectoryError`` traceback."""
    from rhythmicnet.cli import main
    from tests.export.test_render_backends import write_drum_midi

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RHYTHMICNET_ONNX_CACHE", str(blocker / "cache"))
    drums = write_drum_midi(tmp_path / "drums.mid")
    capsys.readouterr()
    rc = main(["music", str(drums), "-o", str(tmp_path / "out.mid"), "--weights", str(tiny_weights), "--backend",
               "onnx", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(blocker) in err[0], err
    assert not (tmp_path / "out.mid").exists()


# ---------------------------------------------------------------------------------- two processes
CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from rhythmicnet.export.runtime import OnnxGraphs
    from rhythmicnet.models.music_transformer import Drum2MusicConfig, Drum2MusicModel
    from rhythmicnet.models.step_graphs import MusicMemoryGraph

    weights, cache, me, other = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    model = Drum2MusicModel(Drum2MusicConfig.from_dict(json.loads((weights / "drum2music.json").read_text())["config"]))
    model.load_state_dict(torch.load(weights / "drum2music.pt"))
    module = MusicMemoryGraph(model.eval(), "locktest")
    torch.manual_seed(0)  # the example inputs are partly random: the same in both processes and the test
    with torch.no_grad():
        example = [t.numpy() for t in module.example_inputs()]
    me.touch()  # both processes ready (imports done): start together
    deadline = time.time() + 120
    while not other.exists() and time.time() < deadline:
        time.sleep(0.005)
    t0 = time.time()
    factory = OnnxGraphs(cache, device="cpu")
    graph = factory(module)
    out = graph.run(dict(zip(module.spec.inputs, example)))
    print(json.dumps({"exported": factory.exported, "start": t0, "file": graph.path.name,
                      "dec_memory_out": out["dec_memory_out"].tolist()}))
""")


def test_two_processes_on_an_empty_cache_export_once(tiny_weights: Path, tmp_path: Path,
                                                     music_model: Drum2MusicModel) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cache = tmp_path / "cache"
    ready = [tmp_path / "ready0", tmp_path / "ready1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, str(script), str(tiny_weights), str(cache), str(ready[i]),
                               str(ready[1 - i])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert abs(results[0]["start"] - results[1]["start"]) < 1.0  # they really did start together
    assert sorted(len(r["exported"]) for r in results) == [0, 1]  # one exported, the other waited on the lock
    assert results[0]["file"] == results[1]["file"]
    np.testing.assert_array_equal(results[0]["dec_memory_out"], results[1]["dec_memory_out"])
    module = MusicMemoryGraph(music_model, "locktest")
    ref = TorchGraph(module).run(feeds_of(module))
    assert np.abs(np.asarray(results[0]["dec_memory_out"]) - ref["dec_memory_out"].numpy()).max() <= TOL
    assert len([n for n in cache_files(cache) if n.endswith(".onnx")]) == 1
    assert_no_temp_files(cache)


# ---------------------------------------------------------------------------------- rhythmicnet export
def test_export_command_help(capsys: pytest.CaptureFixture) -> None:
    from rhythmicnet.cli import main

    with pytest.raises(SystemExit) as info:
        main(["export", "--out", "somewhere", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--out DIR" in out and "manifest.json" in out and "--weights" in out
    assert not Path("somewhere").exists()


@pytest.mark.slow
def test_export_command_writes_every_shipped_graph(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``rhythmicnet export --out DIR``: 13 graphs (causal beat step + window, offline beat window, hits encoder,
    step + prefill, U-Net, and encoder/step/memory for drum2music_piano and the guitar's drum2music) with manifest.json;
    each graph runs like its torch module; a second run exports nothing."""
    from rhythmicnet.cli import main
    from rhythmicnet.export.onnx_export import graph_modules

    out = tmp_path / "graphs"
    assert main(["export", "--out", str(out), "-q"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["opset"], manifest["exporter"]) == (OPSET, EXPORTER)
    entries = manifest["onnx_graphs"]
    assert len(entries) == 13
    assert sorted((e["source"], e["graph"]) for e in entries) == sorted([
        ("beat_full_causal", "beat_step"), ("beat_full_causal", "beat_window"), ("beat_full", "beat_window"),
        ("rhythm2drum_hits", "hits_encoder"), ("rhythm2drum_hits", "hits_step"),
        ("rhythm2drum_hits", "hits_prefill"), ("rhythm2drum_unet", "drum_unet"),
        ("drum2music_piano", "music_encoder"), ("drum2music_piano", "music_step"),
        ("drum2music_piano", "music_memory"), ("drum2music", "music_encoder"), ("drum2music", "music_step"),
        ("drum2music", "music_memory")])
    assert sorted(p.name for p in out.glob("*.onnx")) == sorted(e["file"] for e in entries)
    assert_no_temp_files(out)
    rng = np.random.default_rng(0)
    modules = graph_modules()
    for m in modules:
        g = OrtGraph(out / graph_file(m), m.spec)
        e = read_graph_manifest(g.path)
        assert e is not None and e["weights_sha256_16"] == weights_hash(m)
        tg = TorchGraph(m)
        for feeds in (feeds_of(m), random_inputs(m, rng)):
            assert_outputs_match((tg, g), tg.run(feeds), g.run(feeds), what=f"{m.source} {m.spec.name}")
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")}
    capsys.readouterr()
    assert main(["export", "--out", str(out)]) == 0
    assert "(0 exported now" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")} == before
