"""Shared fixtures of the ONNX export tests: tiny random-init models of every live network, their graph
modules exported once per session into a temporary cache, realistic inputs (a synthetic dancer's beat
features, a real Groove MIDI drum file when ``../shared`` is there), and comparison helpers.

Every test here runs with ``$RHYTHMICNET_ONNX_CACHE`` pointing at a session temp folder, so nothing
touches ``~/.cache``; the per-process ``graph_factory`` cache is reset by the tests that run the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from rhythmicnet.models.beat_net import BeatNet, ablation_config
from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.drum_unet import DrumUNet, DrumUNetConfig
from rhythmicnet.models.graphs import Graph, GraphModule, TorchGraph
from rhythmicnet.models.hits_transformer import HitsTransformer, HitsTransformerConfig
from rhythmicnet.models.hits_vocabulary import HitsVocabulary
from rhythmicnet.models.music_transformer import Drum2MusicConfig, Drum2MusicModel
from rhythmicnet.models.remi import VOCAB
from rhythmicnet.models.skeleton import NUM_JOINTS
from rhythmicnet.models.step_graphs import (
    BeatStepGraph,
    BeatWindowGraph,
    DrumUNetGraph,
    HitsEncoderGraph,
    HitsPrefillGraph,
    HitsStepGraph,
    MusicEncoderGraph,
    MusicMemoryGraph,
    MusicStepGraph,
)
from rhythmicnet.models.weights import WEIGHTS_DIR
from tests.models.test_beat_net import randomise_norms  # non-trivial batch-norm statistics

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CLIP = REPO_ROOT / "offline" / "examples" / "jumping_jacks.mp4"
#: max abs difference allowed between torch and ONNX Runtime on every float output
TOL = 1e-4
#: a 4-bar 4/4 groove (120 BPM, 8 s) from the Groove MIDI Dataset, relative to shared/data/groove_midi
GROOVE_FILE = "groove/drummer3/session1/23_jazz_120_beat_4-4.mid"
#: source name of the tiny beat graphs (the file-name prefix in the cache)
TINY_BEAT = "tiny_beat_causal"

GRAPH_KINDS = ("beat_step", "beat_window", "hits_encoder", "hits_step", "hits_prefill", "drum_unet", "music_encoder",
               "music_step", "music_memory")
#: the dynamic axis of each graph kind that has one: (input, axis, sizes to try besides the export example's)
DYNAMIC_SIZES: dict[str, tuple[int, tuple[int, ...]]] = {
    "beat_window": (1, (137, 20)),  # frames
    "hits_encoder": (0, (1, 3)),  # batch
    "hits_step": (0, (1, 3)),
    "hits_prefill": (1, (1, 9)),  # steps (the forced prefix + bos)
    "drum_unet": (0, (1, 5)),
}

TINY_BEAT_SIZES = dict(stgcn_channels=(8, 8, 12, 12), temporal_kernel=3, d_model=16, n_heads=2, d_ff=32, rel_clip=6,
                       ssm_kernel=3, window=12)
TINY_MUSIC = Drum2MusicConfig(d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=2, d_ff=64, mem_len=16,
                              max_bar_len=32, max_drum_len=32, dropout=0.0)


def find_shared_dir() -> Path | None:
    """``../shared`` (or ``$RHYTHMICNET_SHARED_DIR``) as tests/conftest.py finds it, without skipping."""
    env = os.environ.get("RHYTHMICNET_SHARED_DIR")
    for c in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]:
        if (c / "data").is_dir():
            return c.resolve()
    return None


def groove_file() -> Path | None:
    shared = find_shared_dir()
    if shared is None:
        return None
    p = shared / "data" / "groove_midi" / GROOVE_FILE
    return p if p.is_file() else None


# ---------------------------------------------------------------------------------- environment
@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's ONNX cache folder, also set as ``$RHYTHMICNET_ONNX_CACHE`` (never ``~/.cache``)."""
    d = tmp_path_factory.mktemp("onnx_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RHYTHMICNET_ONNX_CACHE", str(d))
        yield d


