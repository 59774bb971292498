"""The benchmark scripts run and print their rows (figures are read by people, not asserted here)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_rhythm_prints_both_beat_trackers_per_frame_cost():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_rhythm.py")], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    for row in ("beat tracker forward step", "beat tracker fixed-lag step"):
        line = next((ln for ln in out.splitlines() if row in ln), None)
        assert line is not None, out
        assert re.search(r"median\s+[\d.]+ us\s+p99\s+[\d.]+ us", line), line
