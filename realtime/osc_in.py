"""OSC in (``rhythmicnet live --osc-port P``): keypoints from another program, and performer controls, on the
live loop's own asyncio event loop (a UDP endpoint of the running loop; no thread, no second clock).

Two keypoint layouts are accepted:

* ``/pose`` (this project's): a timestamp (seconds on the sender's clock, any origin, increasing; int,
  float or double: a float32 keeps 1 ms for ~4 hours from the sender's start), then 17 x (x, y, confidence)
  in COCO-17 order (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles; left before right):
  52 numbers. x, y in pixels, or normalised to [0, 1] when ``image_size`` (``--osc-image-size W H``) is
  given.
* ``/mediapipe/pose`` (the layout of cansik's mediapipe-osc bridge, ``pose.py``): a count of poses (0 or
  1), then x, y, z, visibility x 33 mediapipe landmarks per pose, normalised (scaled by ``image_size``,
  default 640 x 480); the first pose is used, mapped to COCO-17 (``skeleton.MEDIAPIPE_TO_COCO17``), z is
  dropped and the visibility is the confidence. A count of 0 is a frame without the dancer. The layout has
  no timestamp: a frame is stamped at arrival.

A frame is stamped on the loop's clock at capture: ``timestamp + offset - pose_latency`` for ``/pose``,
where ``offset`` (the sender's clock to ours) is the smallest ``arrival - timestamp`` seen, allowed to
rise by ``DRIFT`` s per s (the two clocks drift; a packet that once came fast does not hold it forever);
``arrival - pose_latency`` for ``/mediapipe/pose``.

Dropped and counted (``osc_dropped`` in ``--stats``, by reason), never raised: malformed packets (not OSC,
an unknown address, wrong argument count or types, non-finite numbers), out-of-order ``/pose`` packets
(a timestamp not after the last one taken; ``RESYNC_AFTER`` in a row more than ``RESYNC_S`` back mean the
sender restarted, and the clock mapping starts again), and late ones (arrived more than ``max_late_s``
after the fastest). Frames wait in a queue of ``queue_frames``; a newer frame pushes out the oldest
waiting one (counted as ``superseded``, like a camera's dropped frames): a flood of packets costs parsing
time, never memory.

Controls (any arguments ignored): ``/rhythmicnet/tap``, ``/rhythmicnet/lock``, ``/rhythmicnet/hold``,
``/rhythmicnet/release``, ``/rhythmicnet/startstop`` call ``on_control(name, arrival_time)``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rhythmicnet.models.skeleton import MEDIAPIPE_TO_COCO17, NUM_JOINTS
from rhythmicnet.realtime.inputs import InputFrame

__all__ = ["CONTROLS", "MEDIAPIPE_ADDRESS", "MEDIAPIPE_IMAGE_SIZE", "POSE_ADDRESS", "OscCounters", "OscInput",
           "parse_mediapipe", "parse_pose"]

POSE_ADDRESS = "/pose"
MEDIAPIPE_ADDRESS = "/mediapipe/pose"
CONTROLS = ("tap", "lock", "hold", "release", "startstop")
#: Image size normalised mediapipe coordinates are scaled to when none is given.
MEDIAPIPE_IMAGE_SIZE = (640, 480)
MEDIAPIPE_LANDMARKS = 33
#: How fast the clock offset may rise (s per s): a 1000 ppm drift between the clocks is followed.
DRIFT = 1e-3
#: Out-of-order timestamps this far back, this many in a row: the sender restarted its clock.
RESYNC_S, RESYNC_AFTER = 1.0, 5


class _QuietPythonOsc(logging.Filter):
    """python-osc logs a warning on the root logger for every bad type tag or bundle part: under a flood of
    malformed packets that would flood stderr. They are counted here instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pythonosc" not in record.pathname


_QUIET = _QuietPythonOsc()


class Malformed(ValueError):
    """A packet that is not what its address promises."""


#: OSC number type tags -> struct codes (big-endian, no padding between arguments, as OSC lays them out).
_NUMBER_TAGS = {"i": "i", "f": "f", "d": "d", "h": "q"}


@functools.lru_cache(maxsize=64)
def _struct_format(tags: str) -> str | None:
    if any(t not in _NUMBER_TAGS for t in tags):
        return None
    return ">" + "".join(_NUMBER_TAGS[t] for t in tags)