@pytest.fixture(scope="session", autouse=True)
def quiet_trace_log() -> Iterator[None]:
    """torch.export's structured-trace logger emits DEBUG records per traced op; pytest captures them into the
    report of any failing test that exported a graph (thousands of lines): keep it at WARNING here."""
    lg = logging.getLogger("torch.__trace")
    level = lg.level
    lg.setLevel(logging.WARNING)
    yield
    lg.setLevel(level)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Step-wise decoding on a busy 2-core machine: one torch thread (as the CLI sets)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def fresh_factories(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean per-process ``graph_factory`` cache, so the CLI builds its OnnxGraphs on this session's cache."""
    from rhythmicnet.export import backends

    monkeypatch.setattr(backends, "_FACTORIES", {})


# ---------------------------------------------------------------------------------- tiny models
def spread_weights(model: nn.Module, seed: int) -> nn.Module:
    """Weights at a trained network's scale (N(0, 1/fan_in) matrices and kernels, LayerNorm/GroupNorm affines
    around 1) instead of the N(0, 0.02) init, so activations and logits are O(1) and a 1e-4 tolerance
    means something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(math.prod(p.shape[1:])))
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model




def make_beat_model(seed: int = 0) -> BeatNet:
    torch.manual_seed(seed)
    model = BeatNet(ablation_config("full", causal=True, **TINY_BEAT_SIZES))
    return randomise_norms(model, seed).eval()  # type: ignore[return-value]


def make_music_model(seed: int = 0) -> Drum2MusicModel:
    torch.manual_seed(seed)
    return spread_weights(Drum2MusicModel(TINY_MUSIC), seed).eval()  # type: ignore[return-value]


@pytest.fixture(scope="session")
def hits_vocab() -> HitsVocabulary:
    return HitsVocabulary.load(WEIGHTS_DIR / "hits_vocabulary.json")


@pytest.fixture(scope="session")
def beat_model() -> BeatNet:
    return make_beat_model(0)


@pytest.fixture(scope="session")
def hits_model(hits_vocab: HitsVocabulary) -> HitsTransformer:
    torch.manual_seed(1)
    cfg = HitsTransformerConfig(vocab_size=hits_vocab.size, pad_id=hits_vocab.pad_id, bos_id=hits_vocab.bos_id,
                                d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=64, dropout=0.0,
                                max_steps=32)
    return spread_weights(HitsTransformer(cfg), 1).eval()  # type: ignore[return-value]


@pytest.fixture(scope="session")
def unet() -> DrumUNet:
    torch.manual_seed(2)
    return spread_weights(DrumUNet(DrumUNetConfig(channels=(8, 16), bottleneck_channels=16, norm_groups=4)),
                          2).eval()  # type: ignore[return-value]


@pytest.fixture(scope="session")
def music_model() -> Drum2MusicModel:
    return make_music_model(0)


@pytest.fixture(scope="session")
def tiny_weights(music_model: Drum2MusicModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with the session's tiny Drum2Music (same weights, so the CLI finds its graphs
    already in the session cache)."""
    d = tmp_path_factory.mktemp("tiny_weights")
    torch.save(music_model.state_dict(), d / "drum2music.pt")
    (d / "drum2music.json").write_text(json.dumps({"config": TINY_MUSIC.to_dict(), "version": 0}))
    return d


# ---------------------------------------------------------------------------------- graphs
@dataclasses.dataclass
class GraphPair:
    """One graph kind on both backends: the module, torch eager, ONNX Runtime (CPU)."""

    module: GraphModule
    torch: Graph
    onnx: Graph


class GraphPairs:
    """Builds (exports) each kind's pair on first request, so a failing export fails only its tests."""

    def __init__(self, factory: Any, modules: Mapping[str, Callable[[], GraphModule]]) -> None:
        self.factory = factory
        self.modules = modules
        self._pairs: dict[str, GraphPair] = {}

    def __getitem__(self, kind: str) -> GraphPair:
        if kind not in self._pairs:
            module = self.modules[kind]()
            self._pairs[kind] = GraphPair(module, TorchGraph(module), self.factory(module))
        return self._pairs[kind]


@pytest.fixture(scope="session")
def ort_factory(onnx_cache: Path) -> Any:
    """The ONNX GraphFactory on the CPU provider over the session cache."""
    from rhythmicnet.export.runtime import OnnxGraphs

    return OnnxGraphs(onnx_cache, device="cpu")


@pytest.fixture(scope="session")
def graph_pairs(ort_factory: Any, beat_model: BeatNet, hits_model: HitsTransformer, unet: DrumUNet,
                music_model: Drum2MusicModel) -> GraphPairs:
    """The 9 graph kinds of the tiny models (sources as the stages name them, so Drum2Music,
    Rhythm2Drum and BeatNetStream on the ONNX factory reuse these exports)."""
    return GraphPairs(ort_factory, {
        "beat_step": lambda: BeatStepGraph(beat_model, TINY_BEAT),
        "beat_window": lambda: BeatWindowGraph(beat_model, TINY_BEAT),
        "hits_encoder": lambda: HitsEncoderGraph(hits_model),
        "hits_step": lambda: HitsStepGraph(hits_model),
        "hits_prefill": lambda: HitsPrefillGraph(hits_model),
        "drum_unet": lambda: DrumUNetGraph(unet),
        "music_encoder": lambda: MusicEncoderGraph(music_model),
        "music_step": lambda: MusicStepGraph(music_model),
        "music_memory": lambda: MusicMemoryGraph(music_model),
    })


# ---------------------------------------------------------------------------------- inputs
def _random_int(name: str, shape: tuple[int, ...], module: GraphModule, rng: np.random.Generator) -> np.ndarray:
    """Random values of an int64 input, in the range the graph is meant to see."""
    if name == "rhythm":
        return rng.integers(0, 2, shape)
    if name == "tokens_in":
        return rng.integers(2, module.model.config.vocab_size, shape)
    if name == "token":
        if isinstance(module, HitsStepGraph):
            return rng.integers(2, module.model.config.vocab_size, shape)
        return rng.integers(1, len(VOCAB), shape)  # 0 = pad
    if name == "instrument":
        return rng.integers(0, 2, shape)
    if name == "drum_tokens":
        out = np.full(shape, VOCAB.pad, np.int64)
        n = int(rng.integers(3, shape[-1] + 1))
        out[..., :n] = rng.integers(1, len(VOCAB), (*shape[:-1], n))
        return out
    if name == "position":
        return np.array(rng.integers(0, module.model.config.max_bar_len))
    if name == "n_tokens":
        return np.array(rng.integers(1, module.model.config.max_bar_len + 1))
    if name == "length":
        if isinstance(module, HitsStepGraph):
            return np.array(rng.integers(0, module.model.config.max_steps))
        return np.array(rng.integers(0, 3 * module.model.config.window))
    raise AssertionError(f"no random rule for int input {name!r}")


def random_inputs(module: GraphModule, rng: np.random.Generator, size: int | None = None) -> dict[str, np.ndarray]:
    """Random inputs of the example's shapes and dtypes (the dynamic axis set to ``size`` when given):
    floats N(0, 1), masks random with at least one True per row, ints in their meaningful range."""
    spec = module.spec
    with torch.no_grad():
        example = [t.detach().numpy() for t in module.example_inputs()]
    out: dict[str, np.ndarray] = {}
    for name, ex in zip(spec.inputs, example, strict=True):
        shape = list(ex.shape)
        if size is not None:
            for axis in spec.dynamic.get(name, {}):
                shape[axis] = size
        shp = tuple(shape)
        if ex.dtype == np.bool_:
            a = rng.random(shp) < 0.6
            if a.ndim:
                a[..., -1] = True
            out[name] = a
        elif np.issubdtype(ex.dtype, np.integer):
            out[name] = _random_int(name, shp, module, rng).astype(ex.dtype)
        elif name == "hits":
            out[name] = (rng.random(shp) < 0.3).astype(ex.dtype)
        else:
            out[name] = rng.standard_normal(shp).astype(ex.dtype)
    return out


def assert_outputs_match(pair_or_graphs: Any, ref: Mapping[str, Any], got: Mapping[str, Any], tol: float = TOL,
                         what: str = "") -> float:
    """Every output of ``got`` (ONNX) matches ``ref`` (torch): same shape and dtype, floats within ``tol``,
    ints and bools exactly. Returns the largest float difference."""
    ref_graph, got_graph = pair_or_graphs
    assert set(ref) == set(got), what
    worst = 0.0
    for name in ref_graph.spec.outputs:
        a = np.asarray(ref_graph.fetch(ref[name]))
        b = np.asarray(got_graph.fetch(got[name]))
        if a.shape == (1,) and b.shape == () and isinstance(ref_graph, TorchGraph):
            # TorchGraph turns a 0-d input (length, position) into shape (1,) (np.ascontiguousarray), so its
            # scalar state comes back (1,): a product bug with its own failing test
            # (test_onnx_parity.py::test_scalar_state_keeps_its_0d_shape); compare the values here
            a = a.reshape(())
        assert a.shape == b.shape, f"{what} {name}: shape {b.shape} (onnx) != {a.shape} (torch)"
        assert a.dtype == b.dtype, f"{what} {name}: dtype {b.dtype} (onnx) != {a.dtype} (torch)"
        if np.issubdtype(a.dtype, np.floating):
            assert np.isfinite(a).all() and np.isfinite(b).all(), f"{what} {name}: not finite"
            d = float(np.abs(a - b).max()) if a.size else 0.0
            assert d <= tol, f"{what} {name}: max abs diff {d:.3g} > {tol:g}"
            worst = max(worst, d)
        else:
            assert np.array_equal(a, b), f"{what} {name}: {a.dtype} values differ"
    return worst


def run_both(pair: GraphPair, inputs: Mapping[str, Any], what: str = "") -> float:
    """Run ``inputs`` through torch and ONNX; assert the outputs match; returns the largest difference."""
    return assert_outputs_match((pair.torch, pair.onnx), pair.torch.run(inputs), pair.onnx.run(inputs), what=what)


# ---------------------------------------------------------------------------------- realistic data
def dancer_features(duration_s: float, seed: int = 5) -> np.ndarray:
    """Beat-net input features of a synthetic dancer, running-normalised as the live (causal) model reads
    them. Shape (T, 17, 5) float32 at 30 fps."""
    from rhythmicnet.models.beat_features import beat_input_features
    from rhythmicnet.models.keypoints import MODEL_FPS, prepare_for_model
    from rhythmicnet.models.skeleton import normalize_running
    from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
    from rhythmicnet.offline.synthetic_dancer import generate_clip

    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(duration_s, duration_s))
    seq = prepare_for_model(generate_clip(cfg, seed).sequence)
    kp = normalize_running(seq.keypoints, seq.confidence, MODEL_FPS)
    feats = np.ascontiguousarray(beat_input_features(kp, seq.confidence), dtype=np.float32)
    assert feats.shape[1] == NUM_JOINTS
    return feats


@pytest.fixture(scope="session")
def dancer_10s() -> np.ndarray:
    """~300 frames of a synthetic dancer's beat features."""
    return dancer_features(10.0)


def rock_hits(bars: int = 4) -> np.ndarray:
    """A plain rock beat (kick 0/8, snare 4/12, closed hi-hat on 8ths) with a fill in the last bar: (9, 16 bars)."""
    hits = np.zeros((9, 16 * bars), bool)
    for b in range(bars):
        o = 16 * b
        hits[0, [o, o + 8, o + 10]] = True
        hits[1, [o + 4, o + 12]] = True
        hits[2, o : o + 16 : 2] = True
    hits[5:8, -4:] = True
    return hits


def _rock_grid(bars: int = 4) -> DrumGrid:
    return DrumGrid.from_hits(rock_hits(bars), velocity=0.8, bpm=120.0)


@pytest.fixture(scope="session")
def drum_grid() -> DrumGrid:
    """Real drums: 4 bars of a Groove MIDI file when the shared data is there, else a written rock beat."""
    path = groove_file()
    if path is None:
        return _rock_grid()
    from rhythmicnet.offline.drum_midi import read_midi_file

    grid = read_midi_file(path).padded_to_bars()
    assert grid.hits.any()
    return grid
