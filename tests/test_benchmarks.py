"""The benchmark scripts run and print their rows (figures are read by people, not asserted here)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_rhythm_prints_both_beat_trackers_per_frame_cost():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_rhythm.py")], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    for row in ("beat tracker forward step", "beat tracker fixed-lag step"):
        line = next((ln for ln in out.splitlines() if row in ln), None)
        assert line is not None, out
        assert re.search(r"median\s+[\d.]+ us\s+p99\s+[\d.]+ us", line), line


@pytest.mark.slow
def test_bench_long_prints_peak_memory_and_stage_times(tmp_path):
    """A 15 s clip through benchmarks/bench_long.py (the 1/10/60-minute runs are for people to read)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_long.py"), "--minutes", "0.25",
                          "--instrument", "none", "--work", str(tmp_path)], capture_output=True, text=True,
                         timeout=600, check=True).stdout
    assert re.search(r"-- 0.25 min: 15 s, \d+ beats, \d+ bars; peak RSS [\d.]+ GB", out), out
    for stage in ("rhythm", "synthesis", "video", "plot"):
        assert re.search(rf"^\s+{stage}\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    assert "goal: peak RSS <= 2 GB at every length: met" in out
    assert "0.25 min outputs complete: yes" in out
