"""``rhythmicnet live`` end to end on a real MIDI port (JACK's dummy driver), read back by the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mido
import pytest

from rhythmicnet.models.beat_model import has_beat_model

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.midi, pytest.mark.skipif(not has_beat_model("full_causal"), reason="weights missing")]


def _start(args: list[str], port: str) -> tuple[subprocess.Popen, object]:
    from rhythmicnet.realtime.midi_out import _backend

    proc = subprocess.Popen([sys.executable, "-m", "rhythmicnet", "live", "--midi-api", "jack", "-q", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    backend = _backend("jack")
    deadline = time.time() + 60
    while time.time() < deadline:
        names = [n for n in backend.get_input_names() if n.endswith(":" + port)]
        if names:
            return proc, backend.open_input(names[0])
        if proc.poll() is not None:
            pytest.fail(f"live exited early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the virtual port never appeared")


def _collect(inp: object, proc: subprocess.Popen, timeout: float) -> list[mido.Message]:
    got: list[mido.Message] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        got += list(inp.iter_pending())  # type: ignore[attr-defined]
        if proc.poll() is not None:
            time.sleep(0.3)
            got += list(inp.iter_pending())  # type: ignore[attr-defined]
            break
        time.sleep(0.01)
    return got


def _no_hanging(got: list[mido.Message]) -> None:
    held: set[tuple[int, int]] = set()
    for m in got:
        if m.type == "note_on" and m.velocity > 0:
            held.add((m.channel, m.note))
        elif m.type in ("note_off", "note_on"):
            held.discard((m.channel, m.note))
    assert not held, held
    assert any(m.type == "control_change" and m.control == 123 for m in got)  # all notes off at the end


def test_live_video_loop_into_a_virtual_port(jack_server: None, tmp_path: Path) -> None:
    stats, record = tmp_path / "stats.json", tmp_path / "played.mid"
    # 20 s: on this real clip the causal tracker's first grid came at 5.5-8.5 s in the keypoint replay, but at
    # 10.2 s (85 BPM) in one CI run; 15 s then left exactly 8 grid beats
    proc, inp = _start(["--video", "offline/examples/jumping_jacks.mp4", "--loop", "--duration", "20",
                        "--stats", str(stats), "--record", str(record)], "RhythmicNet")
    got = _collect(inp, proc, 90)
    inp.close()  # type: ignore[attr-defined]
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    notes = [m for m in got if m.type == "note_on" and m.velocity > 0]
    assert len(notes) > 20 and {m.channel for m in notes} == {0, 9}  # piano and drums
    _no_hanging(got)
    s = json.loads(stats.read_text())
    assert s["late_events"] == 0 and s["hanging_notes"] == 0 and s["frames"] > 300
    # the frame loop's priority is reported: real-time where this machine permits it (see test_process_priority)
    assert s["frame_loop_priority"] in ("normal", "SCHED_FIFO 10")
    assert s["notes_sent"] == len(notes)
    for stage in ("rhythm", "engine", "plan", "schedule"):
        assert s["stages"][stage]["p99_ms"] >= s["stages"][stage]["median_ms"] >= 0
    assert 0 <= s["pose_ms"]["count"] - s["input_frames"] <= 1  # pose on every frame
    # the grid starts within 14 s and, once started, is sent beat after beat until the stop: no beat missing
    # or doubled. Following, the next beat moves to the dancer's nearest predicted beat (at most half a beat:
    # test_follow_moves_the_next_beat_to_the_dancers_nearest_beat), so every interval lies within half and
    # 1.5 periods of the tempo range (60-180 BPM by default, 5 % for the predictor's drift); how much the
    # tracker's tempo and phase wander on this clip is the beat benchmarks' business, not this test's
    grid = s["beat_grid"]
    assert len(grid) > 8 and grid[0] < 14.0, grid
    gaps = [round(b - a, 4) for a, b in zip(grid, grid[1:], strict=False)]
    shown = " ".join(f"{g:.3f}" for g in gaps)  # a string: pytest cuts a long list's repr short
    assert all(0.5 * 60 / 180 * 0.95 < g < 1.5 * 60 / 60 * 1.05 for g in gaps), shown
    assert 60 < 60 / sorted(gaps)[len(gaps) // 2] < 180, shown
    assert grid[-1] > 20.0 - 2 * max(gaps), grid
    # MIDI clock: Start with bar 0, pulses, Stop before the final all-notes-off
    types = [m.type for m in got]
    assert types.count("start") == 1 and types.count("stop") == 1 and types.count("clock") > 24 * 8
    # --record: the notes played, on a tempo map whose beats are the grid the engine sent
    rec = mido.MidiFile(str(record))
    rec_notes = [m for m in rec if m.type == "note_on" and m.velocity > 0]
    assert len(rec_notes) == len(notes)
    tempi = [m.tempo for m in rec.tracks[0] if m.type == "set_tempo"]
    # one Set Tempo per sent grid beat holding the interval to the next (the stats' grid is rounded to 0.1 ms)
    assert len(tempi) >= len(gaps)
    assert all(abs(t / 1e6 - g) < 3e-4 for t, g in zip(tempi[-len(gaps):], gaps, strict=True)), (tempi, gaps)


def test_ctrl_c_mid_run_leaves_no_hanging_note(jack_server: None, tmp_path: Path,
                                                process_report: Callable[[int], str]) -> None:
    from rhythmicnet.offline.keypoint_io import save_keypoints
    from rhythmicnet.offline.synthetic_dancer import DancerConfig, generate_clip

    kp = tmp_path / "dancer.npz"
    # generator 1.x's moves and pose noise: the shipped weights were trained on them (with 2.0's footwork the
    # first note can come after the 30 s clip has ended, and the run ends by itself before the interrupt)
    save_keypoints(kp, generate_clip(DancerConfig(observation_model=1, noise_frac=(0.0005, 0.005), dance_vocabulary=1),
                                     seed=8).sequence)
    # --loop: the run never ends by itself, so the status says whether the interrupt stopped it (without it
    # a late first note left the clip's end within the 0.5 s below: status 0, a flaky failure)
    proc, inp = _start(["--keypoints", str(kp), "--loop"], "RhythmicNet")
    got: list[mido.Message] = []
    deadline = time.time() + 60
    while time.time() < deadline and not any(m.type == "note_on" for m in got):
        got += list(inp.iter_pending())  # type: ignore[attr-defined]
        time.sleep(0.01)
    assert any(m.type == "note_on" for m in got), "no note before the interrupt"
    time.sleep(0.5)  # mid-bar, notes held
    proc.send_signal(signal.SIGINT)
    got += _collect(inp, proc, 20)
    inp.close()  # type: ignore[attr-defined]
    try:
        assert proc.wait(20) == 130
    finally:
        if proc.poll() is None:
            report = process_report(proc.pid)  # where it is stuck, for a failure that does not reproduce
            proc.kill()
            pytest.fail(f"live still running 40 s after SIGINT:\n{report}")
    _no_hanging(got)


def test_a_video_with_no_decodable_frame_stops_with_one_line(jack_server: None, tmp_path: Path) -> None:
    """The container opens but no frame decodes (the first 2 % of the bundled clip): one line, status 2."""
    clip = ROOT / "offline" / "examples" / "jumping_jacks.mp4"
    bad = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    bad.write_bytes(data[: len(data) // 50])
    run = subprocess.run([sys.executable, "-m", "rhythmicnet", "live", "--video", str(bad), "--midi-api", "jack",
                          "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("rhythmicnet:")]
    assert run.returncode == 2, run.stderr[-2000:]
    assert len(lines) == 1 and ("no frame could be decoded" in lines[0] or "cannot be decoded" in lines[0])
    assert "Traceback" not in run.stderr
