"""Long clips (issue 17, section 1): cost linear in length, memory bounded, quality kept.

* the offline beat network runs over overlap-added windows of the length it was trained on, not one
  pass whose attention and self-similarity grow with the square of the clip (20 GB at 10 min);
* windowing keeps the beat F-measure within 0.5 of the whole-clip pass on held-out dancers;
* a few-minute clip's rhythm analysis and plot (overview + first minute) stay under a memory bound,
  measured in a child process with ``resource.getrusage``;
* the WAVs are written in blocks (audio_stream.py), so their memory does not grow with the clip;
* the pose stage streams a video's frames and writes its keypoint cache once, atomically.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rhythmicnet.models.beat_model import (
    WINDOW_CROSSFADE,
    WINDOW_FRAMES,
    WINDOW_MARGIN,
    LearnedBeatModel,
    has_beat_model,
    window_starts,
    window_weights,
    windowed_logits,
)
from rhythmicnet.models.weights import WEIGHTS_DIR

needs_beat_net = pytest.mark.skipif(not has_beat_model("full"), reason="beat_full weights not installed")
GM = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def test_window_length_is_twice_the_training_window():
    # the generator-2.0 network reads 16 s windows better than the 8 s it was trained on (figures at
    # WINDOW_FRAMES in models/beat_model.py); a retrained network with other windows must be re-measured
    manifest = json.loads((WEIGHTS_DIR / "beat_full.json").read_text())
    assert 2 * manifest["training"]["window_frames"] == WINDOW_FRAMES


@pytest.mark.parametrize("t", [WINDOW_FRAMES + 1, 1000, 5437])
def test_windows_cover_every_frame_and_crossfade_to_one(t):
    hop = WINDOW_FRAMES - 2 * WINDOW_MARGIN - WINDOW_CROSSFADE
    starts = window_starts(t, WINDOW_FRAMES, hop)
    assert starts[0] == 0 and starts[-1] + WINDOW_FRAMES == t
    total = np.zeros(t)
    for i, s in enumerate(starts):
        w = window_weights(WINDOW_FRAMES, first=i == 0, last=i == len(starts) - 1, margin=WINDOW_MARGIN,
                           crossfade=WINDOW_CROSSFADE)
        if i > 0:
            assert np.all(w[:WINDOW_MARGIN] == 0)  # the inner edges' margins are dropped
        if i < len(starts) - 1:
            assert np.all(w[-WINDOW_MARGIN:] == 0)
        total[s : s + WINDOW_FRAMES] += w
    assert total.min() > 0.3
    # windows a full hop apart cross-fade to exactly 1 (the flush last window may overlap more)
    regular_end = starts[-2] + WINDOW_FRAMES - WINDOW_MARGIN if len(starts) > 2 else 0
    np.testing.assert_allclose(total[: max(0, min(regular_end, starts[-1]))], 1.0)


def test_windowed_logits_runs_bounded_windows_and_is_exact_on_a_constant_model():
    seen = []

    def run(x):
        seen.append(len(x))
        return np.full(len(x), 0.7), np.full(len(x), -1.2)  # a model whose output ignores context

    b, d = windowed_logits(run, np.zeros((10_000, 17, 3), np.float32))
    hop = WINDOW_FRAMES - 2 * WINDOW_MARGIN - WINDOW_CROSSFADE
    assert max(seen) == WINDOW_FRAMES and len(seen) == len(window_starts(10_000, WINDOW_FRAMES, hop))
    np.testing.assert_allclose(b, 1 / (1 + np.exp(-0.7)))
    np.testing.assert_allclose(d, 1 / (1 + np.exp(1.2)))
    seen.clear()
    windowed_logits(run, np.zeros((WINDOW_FRAMES, 17, 3), np.float32))
    assert seen == [WINDOW_FRAMES]  # a clip that fits is one pass


@needs_beat_net
def test_activation_of_a_long_clip_never_runs_the_net_on_more_than_one_window(monkeypatch):
    net = LearnedBeatModel.load("full")
    lengths = []
    orig = net.logits

    def spy(feats):
        lengths.append(len(feats))
        return orig(feats)

    monkeypatch.setattr(net, "logits", spy)
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(1500, 17, 2)).astype(np.float32)
    act, down = net.activation(kp, np.ones((1500, 17), np.float32))
    assert act.shape == down.shape == (1500,) and np.all((act >= 0) & (act <= 1))
    assert max(lengths) == WINDOW_FRAMES
    # a short clip is the whole-clip pass, unchanged
    lengths.clear()
    short, _ = net.activation(kp[:200], np.ones((200, 17), np.float32))
    whole, _ = net.activation(kp[:200], np.ones((200, 17), np.float32), window=None)
    assert lengths == [200, 200]
    np.testing.assert_allclose(short, whole)


@needs_beat_net
def test_windowed_beat_f_within_half_a_point_of_whole_clip_on_held_out_dancers():
    from rhythmicnet.offline.beat_eval_set import EVAL_SET
    from rhythmicnet.offline.eval_beat import windowed_vs_whole
    from rhythmicnet.offline.synthetic_dancer import generate_clip

    # 40 held-out dancers, 60 s each (several windows of 16 s), the decoder three steps a frame: measured 97.19
    # whole, 97.08 windowed. Per-clip differences spread 1.8-2.1 F (one clip -7.9), so the mean of 20 clips
    # moves by about 0.45: the first 20 measured 98.20 vs 97.70 (with the one-step decoder 94.61 vs 96.10). The
    # standard error of 40 is 0.28, so windowing that truly costs nothing fails the 0.5 tolerance for about 4 % of
    # weight or decoder changes (20 clips: 14 %). The slow test below runs all 200 and 90 s clips.
    cfg = dataclasses.replace(EVAL_SET.config, duration_s=(60.0, 60.0))
    r = windowed_vs_whole(generate_clip(cfg, s) for s in EVAL_SET.seeds[:40])
    assert r["n_clips"] == 40 and r["max_frames"] > 3 * WINDOW_FRAMES  # several windows each
    assert r["f_windowed"] >= r["f_whole"] - 0.5, r


@pytest.mark.slow
@needs_beat_net
def test_windowed_beat_f_on_the_whole_held_out_set_and_90_s_clips():
    """Measured with the generator-2.0 weights and 480-frame windows: 200 held-out clips 93.95 whole vs 93.79
    windowed; 60 clips of 90 s (the held-out config, 90 s) 92.40 vs 92.62. The per-clip difference has a
    standard deviation of 4.1 F, so a mean over 20 clips moves by about 0.9 (their first 20: 93.95 vs 93.37)
    and a 0.5 tolerance needs more clips than that; 60 give about 0.5. (Issue 17's generator-1.1 weights,
    240-frame windows: 94.60 vs 94.43, and 95.64 vs 95.37 on 20 clips of 90 s.)"""
    from rhythmicnet.offline.beat_eval_set import EVAL_SET, eval_clips
    from rhythmicnet.offline.eval_beat import windowed_vs_whole
    from rhythmicnet.offline.synthetic_dancer import generate_clip

    held_out = windowed_vs_whole(eval_clips())
    assert held_out["n_clips"] == 200
    assert held_out["f_windowed"] >= held_out["f_whole"] - 0.5, {k: held_out[k] for k in ("f_whole", "f_windowed")}
    cfg = dataclasses.replace(EVAL_SET.config, duration_s=(90.0, 90.0))
    long = windowed_vs_whole(generate_clip(cfg, s) for s in EVAL_SET.seeds[:60])
    assert long["n_clips"] == 60 and long["max_frames"] >= 2600
    assert long["f_windowed"] >= long["f_whole"] - 0.5, {k: long[k] for k in ("f_whole", "f_windowed")}


def _child(code: str, tmp_path: Path, timeout: float = 120.0) -> dict:
    """Run ``code`` in a fresh interpreter (one thread); it prints one JSON line, returned here with
    ``peak_mb`` (the child's ru_maxrss) added."""
    script = textwrap.dedent('''
        import json, os, resource, sys
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch
        torch.set_num_threads(1)
        def peak_mb():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ''') + textwrap.dedent(code)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                         cwd=tmp_path, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@needs_beat_net
def test_four_minute_clip_rhythm_and_plot_stay_under_a_memory_bound(tmp_path):
    """The whole-clip pass peaked at 4.2 GB on 240 s; windowed, the rhythm stage adds little to the
    interpreter and libraries (~250 MB with torch), and the plot is an overview + the first minute."""
    out = _child('''
        import dataclasses
        from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
        from rhythmicnet.offline.synthetic_dancer import generate_clip
        from rhythmicnet.offline.video2rhythm import analyse, Video2RhythmConfig
        from rhythmicnet.offline.rhythm_report import plot_rhythm
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot
        cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(240.0, 240.0), fps=(30.0, 30.0))
        seq = generate_clip(cfg, 3).sequence
        before = peak_mb()
        a = analyse(seq, Video2RhythmConfig(beat_model="net"))
        plot_rhythm("rhythm.png", a, title="four minutes")
        print(json.dumps({"before_mb": before, "peak_mb": peak_mb(), "beats": len(a.beats),
                          "seconds": a.sequence.duration}))
    ''', tmp_path)
    assert out["seconds"] > 239 and out["beats"] > 200
    assert out["peak_mb"] - out["before_mb"] < 400, out  # the whole-clip pass needed ~4000 MB more
    import matplotlib.image

    h, w = matplotlib.image.imread(tmp_path / "rhythm.png").shape[:2]
    assert (w, h) == (1200, 1100)  # overview above a detail of the first minute


@pytest.mark.skipif(not GM.is_file(), reason="FluidR3_GM.sf2 (fluid-soundfont-gm) not installed")
def test_wav_memory_does_not_grow_with_the_clip(tmp_path):
    """Two minutes of two stems: the whole-array path held ~5 arrays of 46 MB; blocks hold a few MB."""
    out = _child('''
        import mido
        from rhythmicnet.offline.audio_stream import render_wavs
        def part(channel, note):
            mid = mido.MidiFile(type=1, ticks_per_beat=480)
            tr = mido.MidiTrack(); mid.tracks.append(tr)
            tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
            for i in range(240):
                tr.append(mido.Message("note_on", channel=channel, note=note, velocity=100, time=0 if i == 0 else 240))
                tr.append(mido.Message("note_off", channel=channel, note=note, velocity=0, time=240))
            return mid
        import numpy as np
        np.zeros(1)
        before = peak_mb()
        render_wavs({"drums": part(9, 36), "piano": part(0, 60)}, "/usr/share/sounds/sf2/FluidR3_GM.sf2", ".",
                    sample_rate=48000, duration_s=120.0)
        print(json.dumps({"before_mb": before, "peak_mb": peak_mb()}))
    ''', tmp_path)
    assert out["peak_mb"] - out["before_mb"] < 60, out
    assert (tmp_path / "soundtrack.wav").stat().st_size == 120 * 48000 * 4 + 44


# ------------------------------------------------------------------------------------------ pose stage
class _FakeCapture:
    """A 'video' of ``n`` 480x640 frames that counts how many were decoded."""

    def __init__(self, n: int) -> None:
        self.n, self.read_count = n, 0

    def read(self):
        if self.read_count >= self.n:
            return False, None
        self.read_count += 1
        return True, np.full((480, 640, 3), self.read_count % 255, np.uint8)

    def get(self, prop):
        import cv2

        if prop == cv2.CAP_PROP_FPS:
            return 30.0
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return self.n
        return self.read_count * 1000.0 / 30.0  # CAP_PROP_POS_MSEC

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return True

    def release(self):
        pass


class _FakeLandmarker:
    """One person swaying; records how far decoding ran ahead of the pose model."""

    def __init__(self, cap: _FakeCapture) -> None:
        self.cap, self.calls, self.max_ahead = cap, 0, 0

    def detect_for_video(self, image, ts_ms):
        self.calls += 1
        self.max_ahead = max(self.max_ahead, self.cap.read_count - self.calls)
        dx = 0.02 * np.sin(ts_ms / 300.0)
        pose = [SimpleNamespace(x=0.4 + dx + 0.2 * (i % 5) / 5, y=0.1 + 0.8 * i / 33, visibility=0.9)
                for i in range(33)]
        return SimpleNamespace(pose_landmarks=[pose])

    def close(self):
        pass


def test_pose_stage_streams_frames_and_writes_its_cache_once_atomically(tmp_path, monkeypatch):
    from rhythmicnet.offline import keypoint_io
    from rhythmicnet.offline import pose_estimation as pe

    n = 900  # 30 s; held at once these frames would be 830 MB
    cap = _FakeCapture(n)
    lm = _FakeLandmarker(cap)
    monkeypatch.setattr(pe, "_open_video", lambda path: cap)
    monkeypatch.setattr(pe, "_create_landmarker", lambda max_people: lm)
    monkeypatch.setattr(pe, "video_fingerprint", lambda path: "fake")
    cache = tmp_path / "out" / "clip.keypoints.npz"
    writes = []
    real_save = keypoint_io.save_keypoints

    def counting_save(path, seq, **kw):
        assert lm.calls == n, "the cache was written before every frame was processed"
        writes.append(Path(path))
        return real_save(path, seq, **kw)

    monkeypatch.setattr(keypoint_io, "save_keypoints", counting_save)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read: the capture is faked")
    seq = pe.load_or_extract(video, cache, progress=False)
    assert seq.num_frames == n and lm.calls == n
    assert lm.max_ahead <= 8 + 2, "decoding ran ahead of pose by more than its queue: frames are being held"
    assert writes == [cache] and cache.is_file()
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]  # no temp file left

    # an interrupted write leaves neither a cache nor a temp file (atomic)
    cache.unlink()
    cap.read_count, lm.calls = 0, 0

    def failing_savez(f, **arrays):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(keypoint_io.np, "savez_compressed", failing_savez)
    with pytest.raises(KeyboardInterrupt):
        pe.load_or_extract(video, cache, progress=False)
    assert list(cache.parent.iterdir()) == []