def parse_numbers_message(data: bytes) -> tuple[str, tuple[Any, ...]] | None:
    """A plain OSC message whose arguments are all numbers (what keypoint senders send), parsed with one
    ``struct.unpack`` (~10x faster than python-osc's per-argument parser): (address, arguments); None for
    anything else (bundles, strings, blobs: python-osc parses those). Raises :class:`Malformed`."""
    if not data.startswith(b"/"):
        return None
    end = data.find(b"\0")
    if end < 0:
        raise Malformed("unterminated address")
    try:
        address = data[:end].decode("ascii")
        off = (end + 4) & ~3
        if data[off:off + 1] != b",":
            raise Malformed("no type tags")
        tend = data.find(b"\0", off)
        if tend < 0:
            raise Malformed("unterminated type tags")
        tags = data[off + 1:tend].decode("ascii")
    except UnicodeDecodeError:
        raise Malformed("not ASCII") from None
    fmt = _struct_format(tags)
    if fmt is None:
        return None
    off = (tend + 4) & ~3
    if struct.calcsize(fmt) != len(data) - off:
        raise Malformed("arguments do not match their type tags")
    return address, struct.unpack_from(fmt, data, off)


def _numbers(args: Sequence[Any], n: int) -> np.ndarray:
    if len(args) != n:
        raise Malformed(f"{n} arguments expected, got {len(args)}")
    try:
        v = np.asarray(args, float)
    except (ValueError, TypeError):
        raise Malformed("arguments must be numbers") from None
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise Malformed("non-finite number")
    return v


def parse_pose(args: Sequence[Any], image_size: tuple[int, int] | None = None
               ) -> tuple[float, np.ndarray, np.ndarray]:
    """``/pose`` arguments -> (timestamp s, keypoints (17, 2) px, confidence (17,) in [0, 1]). Raises
    :class:`Malformed`."""
    v = _numbers(args, 1 + 3 * NUM_JOINTS)
    xyc = v[1:].reshape(NUM_JOINTS, 3)
    kp = xyc[:, :2].copy()
    if image_size is not None:
        kp *= np.asarray(image_size, float)
    conf = np.clip(xyc[:, 2], 0.0, 1.0)
    return float(v[0]), kp.astype(np.float32), conf.astype(np.float32)


