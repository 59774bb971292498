"""``--backend onnx|torch`` and ``--device`` on the commands: provider selection on this machine, the one-line
error for an unusable ``--device cuda``, and the same seed giving byte-identical MIDI on both backends
(``music`` with tiny weights; with the shipped models and ``render`` on the bundled clip when slow).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import mido
import numpy as np
import pytest

from rhythmicnet.cli import main
from rhythmicnet.errors import WeightsError
from rhythmicnet.export.backends import backend_note, backend_record, graph_factory
from rhythmicnet.export.runtime import CPU, OnnxGraphs, available_providers, cuda_usable, provider_note
from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.graphs import torch_graph
from rhythmicnet.models.weights import WEIGHTS_DIR
from tests.export.conftest import EXAMPLE_CLIP, TOL, groove_file

CPU_ONLY = pytest.mark.skipif(cuda_usable(), reason="this machine has a CUDA device ONNX Runtime can use")


def write_drum_midi(path: Path, bars: int = 4) -> Path:
    """A drum MIDI file (rock beat with a fill, 110 BPM) written by the project's own writer."""
    from rhythmicnet.offline.drum_midi import write_midi_file
    from tests.export.conftest import rock_hits

    hits = rock_hits(bars)
    rng = np.random.default_rng(0)
    vel = np.where(hits, rng.uniform(0.5, 1.0, hits.shape), 0.0).astype(np.float32)
    return write_midi_file(DrumGrid(hits, vel, np.zeros_like(vel), 110.0), path)


@pytest.fixture(scope="module")
def dancer_keypoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
    from rhythmicnet.offline.keypoint_io import save_keypoints
    from rhythmicnet.offline.synthetic_dancer import generate_clip

    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(6.0, 6.0), tempo_bpm=(110.0, 110.0))
    path = tmp_path_factory.mktemp("kp") / "dancer.npz"
    save_keypoints(path, generate_clip(cfg, 11).sequence)
    return path


def midi_messages(path: Path) -> list[tuple[int, str]]:
    """(track, message) of every message, absolute ticks in the message text."""
    out = []
    for i, track in enumerate(mido.MidiFile(path).tracks):
        t = 0
        for msg in track:
            t += msg.time
            out.append((i, f"tick {t}: {msg.copy(time=0)}"))
    return out


def first_midi_difference(a: Path, b: Path) -> str:
    ma, mb = midi_messages(a), midi_messages(b)
    j = next((i for i, (x, y) in enumerate(zip(ma, mb, strict=False)) if x != y), min(len(ma), len(mb)))

    def show(m: list[tuple[int, str]], k: int) -> object:
        return m[k] if k < len(m) else "(end)"

    return f"{a.name}: message {j}: torch {show(ma, j)} / onnx {show(mb, j)} ({len(ma)} vs {len(mb)} messages)"


# ---------------------------------------------------------------------------------- providers
@CPU_ONLY
def test_providers_on_a_cpu_only_machine(onnx_cache: Path) -> None:
    import onnxruntime as ort

    assert available_providers("auto") == [CPU] and available_providers("cpu") == [CPU]
    # the GPU wheel may list CUDA here; it is not used unless a session really opens on it
    assert "CPUExecutionProvider" in ort.get_available_providers()
    note = provider_note("auto")
    assert "\n" not in note and "CPUExecutionProvider" in note and note == backend_note("onnx", "auto")
    assert "torch" in backend_note("torch") and "\n" not in backend_note("torch")
    with pytest.raises(WeightsError) as info:
        available_providers("cuda")
    assert "\n" not in str(info.value) and "--device cuda" in str(info.value)
    with pytest.raises(WeightsError):
        OnnxGraphs(onnx_cache, device="cuda")
    with pytest.raises(WeightsError):
        provider_note("cuda")
    auto = OnnxGraphs(onnx_cache, device="auto")
    assert auto.providers == [CPU] and auto.cache_dir == onnx_cache
    # the note says why: here the provider's libraries are missing, never that the probe itself was refused
    assert "no usable CUDA GPU: " in note and "IR version" not in note, note


