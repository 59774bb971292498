"""A tiny real beat-network training run, resume, and the Table 1 evaluation on its weights."""

import json

import numpy as np
import pytest

from rhythmicnet.cli import main
from rhythmicnet.models.beat_model import load_beat_model
from rhythmicnet.offline.eval_beat import downbeats_from, score_clip
from rhythmicnet.offline.train_beat import BeatTrainConfig, train_beat


@pytest.fixture(scope="module")
def tiny_beat(tmp_path_factory):
    out = tmp_path_factory.mktemp("beat")
    cfg = BeatTrainConfig(model="full", causal=True, steps=3, batch_size=2, window_frames=120, clip_seconds=6.0,
                          val_clips=1, val_every=2, threads=1)
    return out, train_beat(out, config=cfg, progress=False)


def test_tiny_training_run_writes_weights(tiny_beat):
    out, manifest = tiny_beat
    assert manifest["training"]["steps_run"] == 3
    assert [h["step"] for h in manifest["history"]] == [2, 3]
    model = load_beat_model("full_causal", out)
    assert model.config.causal and not model.training


def test_resume_continues(tiny_beat, tmp_path):
    out, _ = tiny_beat
    cfg = BeatTrainConfig(model="full", causal=True, steps=4, batch_size=2, window_frames=120, clip_seconds=6.0,
                          val_clips=1, val_every=2, threads=1)
    m = train_beat(tmp_path, config=cfg, checkpoint=out / "beat_full_causal.ckpt", resume=True, progress=False)
    assert [h["step"] for h in m["history"]] == [2, 3, 4]


def test_resuming_on_a_newer_generator_starts_the_best_weights_anew(tiny_beat, tmp_path):
    import torch

    from rhythmicnet.offline.synthetic_dancer import GENERATOR_VERSION
    from rhythmicnet.offline.training import load_checkpoint
    out, _ = tiny_beat
    state = load_checkpoint(out / "beat_full_causal.ckpt")
    assert state["extra"]["generator_version"] == GENERATOR_VERSION
    state["extra"]["generator_version"] = "0.9"  # a checkpoint of an older generator
    state["extra"]["best_f"] = 2.0  # unbeatable: kept, the fine-tuned weights would never be written
    ckpt = tmp_path / "old.ckpt"
    torch.save(state, ckpt)
    cfg = BeatTrainConfig(model="full", causal=True, steps=state["step"] + 2, batch_size=2, window_frames=120,
                          clip_seconds=6.0, val_clips=1, val_every=2, threads=1)
    m = train_beat(tmp_path, config=cfg, checkpoint=ckpt, resume=True, progress=False)
    assert m["validation_f"] <= 1.0
    assert m["data"]["generator_since_step"] == state["step"] and m["data"]["earlier_generator"] == "0.9"


def test_eval_command(tiny_beat, tmp_path, capsys):
    out, _ = tiny_beat
    js = tmp_path / "t1.json"
    assert main(["eval", "beat", "--weights", str(out), "--rows", "onset", "full_causal", "full_causal_streaming",
                 "full", "--clips", "2", "--json", str(js), "-q"]) == 0
    text = capsys.readouterr().out
    assert "not comparable with the paper's AIST figures" in text
    rows = {r["model"]: r for r in json.loads(js.read_text())}
    assert rows["full"].get("missing")  # no offline weights in this folder
    for name in ("onset", "full_causal", "full_causal_streaming"):
        r = rows[name]
        assert r["n_clips"] == 2
        for key in ("f_measure", "cemgil", "cmlc", "cmlt"):
            assert 0.0 <= r[key] <= 100.0


def test_metrics_on_perfect_and_halved_beats():
    ref = np.arange(0.5, 30, 0.5)
    perfect = score_clip(ref, ref)
    assert perfect.f_measure == 1.0 and perfect.cmlt == 1.0 and perfect.acc1 == 1.0
    half = score_clip(ref, ref[::2])
    assert half.cmlt == 0.0 and half.amlt == 1.0 and half.acc1 == 0.0 and half.acc2 == 1.0


def test_downbeats_pick_the_strongest_phase():
    beats = np.arange(20) * 0.5
    act = np.zeros(400)
    for t in beats[2::4]:
        act[int(round(t * 30))] = 1.0
    np.testing.assert_allclose(downbeats_from(beats, act), beats[2::4])


