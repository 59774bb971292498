"""``rhythmicnet live --preview``: an OpenCV window with the camera frame, the skeleton, a beat flash (bigger on
the downbeat), tempo, bar, latency figures and the tempo mode; keys: space = tap, L = lock, H = hold,
R = release, S = start/stop, Q or Esc = quit.

:func:`draw_preview` is pure (a frame and the figures in, a new BGR image out). :class:`PreviewWindow` shows
it from its own thread (HighGUI calls stay on that thread, the live loop never waits on a redraw) at up to
``fps`` frames a second; the loop hands it the newest frame with :meth:`PreviewWindow.show` and gets key
presses back through ``on_key`` (called on the loop with ``call_soon_threadsafe``). On macOS, where a window
must live on the main thread, it draws on the loop's (main) thread instead, at most ``fps`` times a second
(a few ms each; untested here: no macOS machine). Without a display
(no ``DISPLAY`` / ``WAYLAND_DISPLAY`` on Linux, or HighGUI cannot open a window) :func:`open_preview` says
so in one line and returns None: the performance goes on without the window.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from rhythmicnet.models.skeleton import COCO17_EDGES

__all__ = ["KEYS", "PreviewFigures", "PreviewWindow", "display_available", "draw_preview", "open_preview"]

#: Key code -> control name.
KEYS: dict[int, str] = {ord(" "): "tap", ord("l"): "lock", ord("L"): "lock", ord("h"): "hold", ord("H"): "hold",
                        ord("r"): "release", ord("R"): "release", ord("s"): "startstop", ord("S"): "startstop",
                        ord("q"): "quit", ord("Q"): "quit", 27: "quit"}
#: A beat flash lasts this long (s).
FLASH_S = 0.15
WINDOW = "RhythmicNet"


@dataclass(frozen=True)
class PreviewFigures:
    """What the overlay shows. ``beat``: position in beats since bar 0 at the moment drawn (None in the
    warm-up); ``period``: s per beat; ``state``: warm-up, playing, fading, away, stopped; ``mode``:
    follow, lock, hold, tap; latencies in ms (None: not measured yet)."""

    beat: float | None = None
    period: float = 0.5
    tempo_bpm: float | None = None
    bar: int | None = None
    state: str = "warm-up"
    mode: str = "follow"
    frame_ms: float | None = None
    move_to_midi_ms: float | None = None
    late_events: int = 0


def draw_preview(frame: np.ndarray | None, keypoints: np.ndarray | None, confidence: np.ndarray | None,
                 figures: PreviewFigures, size: tuple[int, int] = (640, 360), min_confidence: float = 0.3
                 ) -> np.ndarray:
    """The preview image: ``frame`` (H, W, 3) BGR uint8 or None (a black canvas of ``size`` = (W, H)), the
    skeleton of ``keypoints`` (17, 2) px in the frame's pixels with ``confidence`` (17,), a beat flash in
    the top right corner (radius 40 px on the downbeat, 22 px on other beats, fading over ``FLASH_S``), and
    the figures as text. Returns a new (H, W, 3) uint8 image; the input is not changed."""
    img = np.zeros((size[1], size[0], 3), np.uint8) if frame is None else frame.copy()
    h, w = img.shape[:2]
    if keypoints is not None and confidence is not None:
        seen = np.asarray(confidence) >= min_confidence
        pts = np.round(np.asarray(keypoints, float)).astype(int)
        for a, b in COCO17_EDGES:
            if seen[a] and seen[b]:
                cv2.line(img, (int(pts[a, 0]), int(pts[a, 1])), (int(pts[b, 0]), int(pts[b, 1])), (0, 255, 255), 2,
                         cv2.LINE_AA)
        for j in np.nonzero(seen)[0]:
            cv2.circle(img, (int(pts[j, 0]), int(pts[j, 1])), 3, (0, 128, 255), -1, cv2.LINE_AA)
    f = figures
    if f.beat is not None and f.beat >= 0:
        k = int(np.floor(f.beat))
        since = (f.beat - k) * f.period
        if since < FLASH_S:
            strength = 1.0 - since / FLASH_S
            radius = 40 if k % 4 == 0 else 22
            colour = (0, 0, 255) if k % 4 == 0 else (255, 255, 255)
            overlay = img.copy()
            cv2.circle(overlay, (w - 55, 55), radius, colour, -1, cv2.LINE_AA)
            cv2.addWeighted(overlay, strength, img, 1.0 - strength, 0.0, dst=img)
    lines = [
        f"{'--' if f.tempo_bpm is None else f'{f.tempo_bpm:5.1f}'} BPM   bar {'--' if f.bar is None else f.bar + 1}",
        f"{f.state}   tempo: {f.mode}",
        f"frame {'--' if f.frame_ms is None else f'{f.frame_ms:.1f}'} ms   move->MIDI "
        f"{'--' if f.move_to_midi_ms is None else f'{f.move_to_midi_ms:.0f}'} ms   late {f.late_events}",
        "space tap  L lock  H hold  R release  S start/stop  Q quit",
    ]
    for i, text in enumerate(lines):
        y = 24 + 22 * i if i < 3 else h - 10
        cv2.putText(img, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(img, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def display_available() -> tuple[bool, str]:
    """Whether a window can be shown here, and why not."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY is not set)"
    return True, ""


