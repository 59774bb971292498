"""``rhythmicnet bench live``: the beat-timing benchmark's scoring and a one-clip run of the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rhythmicnet.models.beat_model import has_beat_model
from rhythmicnet.realtime.live_benchmark import BeatTimingResult, beat_timing_goals, latency_goals, score_sent_grid

ROOT = Path(__file__).resolve().parents[2]


def test_scoring_of_a_sent_grid():
    true = np.arange(0.0, 30.0, 0.5)
    f, err = score_sent_grid(true + 0.02, true)
    assert f == 1.0 and np.allclose(err, 0.02) and len(err) == len(true[true >= 6.0])
    f, err = score_sent_grid(np.arange(0.25, 30.0, 0.5), true)  # off-beat: every beat 250 ms off
    assert f == 0.0 and np.allclose(err, 0.25)
    f, err = score_sent_grid(np.arange(0.0, 30.0, 0.25), true)  # double tempo: half the beats are extra
    assert 0.6 < f < 0.7


def test_goal_checks_say_pass_and_miss():
    good = BeatTimingResult(200, 85.0, 25.0, 60.0, 3.0, [])
    bad = BeatTimingResult(200, 70.0, 35.0, 90.0, 3.0, [])
    assert all(c.startswith("PASS") for c in beat_timing_goals(good))
    assert all(c.startswith("MISS") for c in beat_timing_goals(bad))
    stats = {"per_frame_ms": {"p99_ms": 3.0}, "tempo_bpm": 120.0, "input_fps": 30.0,
             "capture_to_send_ms": {"p99_ms": 190.0}, "late_events": 0, "hanging_notes": 0}
    assert all(c.startswith("PASS") for c in latency_goals(stats))  # 2 frames + a 16th = 192 ms
    stats["capture_to_send_ms"]["p99_ms"] = 200.0
    assert latency_goals(stats)[1].startswith("MISS")


@pytest.mark.skipif(not has_beat_model("full_causal"), reason="shipped causal beat model missing")
def test_bench_live_beats_on_one_clip(tmp_path: Path):
    out = tmp_path / "beats.json"
    run = subprocess.run([sys.executable, "-m", "rhythmicnet", "bench", "live", "--beats", "--clips", "1", "-q",
                          "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "beat timing, 1 held-out clips" in run.stdout and "goal checks" in run.stdout
    doc = json.loads(out.read_text())
    r = doc["beat_timing"]
    assert r["clips"] == 1 and len(r["per_clip"]) == 1 and r["per_clip"][0]["seed"] == 10**9
    # the first held-out clip, 91 BPM: the engine's grid follows it (measured F 97.2, median 32 ms)
    assert r["f_measure"] > 50 and r["median_ms"] < 60
    assert len(doc["goal_checks"]) == 3