def test_rhythm_analysis_uses_the_learned_model(tiny_beat, tmp_path):
    import shutil
    from pathlib import Path

    from rhythmicnet.errors import WeightsError
    from rhythmicnet.offline.synthetic_motion import SyntheticMotionConfig, synthesize
    from rhythmicnet.offline.video2rhythm import Video2RhythmConfig, analyse

    out, _ = tiny_beat
    for suffix in (".pt", ".json"):  # the tiny causal weights stand in for the offline model's files
        shutil.copy(out / f"beat_full_causal{suffix}", tmp_path / f"beat_full{suffix}")
    seq = synthesize(SyntheticMotionConfig(duration_s=10, seed=2)).sequence
    a = analyse(seq, Video2RhythmConfig(beat_model="net", weights_dir=tmp_path))
    assert a.activation.shape == (seq.num_frames,) and 0 <= a.activation.min() and a.activation.max() <= 1
    assert a.rhythm.num_steps > 0
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(WeightsError, match="beat_full.json"):
        analyse(seq, Video2RhythmConfig(beat_model="net", weights_dir=Path(empty)))


@pytest.fixture(scope="module")
def keypoints_folder(tmp_path_factory):
    """Twelve synthetic dancers written as a keypoints folder with beats.csv (the real-data layout)."""
    import dataclasses

    from rhythmicnet.offline.beat_datasets import split_of
    from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
    from rhythmicnet.offline.keypoint_io import save_keypoints
    from rhythmicnet.offline.synthetic_dancer import generate_clip

    d = tmp_path_factory.mktemp("kpdir")
    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(8.0, 8.0))
    rows = ["file,time,downbeat"]
    for i in range(12):
        dance = generate_clip(cfg, 500 + i)
        name = f"dancer{i:02d}.npz"
        save_keypoints(d / name, dance.sequence)
        down = set(np.round(dance.downbeats, 6).tolist())
        rows += [f"{name},{b:.6f},{int(round(b, 6) in down)}" for b in dance.beats]
    (d / "beats.csv").write_text("\n".join(rows) + "\n")
    splits = [split_of(f"dancer{i:02d}.npz") for i in range(12)]
    assert "train" in splits and "test" in splits
    return d


def test_training_mixes_in_a_real_keypoints_folder(keypoints_folder, tmp_path):
    cfg = BeatTrainConfig(model="tcn", steps=2, batch_size=4, window_frames=120, clip_seconds=6.0, val_clips=1,
                          val_every=2, threads=1, keypoints_dir=str(keypoints_folder), real_fraction=1.0)
    m = train_beat(tmp_path, config=cfg, progress=False)
    assert m["data"]["real_clips"] > 0 and m["data"]["real_sources"]["keypoints_dir"] == str(keypoints_folder)


def test_eval_on_a_real_keypoints_folder(tiny_beat, keypoints_folder, tmp_path, capsys):
    out, _ = tiny_beat
    js = tmp_path / "real.json"
    assert main(["eval", "beat", "--data", str(keypoints_folder), "--weights", str(out), "--rows", "onset",
                 "full_causal", "--json", str(js), "-q"]) == 0
    text = capsys.readouterr().out
    assert "keypoints folder" in text and "test split" in text
    rows = {r["model"]: r for r in json.loads(js.read_text())}
    from rhythmicnet.offline.beat_datasets import split_of

    n_test = sum(split_of(f"dancer{i:02d}.npz") == "test" for i in range(12))
    assert rows["onset"]["n_clips"] == n_test == rows["full_causal"]["n_clips"]
    assert main(["eval", "beat", "--data", "aist"]) == 2  # needs --aist-dir