class PreviewWindow:
    """The window on its own thread (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_key: Callable[[str], None], fps: float = 30.0,
                 threaded: bool = sys.platform != "darwin") -> None:
        self.loop, self.on_key, self.period, self.threaded = loop, on_key, 1.0 / fps, threaded
        self._latest: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, PreviewFigures] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._opened = threading.Event()
        self.error: str | None = None
        self.shown = 0
        self._last_drawn = 0.0
        if threaded:
            self._thread: threading.Thread | None = threading.Thread(target=self._run, name="preview", daemon=True)
            self._thread.start()
            self._opened.wait(5.0)
        else:
            self._thread = None
            try:
                cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
            except cv2.error as e:
                self.error = str(e).strip().splitlines()[-1]

    def show(self, frame: np.ndarray | None, keypoints: np.ndarray | None, confidence: np.ndarray | None,
             figures: PreviewFigures) -> None:
        """Hand over the newest frame and figures (drawn by the window's thread; older ones are dropped), or,
        without a thread, draw them here at most ``fps`` times a second."""
        if self._thread is None:
            now = self.loop.time()
            if self.error is None and now - self._last_drawn >= self.period:
                self._last_drawn = now
                cv2.imshow(WINDOW, draw_preview(frame, keypoints, confidence, figures))
                self.shown += 1
                key = cv2.waitKey(1)
                if key >= 0 and (key & 0xFF) in KEYS:
                    self.on_key(KEYS[key & 0xFF])
            return
        with self._lock:
            self._latest = (frame, keypoints, confidence, figures)

    def _run(self) -> None:
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
        except cv2.error as e:
            self.error = str(e).strip().splitlines()[-1]
            self._opened.set()
            return
        self._opened.set()
        try:
            while not self._stop.is_set():
                with self._lock:
                    item, self._latest = self._latest, None
                if item is not None:
                    cv2.imshow(WINDOW, draw_preview(*item))
                    self.shown += 1
                key = cv2.waitKey(max(1, int(self.period * 1000)))
                if key >= 0 and (key & 0xFF) in KEYS:
                    self.loop.call_soon_threadsafe(self.on_key, KEYS[key & 0xFF])
        finally:
            cv2.destroyWindow(WINDOW)

    @property
    def ok(self) -> bool:
        return self.error is None and (self._thread is None or self._thread.is_alive())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        elif self.error is None:
            cv2.destroyWindow(WINDOW)


def open_preview(loop: asyncio.AbstractEventLoop, on_key: Callable[[str], None]) -> PreviewWindow | None:
    """The preview window, or None after one line on stderr saying why there is none."""
    ok, why = display_available()
    if ok:
        window = PreviewWindow(loop, on_key)
        if window.ok:
            return window
        why = f"the window could not open ({window.error})"
        window.close()
    print(f"live: --preview: {why}; going on without the window", file=sys.stderr)
    return None
