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


@pytest.mark.slow
def test_bench_long_sixty_minutes_in_bounded_memory_and_linear_work(tmp_path):
    """The benchmark itself (issue 17; 30-60 min on 2 cores): a 60-minute clip renders completely under 2 GB,
    and its CPU time is at most 70x that of the 1-minute clip (bracketed: rendered before and after)."""
    js = tmp_path / "long.json"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_long.py"), "--minutes", "1", "60",
                          "--bracket", "--work", str(tmp_path), "--json", str(js)], capture_output=True, text=True,
                         timeout=3 * 3600, check=True).stdout
    assert "goal: peak RSS <= 2 GB at every length: met" in out
    assert "goal: 60 min takes" in out and re.search(r"60 min takes [\d.]+x the 1 min CPU time .*: met", out), out
    assert out.count("outputs complete: yes") == 3, out