def test_architecture_overrides_train_load_and_stream(tmp_path):
    """``arch`` changes the network's size: saved in the manifest, rebuilt by the loader, and the live path's
    ONNX step graph runs it frame by frame; resuming its checkpoint with another architecture is refused."""
    from rhythmicnet.errors import InputError
    from rhythmicnet.export.backends import graph_factory
    from rhythmicnet.models.live_rhythm import LiveRhythm
    from rhythmicnet.offline.synthetic_motion import SyntheticMotionConfig, synthesize

    arch = {"stgcn_channels": [8, 8, 12], "n_layers": 1, "d_model": 32, "d_ff": 64}
    cfg = BeatTrainConfig(model="full", causal=True, steps=2, batch_size=2, window_frames=90, clip_seconds=4.0,
                          val_clips=1, val_every=2, threads=1, arch=arch)
    m = train_beat(tmp_path, config=cfg, progress=False)
    assert m["architecture"]["config"]["stgcn_channels"] == [8, 8, 12] and m["training"]["arch"] == arch
    model = load_beat_model("full_causal", tmp_path)
    assert model.config.stgcn_channels == (8, 8, 12) and model.config.n_layers == 1 and model.config.d_model == 32
    seq = synthesize(SyntheticMotionConfig(duration_s=3, seed=1)).sequence
    frames = LiveRhythm(model, graphs=graph_factory("onnx")).process_offline(seq)
    assert len(frames) >= 80 and all(0.0 <= f.activation <= 1.0 for f in frames)
    other = BeatTrainConfig(model="full", causal=True, steps=4, batch_size=2, window_frames=90, clip_seconds=4.0,
                            val_clips=1, val_every=2, threads=1)
    with pytest.raises(InputError, match="architecture overrides"):
        train_beat(tmp_path, config=other, resume=True, progress=False)


def test_a_bad_architecture_override_is_one_line(capsys):
    with pytest.raises(ValueError, match="n_heads"):
        BeatTrainConfig(causal=True, arch={"d_model": 30, "n_heads": 4})
    with pytest.raises(ValueError, match="--causal"):
        BeatTrainConfig(causal=True, arch={"causal": False})
    assert main(["train", "beat", "--arch", "colour=3", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--arch" in err and "colour" in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_delayed_model_trains_on_moved_targets_and_is_read_on_its_frames():
    """``--arch output_delay=D``: the training batches carry each frame's target D frames later (the same
    windows and features), the whole-clip activation is the network's output moved D frames earlier (what
    validation and ``eval beat`` decode), and the streaming row's tracker keeps the total decision lag."""
    import torch

    from rhythmicnet.models.beat_hmm import BeatTrackerConfig
    from rhythmicnet.models.beat_net import BeatNet
    from rhythmicnet.models.fixed_lag_beats import DEFAULT_LAG, FixedLagBeatTracker
    from rhythmicnet.models.keypoints import MODEL_FPS
    from rhythmicnet.offline.eval_beat import decode_row
    from rhythmicnet.offline.train_beat import _batch, build_config, clip_activations

    d = 5
    plain = BeatTrainConfig(model="full", causal=True, batch_size=2, window_frames=120, clip_seconds=6.0)
    delayed = BeatTrainConfig(model="full", causal=True, batch_size=2, window_frames=120, clip_seconds=6.0,
                              arch={"output_delay": d})
    a = _batch(plain, 3, np.random.default_rng(7))
    b = _batch(delayed, 3, np.random.default_rng(7))
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["mask"], b["mask"])
    assert torch.equal(b["beat"][:, d:], a["beat"][:, :-d]) and torch.equal(b["downbeat"][:, d:], a["downbeat"][:, :-d])
    assert a["beat"].sum() > 0

    torch.manual_seed(0)
    model = BeatNet(build_config("full", True, {"output_delay": d, "stgcn_channels": [8, 8], "d_model": 16,
                                                "d_ff": 32})).eval()
    x = a["x"][0].numpy()
    act, down = clip_activations(model, x)
    with torch.no_grad():
        raw = torch.sigmoid(model(torch.as_tensor(x)[None]).beat_logits[0]).numpy()
    np.testing.assert_allclose(act[:-d], raw[d:], atol=1e-7)
    assert np.all(act[-d:] == 0) and act.shape == down.shape == (len(x),)

    rng = np.random.default_rng(1)
    acts = rng.random(600) ** 3  # no clear beat: the decisions depend on the lag
    cfg = BeatTrackerConfig(fps=MODEL_FPS)
    np.testing.assert_array_equal(decode_row(acts, "full_causal_streaming", d),
                                  FixedLagBeatTracker(cfg, DEFAULT_LAG - d).process_offline(acts))
    assert not np.array_equal(decode_row(acts, "full_causal_streaming", d), decode_row(acts, "full_causal_streaming"))