def parse_mediapipe(args: Sequence[Any], image_size: tuple[int, int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``/mediapipe/pose`` arguments -> (keypoints (17, 2) px, confidence (17,)): the first pose, or zeros
    (no dancer) for a count of 0. Raises :class:`Malformed`."""
    if not args or not isinstance(args[0], (int, float)) or isinstance(args[0], bool):
        raise Malformed("a count of poses expected first")
    count = args[0]
    if count != int(count) or not 0 <= count <= 16:
        raise Malformed(f"bad pose count {count!r}")
    per = 4 * MEDIAPIPE_LANDMARKS
    if len(args) != 1 + int(count) * per:
        raise Malformed(f"{1 + int(count) * per} arguments expected for {int(count)} poses, got {len(args)}")
    if count == 0:
        return np.zeros((NUM_JOINTS, 2), np.float32), np.zeros(NUM_JOINTS, np.float32)
    lm = _numbers(args[1:1 + per], per).reshape(MEDIAPIPE_LANDMARKS, 4)[list(MEDIAPIPE_TO_COCO17)]
    kp = lm[:, :2] * np.asarray(image_size or MEDIAPIPE_IMAGE_SIZE, float)
    return kp.astype(np.float32), np.clip(lm[:, 3], 0.0, 1.0).astype(np.float32)


@dataclass
class OscCounters:
    """Packets received, frames taken, controls, and the drops by reason."""

    packets: int = 0
    frames: int = 0
    controls: int = 0
    malformed: int = 0
    out_of_order: int = 0
    late: int = 0
    superseded: int = 0  # frames pushed out of the queue by newer ones (not in ``dropped``)
    resyncs: int = 0

    @property
    def dropped(self) -> int:
        """Malformed, out-of-order and late packets."""
        return self.malformed + self.out_of_order + self.late

    def as_dict(self) -> dict[str, int]:
        return {"osc_packets": self.packets, "osc_frames": self.frames, "osc_controls": self.controls,
                "osc_dropped": self.dropped, "osc_dropped_malformed": self.malformed,
                "osc_dropped_out_of_order": self.out_of_order, "osc_dropped_late": self.late,
                "osc_superseded": self.superseded, "osc_resyncs": self.resyncs}


@dataclass
class _ClockMap:
    """The sender's clock -> ours: the smallest arrival - timestamp, rising at most ``DRIFT`` s per s."""

    offset: float | None = None
    at: float = 0.0
    last_ts: float | None = None
    back_in_a_row: int = 0


class OscInput:
    """The OSC endpoint (see the module docstring). ``frames_wanted``: keypoint packets become frames (False
    when another input feeds the engine: they are then counted and ignored)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, *, image_size: tuple[int, int] | None = None,
                 pose_latency_s: float = 0.040, max_late_s: float = 0.25, queue_frames: int = 4,
                 on_control: Callable[[str, float], None] | None = None, frames_wanted: bool = True) -> None:
        self.host, self.port = host, port
        self.image_size, self.pose_latency_s, self.max_late_s = image_size, pose_latency_s, max_late_s
        self.on_control, self.frames_wanted = on_control, frames_wanted
        self.counters = OscCounters()
        self.queue: deque[InputFrame] = deque(maxlen=queue_frames)
        self._map = _ClockMap()
        if _QUIET not in logging.getLogger().filters:
            logging.getLogger().addFilter(_QUIET)
        self._arrived: asyncio.Event | None = None
        self._transport: asyncio.DatagramTransport | None = None

    # --- packets (no socket needed: the tests call this directly too) -----------------------------
    def datagram(self, data: bytes, now: float) -> None:
        """One UDP datagram that arrived at clock time ``now``."""
        from pythonosc.osc_packet import OscPacket, ParseError

        self.counters.packets += 1
        try:
            simple = parse_numbers_message(data)
            if simple is not None:
                self.message(simple[0], simple[1], now)
                return
            messages = [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]
        except (Malformed, ParseError, ValueError, IndexError, TypeError, OverflowError):  # incl. python-osc's
            self.counters.malformed += 1
            return
        if not messages:
            self.counters.malformed += 1
        for address, args in messages:
            self.message(address, args, now)

    def message(self, address: str, args: Sequence[Any], now: float) -> None:
        """One OSC message at clock time ``now``."""
        try:
            if address == POSE_ADDRESS:
                ts, kp, conf = parse_pose(args, self.image_size)
                capture = self._stamp(ts, now)
                if capture is not None:
                    self._push(InputFrame(capture, now, kp, conf))
            elif address == MEDIAPIPE_ADDRESS:
                kp, conf = parse_mediapipe(args, self.image_size)
                self._push(InputFrame(now - self.pose_latency_s, now, kp, conf))
            elif address.startswith("/rhythmicnet/") and address.rsplit("/", 1)[1] in CONTROLS:
                self.counters.controls += 1
                if self.on_control is not None:
                    self.on_control(address.rsplit("/", 1)[1], now)
            else:
                raise Malformed(f"unknown address {address}")
        except Malformed:
            self.counters.malformed += 1

    def _stamp(self, ts: float, now: float) -> float | None:
        """Capture time on our clock of a ``/pose`` timestamp arriving at ``now``; None when dropped."""
        m = self._map
        if m.last_ts is not None and ts <= m.last_ts:
            m.back_in_a_row = m.back_in_a_row + 1 if ts < m.last_ts - RESYNC_S else 0
            if m.back_in_a_row < RESYNC_AFTER:
                self.counters.out_of_order += 1
                return None
            self.counters.resyncs += 1  # the sender restarted: map its clock afresh
            m.offset, m.last_ts, m.back_in_a_row = None, None, 0
        m.back_in_a_row = 0
        delay = now - ts
        if m.offset is None:
            m.offset = delay
        else:
            m.offset = min(m.offset + DRIFT * max(0.0, now - m.at), delay)
        m.at = now
        if delay - m.offset > self.max_late_s:
            self.counters.late += 1
            return None
        m.last_ts = ts
        return ts + m.offset - self.pose_latency_s

    def _push(self, frame: InputFrame) -> None:
        if not self.frames_wanted:
            return
        if len(self.queue) == self.queue.maxlen:
            self.counters.superseded += 1
        self.queue.append(frame)
        self.counters.frames += 1
        if self._arrived is not None:
            self._arrived.set()

    # --- the endpoint on the running loop ---------------------------------------------------------------
    async def open(self) -> None:
        """Bind the UDP endpoint on the running loop; an address in use is one line (DeviceError)."""
        from rhythmicnet.errors import DeviceError

        loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        osc = self

        class _Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                osc.datagram(data, loop.time())

        try:
            transport, _ = await loop.create_datagram_endpoint(_Protocol, local_addr=(self.host, self.port))
        except OSError as e:
            raise DeviceError(f"--osc-port {self.port} on {self.host}: cannot listen ({e.strerror or e})") from None
        self._transport = transport  # type: ignore[assignment]

    @property
    def bound_port(self) -> int:
        """The port actually bound (useful with port 0)."""
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    async def stream(self, duration_s: float | None = None, stop: asyncio.Event | None = None
                     ) -> AsyncIterator[InputFrame]:
        """The keypoint frames as they arrive (oldest waiting first), until ``duration_s`` or ``stop``."""
        assert self._arrived is not None, "open() first"
        loop = asyncio.get_running_loop()
        end = math.inf if duration_s is None else loop.time() + duration_s
        while loop.time() < end and not (stop is not None and stop.is_set()):
            if not self.queue:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), timeout=min(0.1, max(0.0, end - loop.time())))
                except TimeoutError:
                    continue
            while self.queue:
                yield self.queue.popleft()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
