"""OSC in and out: the packet layouts, the drop counters, bounded memory under a flood, and a loopback run
(keypoints in over 127.0.0.1 with a flood of bad packets, MIDI and OSC out) on a real asyncio loop."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from rhythmicnet.models.skeleton import MEDIAPIPE_TO_COCO17
from rhythmicnet.realtime.inputs import event_loop_policy
from rhythmicnet.realtime.osc_in import OscInput, parse_mediapipe, parse_pose
from rhythmicnet.realtime.osc_out import parse_host_port


def dgram(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a, "d" if isinstance(a, float) else None)
    return b.build().dgram


def pose_args(t: float, kp: np.ndarray, conf: np.ndarray) -> list[float]:
    return [t, *np.concatenate([kp, conf[:, None]], 1).ravel().tolist()]


def test_pose_layout_pixels_and_normalised():
    kp = np.arange(34, dtype=float).reshape(17, 2)
    conf = np.linspace(0, 1, 17)
    t, k, c = parse_pose(pose_args(1.5, kp, conf))
    assert t == 1.5 and np.allclose(k, kp) and np.allclose(c, conf)
    _, k2, _ = parse_pose(pose_args(1.5, kp / 100, conf), image_size=(640, 480))
    assert np.allclose(k2, kp / 100 * [640, 480], atol=1e-3)


def test_mediapipe_bridge_layout_maps_33_landmarks_to_coco17():
    lm = np.zeros((33, 4))
    lm[:, 0] = np.arange(33) / 100  # x encodes the landmark index
    lm[:, 1] = 0.5
    lm[:, 3] = 0.9
    kp, conf = parse_mediapipe([1, *lm.ravel().tolist()], image_size=(1000, 800))
    assert np.allclose(kp[:, 0], np.array(MEDIAPIPE_TO_COCO17) * 10) and np.allclose(kp[:, 1], 400)
    assert np.allclose(conf, 0.9)
    kp0, conf0 = parse_mediapipe([0])  # no pose: a frame without the dancer
    assert not conf0.any()


def test_bad_out_of_order_and_late_packets_are_dropped_and_counted():
    osc = OscInput()
    kp, conf = np.full((17, 2), 100.0), np.ones(17)
    osc.datagram(dgram("/pose", *pose_args(10.0, kp, conf)), now=100.0)
    osc.datagram(dgram("/pose", *pose_args(10.1, kp, conf)), now=100.1)
    osc.datagram(dgram("/pose", *pose_args(10.05, kp, conf)), now=100.12)  # out of order
    osc.datagram(dgram("/pose", *pose_args(10.2, kp, conf)), now=100.6)  # 0.4 s later than the fastest: late
    osc.datagram(b"\x00garbage", now=100.3)  # not OSC
    osc.datagram(dgram("/pose", 1.0, 2.0), now=100.3)  # too few arguments
    osc.datagram(dgram("/pose", *pose_args(10.3, kp, conf)[:-1], float("nan")), now=100.3)  # NaN
    osc.datagram(dgram("/pose", *pose_args(10.3, kp, conf)[:-1], "x"), now=100.3)  # a string
    osc.datagram(dgram("/mediapipe/pose", 1, 0.5), now=100.3)  # count says 1 pose, no landmarks
    osc.datagram(dgram("/somewhere/else", 1.0), now=100.3)  # unknown address
    osc.datagram(dgram("/pose", *pose_args(10.3, kp, conf)), now=100.31)
    c = osc.counters
    assert (c.packets, c.frames, c.out_of_order, c.late, c.malformed, c.dropped) == (11, 3, 1, 1, 6, 8)
    frames = list(osc.queue)
    # stamped on our clock at capture: sender time + the fastest offset (90.0 s) - the pose latency
    assert np.allclose([f.capture_time for f in frames], [100.0 - 0.04, 100.1 - 0.04, 100.3 - 0.04])


def test_a_restarted_sender_is_resynced():
    osc = OscInput()
    kp, conf = np.zeros((17, 2)), np.ones(17)
    for i in range(10):
        osc.datagram(dgram("/pose", *pose_args(500.0 + i / 30, kp, conf)), now=10.0 + i / 30)
    for i in range(10):  # the sender restarts its clock from 0
        osc.datagram(dgram("/pose", *pose_args(i / 30, kp, conf)), now=11.0 + i / 30)
    assert osc.counters.resyncs == 1 and osc.counters.out_of_order == 4 and osc.counters.frames == 16


def test_a_flood_does_not_grow_memory_and_controls_arrive():
    taps: list[float] = []
    osc = OscInput(queue_frames=4, on_control=lambda name, t: taps.append(t) if name == "tap" else None)
    kp, conf = np.zeros((17, 2)), np.ones(17)
    for i in range(3000):
        osc.datagram(dgram("/pose", *pose_args(i * 1e-4, kp, conf)), now=5.0 + i * 1e-4)
    osc.datagram(dgram("/rhythmicnet/tap"), now=7.5)
    assert len(osc.queue) == 4 and osc.counters.superseded == 3000 - 4 and osc.counters.dropped == 0
    assert taps == [7.5] and osc.counters.controls == 1


def test_host_port():
    assert parse_host_port("10.0.0.2:9001") == ("10.0.0.2", 9001)
    assert parse_host_port("9001") == ("127.0.0.1", 9001)
    with pytest.raises(Exception, match="HOST:PORT"):
        parse_host_port("here:port")


async def _loopback(seconds: float) -> dict:
    from rhythmicnet.export.backends import graph_factory
    from rhythmicnet.models.beat_model import load_beat_model
    from rhythmicnet.models.live_rhythm import LiveRhythm
    from rhythmicnet.models.rhythm2drum import Rhythm2Drum
    from rhythmicnet.models.rhythm2drum import SamplingConfig as DrumSampling
    from rhythmicnet.offline.synthetic_dancer import generate_clip
    from rhythmicnet.realtime.bar_planner import InlinePlanner
    from rhythmicnet.realtime.engine import LiveEngine
    from rhythmicnet.realtime.midi_clock import MidiClock
    from rhythmicnet.realtime.midi_out import CaptureSink
    from rhythmicnet.realtime.osc_out import OscOut
    from rhythmicnet.realtime.scheduler import Scheduler

    loop = asyncio.get_running_loop()

    class Clock:
        def now(self) -> float:
            return loop.time()

    graphs = graph_factory("onnx")
    sink = CaptureSink()
    sched = Scheduler(sink, Clock())
    engine = LiveEngine(LiveRhythm(load_beat_model("full_causal"), graphs=graphs),
                        InlinePlanner(Rhythm2Drum.load(graphs=graphs).performer(DrumSampling(seed=0))), sched,
                        clock=MidiClock(), events=True)
    taps: list[float] = []
    # late: 0.45 s behind the fastest packet (the held-back ones are 0.6-0.8 s late; a margin for a loaded machine)
    osc = OscInput("127.0.0.1", 0, on_control=lambda name, t: taps.append(t), max_late_s=0.45)
    await osc.open()
    port = osc.bound_port

    received: list[tuple[float, str, list]] = []

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr) -> None:
            for m in OscPacket(data).messages:
                received.append((loop.time(), m.message.address, list(m.message.params)))

    rx, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    out = OscOut("127.0.0.1", rx.get_extra_info("sockname")[1], t0=loop.time())
    tx, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port))
    dance = generate_clip(seed=10)
    seq = dance.sequence
    stop = asyncio.Event()
    sent = {"garbage": 0, "reordered": 0, "late": 0, "lost": 0}

    async def sender() -> None:
        t0, held = loop.time(), []
        rng = np.random.default_rng(0)
        for i, (t, kp, conf) in enumerate(zip(seq.times, seq.keypoints, seq.confidence, strict=True)):
            if t > seconds:
                break
            await asyncio.sleep(max(0.0, t0 + t - loop.time()))
            packet = dgram("/pose", *pose_args(float(t), kp, conf))
            if 6.0 <= t < 6.2:  # held back (a network hiccup), then sent 0.6 s late...
                held.append(packet)
                continue
            if 6.2 <= t < 6.8:  # ...and nothing in between: the late ones are still the newest
                sent["lost"] += 1
                continue
            for p in held:
                tx.sendto(p)
            sent["late"] += len(held)
            held = []
            tx.sendto(packet)
            if i % 40 == 5 and i > 0:  # an earlier frame again: out of order
                tx.sendto(dgram("/pose", *pose_args(float(seq.times[i - 3]), seq.keypoints[i - 3],
                                                    seq.confidence[i - 3])))
                sent["reordered"] += 1
            for _ in range(20):  # the flood: 20 bad packets a frame (~500 a second)
                kind = int(rng.integers(4))
                bad = (bytes(rng.integers(0, 256, int(rng.integers(1, 80)), dtype=np.uint8)) if kind == 0
                       else dgram("/pose", 1.0, 2.0) if kind == 1
                       else dgram("/mediapipe/pose", 2, 0.1) if kind == 2
                       else dgram("/pose", *pose_args(float(t), kp, conf)[:-1], float("inf")))
                if kind == 0 and bad[:1] in (b"/", b"#"):
                    bad = b"\x00" + bad
                tx.sendto(bad)
                sent["garbage"] += 1
            if i == 200:
                tx.sendto(dgram("/rhythmicnet/tap"))
        await asyncio.sleep(0.3)
        stop.set()

    async def poller() -> None:
        while not stop.is_set():
            engine.poll()
            out.add(engine.events)
            out.poll(loop.time())
            await asyncio.sleep(0.002)

    tasks = [asyncio.create_task(sender()), asyncio.create_task(poller())]
    async for f in osc.stream(seconds + 2.0, stop):
        engine.on_frame(f.capture_time, f.keypoints, f.confidence, loop.time())
    await asyncio.gather(*tasks)
    engine.stop()
    osc.close()
    tx.close()
    rx.close()
    return {"engine": engine, "sink": sink, "osc": osc.counters, "sent": sent, "taps": taps, "received": received,
            "t0": out.t0, "clip_frames": int(np.sum(seq.times <= seconds))}


def test_loopback_keypoints_in_midi_and_osc_out_under_a_flood():
    loop = event_loop_policy().new_event_loop()
    try:
        r = loop.run_until_complete(_loopback(9.5))
    finally:
        loop.close()
    c, sent, engine, sink = r["osc"], r["sent"], r["engine"], r["sink"]
    # the counters are right: every bad packet is counted as malformed, every repeat as out of order, every
    # held-back one as late (a loop stalled by a loaded machine may make a few more arrive late), and every
    # other good frame is taken
    assert c.malformed == sent["garbage"] and c.out_of_order == sent["reordered"] and c.late >= sent["late"] > 4
    assert c.frames + c.late == r["clip_frames"] - sent["lost"] and c.controls == 1 and len(r["taps"]) == 1
    assert c.dropped == c.malformed + c.out_of_order + c.late
    # the engine kept time: notes out, none late or hanging, a regular grid
    assert engine.scheduler.late_events == 0 and not sink.held
    assert sum(1 for _, m in sink.messages if m.type == "note_on") > 10
    grid = np.array(engine.stats.beat_grid)
    assert len(grid) >= 6 and np.ptp(np.diff(grid)) < 0.12
    # OSC out: each beat of the grid, at its time; bars every 4 beats; the tempo
    beats = [(t, a) for t, addr, a in r["received"] if addr == "/rhythmicnet/beat"]
    assert [a[0] for _, a in beats] == list(range(len(beats))) and len(beats) >= len(grid) - 1
    late_ms = [(t - r["t0"] - a[1]) * 1000 for t, a in beats]
    # sent when the beat sounds (2 ms polls; a loaded machine stalls the loop now and then)
    assert np.median(late_ms) < 10 and np.percentile(late_ms, 90) < 60, late_ms
    bars = [a[0] for _, addr, a in r["received"] if addr == "/rhythmicnet/bar"]
    assert bars == list(range(len(bars))) and len(bars) == (len(beats) + 3) // 4
    assert any(addr == "/rhythmicnet/tempo" for _, addr, _ in r["received"])
    styles = [a for _, addr, a in r["received"] if addr == "/rhythmicnet/style"]
    assert styles and all(len(a) == 17 for a in styles)
