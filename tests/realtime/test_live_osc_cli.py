"""``rhythmicnet live --osc-port`` end to end: a synthetic dancer's keypoints sent as OSC over 127.0.0.1 (with a
flood of junk packets) into the real command, MIDI read back from its JACK port, OSC out received. Slow
(a real-time run of ~25 s with model loading)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pythonosc.osc_packet import OscPacket
from pythonosc.udp_client import SimpleUDPClient

from rhythmicnet.models.beat_model import has_beat_model

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.midi, pytest.mark.slow,
              pytest.mark.skipif(not has_beat_model("full_causal"), reason="weights missing")]


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def test_osc_keypoints_in_midi_and_osc_out(jack_server: None, tmp_path: Path) -> None:
    from rhythmicnet.offline.synthetic_dancer import DancerConfig, generate_clip
    from rhythmicnet.realtime.midi_out import _backend

    seq = generate_clip(DancerConfig(observation_model=1), seed=8).sequence
    port_in = _free_udp_port()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.05)
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "rhythmicnet", "live", "--midi-api", "jack", "-q",
                             "--osc-port", str(port_in), "--osc-out", f"127.0.0.1:{rx.getsockname()[1]}",
                             "--duration", "18", "--instrument", "none", "--count-in", "--drum-map", "drum-rack",
                             "--stats", str(stats)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    backend = _backend("jack")
    inp = None
    deadline = time.time() + 90
    while inp is None and time.time() < deadline and proc.poll() is None:
        names = [n for n in backend.get_input_names() if n.endswith(":RhythmicNet")]
        inp = backend.open_input(names[0]) if names else None
        time.sleep(0.05)
    assert inp is not None, proc.stderr.read() if proc.stderr else ""
    time.sleep(1.0)  # the OSC port is bound once the models are loaded
    junk = {"n": 0}

    def send() -> None:
        cli = SimpleUDPClient("127.0.0.1", port_in)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = time.time()
        for t, kp, conf in zip(seq.times, seq.keypoints, seq.confidence, strict=True):
            if proc.poll() is not None:
                break
            time.sleep(max(0.0, t0 + float(t) - time.time()))
            cli.send_message("/pose", [float(t)] + [float(v) for (x, y), c in zip(kp, conf, strict=True)
                                                    for v in (x, y, c)])
            raw.sendto(b"\x00junk", ("127.0.0.1", port_in))
            junk["n"] += 1

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    got, osc = [], []
    while proc.poll() is None:
        got += list(inp.iter_pending())  # type: ignore[attr-defined]
        try:
            osc += [m.message.address for m in OscPacket(rx.recv(65536)).messages]
        except TimeoutError:
            pass
    time.sleep(0.3)
    got += list(inp.iter_pending())  # type: ignore[attr-defined]
    inp.close()  # type: ignore[attr-defined]
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    s = json.loads(stats.read_text())
    notes = [m for m in got if m.type == "note_on" and m.velocity > 0]
    assert len(notes) > 10 and {m.note for m in notes} <= set(range(36, 47))  # the drum rack's pads
    assert s["hanging_notes"] == 0 and s["late_events"] == 0 and s["osc_frames"] > 200
    # one junk packet after each /pose packet: every one that arrived is counted as malformed (the run's
    # first and last moments cut the stream: packets before the port was bound or after the run are lost)
    poses = s["osc_frames"] + s["osc_dropped_out_of_order"] + s["osc_dropped_late"]
    assert abs(s["osc_dropped_malformed"] - poses) <= 2 and s["osc_dropped_malformed"] <= junk["n"]
    assert s["osc_dropped"] == s["osc_dropped_malformed"] + s["osc_dropped_out_of_order"] + s["osc_dropped_late"]
    assert osc.count("/rhythmicnet/beat") > 8 and "/rhythmicnet/bar" in osc