def test_the_cuda_probe_model_opens_in_this_onnx_runtime() -> None:
    """cuda_usable() opens probe_model() on CUDA; the model itself must load in the installed ONNX Runtime.
    It did not (onnx 1.23 wrote IR version 14, ONNX Runtime 1.31 takes 13 at most), so CUDA was never used
    on any GPU: found on the lent H200."""
    import onnxruntime as ort

    from rhythmicnet.export.runtime import probe_model

    sess = ort.InferenceSession(probe_model(), providers=[CPU])
    out = sess.run(None, {"x": np.array([2.5], np.float32)})[0]
    np.testing.assert_array_equal(out, [2.5])


def test_graph_factory_choices(onnx_cache: Path, fresh_factories: None) -> None:
    assert graph_factory("torch", "cpu") is torch_graph
    f = graph_factory("onnx", "cpu")
    assert isinstance(f, OnnxGraphs) and f is graph_factory("onnx", "cpu")  # one per process and device
    assert f.cache_dir == onnx_cache  # $RHYTHMICNET_ONNX_CACHE, never ~/.cache in these tests
    assert backend_record(f)["name"] == "onnx" and backend_record(torch_graph)["name"] == "torch"
    with pytest.raises(ValueError):
        graph_factory("tensorrt", "auto")
    with pytest.raises(ValueError):
        graph_factory("onnx", "tpu")


