"""``rhythmicnet bench models`` runs end to end on tiny models and writes every record (figures are read
by people, not asserted here beyond being positive and finite)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from rhythmicnet import cli_bench
from rhythmicnet.export.benchmark import LOADS, MODELS, format_table, goal_checks

REQUIRED = ("model", "backend", "threads", "median_ms", "p99_ms", "cpu_median_ms", "calls_per_s", "load_avg", "load",
            "cpu_p99_ms", "calls", "provider")
FIGURES = ("median_ms", "p99_ms", "cpu_median_ms", "cpu_p99_ms", "calls_per_s")


def test_bench_models_tiny_quick_writes_every_record(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    guard = tmp_path / "user_onnx_cache"  # tiny exports must never land in the user's cache
    env = {**os.environ, "RHYTHMICNET_ONNX_CACHE": str(guard)}
    cmd = [sys.executable, "-m", "rhythmicnet", "bench", "models", "--quick", "--tiny", "--device", "cpu",
           "--seconds", "0.05", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not guard.exists(), "tiny exports went to the user's ONNX cache"
    doc = json.loads(out.read_text())
    records = doc["records"]
    got = {(r["model"], r["backend"], r["load"]) for r in records}
    want = {(m, b, load) for m in MODELS for b in ("torch", "onnx") for load in LOADS}
    assert want <= got, sorted(want - got)
    assert len(records) == len(got)  # one record per model x backend x load
    for r in records:
        assert all(k in r for k in REQUIRED), (r, [k for k in REQUIRED if k not in r])
        for k in FIGURES:
            assert isinstance(r[k], (int, float)) and math.isfinite(r[k]) and r[k] > 0, (k, r)
        assert r["calls"] >= 5 and r["threads"] >= 1 and r["tiny"] is True
        assert math.isfinite(r["load_avg"]) and r["load_avg"] >= 0
        assert r["p99_ms"] >= r["median_ms"]
    assert {r["provider"] for r in records if r["backend"] == "onnx"} == {"CPUExecutionProvider"}
    # the table: a header and one row per record, then the goal checks
    table, _, checks = proc.stdout.partition("goal checks")
    lines = table.strip().splitlines()
    assert lines[0].split()[:3] == ["model", "backend", "load"], proc.stdout
    assert len(lines) == 2 + len(records), proc.stdout
    assert all(ln.split()[0] in MODELS for ln in lines[2:]), proc.stdout
    assert any(ln.strip().startswith(("PASS", "MISS")) for ln in checks.splitlines()), proc.stdout
    assert doc["goal_checks"] and all(isinstance(c, str) for c in doc["goal_checks"])


def test_cli_model_list_matches_the_benchmark() -> None:
    assert cli_bench.MODELS == MODELS


def _rec(model: str, backend: str, load: str, ms: float) -> dict[str, object]:
    return {"model": model, "backend": backend, "load": load, "calls": 10, "median_ms": ms, "p99_ms": ms * 1.5,
            "cpu_median_ms": ms, "cpu_p99_ms": ms * 1.2, "calls_per_s": 1e3 / ms, "threads": 1, "load_avg": 0.5,
            "provider": "CPUExecutionProvider" if backend == "onnx" else "torch (cpu)"}


def test_goal_checks_and_table_from_records() -> None:
    recs = [_rec("beat_step", "torch", "idle", 1.0), _rec("beat_step", "onnx", "idle", 0.4),
            _rec("hits_step", "torch", "idle", 1.0), _rec("hits_step", "onnx", "idle", 0.7),
            _rec("frame_chain", "onnx", "idle", 1.0), _rec("drum_bar", "onnx", "idle", 25.0),
            _rec("music_bar_long", "onnx", "idle", 100.0),
            _rec("beat_step", "onnx", "one_core_busy", 0.5), _rec("drum_bar", "onnx", "one_core_busy", 60.0)]
    lines = goal_checks(recs)
    text = "\n".join(lines)
    assert any(ln.startswith("PASS") and "beat_step" in ln and "0.40x" in ln for ln in lines), text
    assert any(ln.startswith("MISS") and "hits_step" in ln and "0.70x" in ln for ln in lines), text
    assert any(ln.startswith("PASS") and "frame_chain (onnx)" in ln for ln in lines), text
    assert any(ln.startswith("MISS") and "drum_bar (onnx)" in ln for ln in lines), text
    assert any(ln.startswith("PASS") and "music_bar_long (onnx)" in ln for ln in lines), text
    assert any(ln.startswith("MISS") and "under load" in ln and "1 of 2" in ln for ln in lines), text
    table = format_table(recs).splitlines()
    assert len(table) == 2 + len(recs) and "CPU" in table[3] and "ExecutionProvider" not in table[3]


def test_load_goal_is_cpu_time_and_wall_waits_are_only_reported() -> None:
    """Under load the goal compares CPU time: a call that only waited longer for a core (wall 4x, CPU 1x)
    passes; one whose CPU time tripled misses; the wall ratio is printed either way."""
    idle = _rec("frame_chain", "onnx", "idle", 1.0)
    waited = {**_rec("frame_chain", "onnx", "one_core_busy", 1.0), "median_ms": 4.0, "p99_ms": 6.0}
    assert any(ln.startswith("PASS") and "under load" in ln for ln in goal_checks([idle, waited]))
    assert any("wall time busy/idle" in ln and "4.00x" in ln for ln in goal_checks([idle, waited]))
    slower = _rec("frame_chain", "onnx", "one_core_busy", 3.0)
    assert any(ln.startswith("MISS") and "under load" in ln for ln in goal_checks([idle, slower]))