@CPU_ONLY
@pytest.mark.parametrize("command", ["music", "rhythm", "render"])
def test_device_cuda_is_a_one_line_error(command: str, tiny_weights: Path, dancer_keypoints: Path, tmp_path: Path,
                                         fresh_factories: None, capsys: pytest.CaptureFixture) -> None:
    if command == "music":
        args = ["music", str(write_drum_midi(tmp_path / "drums.mid")), "-o", str(tmp_path / "out.mid"), "--weights",
                str(tiny_weights)]
    else:
        args = [command, str(dancer_keypoints), "-o", str(tmp_path / "out")]
    capsys.readouterr()
    rc = main([*args, "--backend", "onnx", "--device", "cuda", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("rhythmicnet: error: --device cuda") and "CUDA" in err[0], err
    assert not (tmp_path / "out.mid").exists()


# ---------------------------------------------------------------------------------- music, both backends
def run_music(drums: Path, out: Path, backend: str, *extra: str) -> bytes:
    assert main(["music", str(drums), "-o", str(out), "--backend", backend, "--seed", "5", "-q", *extra]) == 0
    return out.read_bytes()


def test_music_command_same_seed_same_midi_on_both_backends_tiny(tiny_weights: Path, tmp_path: Path,
                                                                 fresh_factories: None) -> None:
    drums = write_drum_midi(tmp_path / "drums.mid")
    for instrument in ("piano", "guitar"):
        extra = ("--weights", str(tiny_weights), "--instrument", instrument)
        a = run_music(drums, tmp_path / f"torch_{instrument}.mid", "torch", *extra)
        b = run_music(drums, tmp_path / f"onnx_{instrument}.mid", "onnx", *extra)
        assert a == b, first_midi_difference(tmp_path / f"torch_{instrument}.mid", tmp_path / f"onnx_{instrument}.mid")
        assert len(mido.MidiFile(tmp_path / f"onnx_{instrument}.mid").tracks) == 2


@pytest.mark.slow
def test_music_command_same_seed_same_midi_with_the_shipped_model(tmp_path: Path, fresh_factories: None) -> None:
    """The shipped drum2music_piano (exports its 3 graphs, ~30 s) on a real 4-bar groove."""
    drums = groove_file()
    if drums is None:
        pytest.skip("shared Groove MIDI data not found (../shared/data/groove_midi)")
    a = run_music(drums, tmp_path / "torch.mid", "torch")
    b = run_music(drums, tmp_path / "onnx.mid", "onnx")
    assert a == b, first_midi_difference(tmp_path / "torch.mid", tmp_path / "onnx.mid")
    notes = [m for m in mido.MidiFile(tmp_path / "onnx.mid").tracks[1] if m.type == "note_on" and m.velocity > 0]
    assert notes


# ---------------------------------------------------------------------------------- render, both backends
def _beat_activation_gap(keypoints: Path, weights_dir: str) -> float:
    """Largest difference between the beat activations of the offline beat net on both backends."""
    from rhythmicnet.export.backends import graph_factory as factory
    from rhythmicnet.models.beat_model import LearnedBeatModel
    from rhythmicnet.models.keypoints import prepare_for_model
    from rhythmicnet.models.skeleton import normalize_clip
    from rhythmicnet.offline.keypoint_io import load_keypoints

    seq = prepare_for_model(load_keypoints(keypoints))
    kp = normalize_clip(seq.keypoints, seq.confidence)
    acts = [LearnedBeatModel.load("full", weights_dir, graphs=g).activation(kp, seq.confidence)[0]
            for g in (torch_graph, factory("onnx", "cpu"))]
    return float(np.abs(acts[0] - acts[1]).max())


@pytest.mark.slow
def test_render_bundled_clip_same_midi_on_both_backends(tmp_path: Path, fresh_factories: None,
                                                        capsys: pytest.CaptureFixture) -> None:
    """``render`` of the bundled clip with the shipped models: drums, piano and soundtrack MIDI byte-identical on
    torch and ONNX (pose runs once: the keypoint cache of the first run is copied beside the second)."""
    assert EXAMPLE_CLIP.is_file()
    a, b = tmp_path / "torch", tmp_path / "onnx"
    assert main(["render", str(EXAMPLE_CLIP), "-o", str(a), "--backend", "torch", "--seed", "0", "-q"]) == 0
    b.mkdir()
    cache = a / f"{EXAMPLE_CLIP.stem}.keypoints.npz"
    shutil.copy(cache, b / cache.name)
    assert main(["render", str(EXAMPLE_CLIP), "-o", str(b), "--backend", "onnx", "--seed", "0", "-q"]) == 0
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    assert rb["stage_seconds"]["keypoints"] < 0.5 * max(ra["stage_seconds"]["keypoints"], 1.0)  # cache reused
    assert ra["backend"]["name"] == "torch" and rb["backend"]["name"] == "onnx"
    graphs = rb["backend"]["graphs"]  # the provider of each ONNX graph that ran
    assert sorted(n.split(".")[1] for n in graphs) == sorted(["beat_window", "hits_encoder", "hits_step", "drum_unet",
                                                               "music_encoder", "music_step", "music_memory"])
    assert all("ExecutionProvider" in g["provider"] for g in graphs.values())
    files = ("drums.mid", "piano.mid", "soundtrack.mid")
    different = [f for f in files if (a / f).read_bytes() != (b / f).read_bytes()]
    if not different:
        return
    # Document the first divergence: which stage, which message, and whether the numbers upstream still agree.
    stage = next((k for k in ("tempo_bpm", "beats", "first_downbeat_s", "style_events", "bars") if ra[k] != rb[k]),
                 "drums/piano")
    lines = [f"render differs in {different}; first differing stage: {stage}"]
    lines += [first_midi_difference(a / f, b / f) for f in different]
    gap = _beat_activation_gap(cache, str(WEIGHTS_DIR))
    lines.append(f"beat activation, torch vs onnx: max abs difference {gap:.3g}")
    report = "\n".join(lines)
    with capsys.disabled():
        print("\n" + report)
    # A divergence is acceptable only where a beat decision flipped on activations equal to TOL (a Viterbi
    # near-tie decided by a last-bit difference); anything downstream of equal beats is a failure.
    assert stage in ("tempo_bpm", "beats", "first_downbeat_s") and gap <= TOL, report
