"""The performer's side of ``rhythmicnet live``, around the engine and on its loop: OSC in (keypoints and
controls, :mod:`.osc_in`), OSC out (:mod:`.osc_out`), Ableton Link (:mod:`.link_sync`) and the preview
window (:mod:`.preview`), with one dispatcher for the controls they share.

Controls (OSC ``/rhythmicnet/<name>``, preview keys): ``tap`` (the engine's tap tempo at the moment it
arrived), ``lock`` and ``hold`` (toggles: a second press releases), ``release``, ``startstop``, and
``quit`` (preview only: ends the run like Ctrl-C). :class:`PerformerIO` owns none of the timing: the live
loop calls :meth:`~PerformerIO.poll` from its poller and :meth:`~PerformerIO.frame` after each frame.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from rhythmicnet.realtime.engine import LiveEngine
from rhythmicnet.realtime.inputs import InputFrame

__all__ = ["PerformerIO", "PerformerOptions"]


@dataclass(frozen=True)
class PerformerOptions:
    osc_port: int | None = None
    osc_host: str = "127.0.0.1"
    osc_image_size: tuple[int, int] | None = None
    osc_frames: bool = False  # OSC keypoints are the input
    pose_latency_s: float = 0.040
    osc_out: tuple[str, int] | None = None
    link: bool = False
    preview: bool = False


class PerformerIO:
    def __init__(self, opts: PerformerOptions, engine: LiveEngine, t0: float) -> None:
        self.opts, self.engine, self.t0 = opts, engine, t0
        self.quit = asyncio.Event()
        self.osc_in: Any = None
        self.osc_out: Any = None
        self.link: Any = None
        self.preview: Any = None
        self.controls: dict[str, int] = {}

    async def open(self) -> None:
        """Bind OSC in, open OSC out, join Link, open the preview (each only when asked for)."""
        loop = asyncio.get_running_loop()
        o = self.opts
        if o.osc_port is not None:
            from rhythmicnet.realtime.osc_in import OscInput

            self.osc_in = OscInput(o.osc_host, o.osc_port, image_size=o.osc_image_size,
                                   pose_latency_s=o.pose_latency_s, on_control=self.control,
                                   frames_wanted=o.osc_frames)
            await self.osc_in.open()
        if o.osc_out is not None:
            from rhythmicnet.realtime.osc_out import OscOut

            self.osc_out = OscOut(*o.osc_out, t0=self.t0)
        if o.link:
            from rhythmicnet.realtime.link_sync import LinkSync, open_link

            self.link = LinkSync(open_link())
        if o.preview:
            from rhythmicnet.realtime.preview import open_preview

            self.preview = open_preview(loop, lambda name: self.control(name, loop.time()))

    def control(self, name: str, now: float) -> None:
        """One control at clock time ``now`` (see the module docstring)."""
        self.controls[name] = self.controls.get(name, 0) + 1
        e = self.engine
        if name == "tap":
            e.tap(now)
        elif name in ("lock", "hold"):
            e.toggle(name)
        elif name == "release":
            e.release()
        elif name == "startstop":
            e.start_stop(now)
        elif name == "quit":
            self.quit.set()

    def poll(self, now: float) -> None:
        """From the loop's poller: OSC events due, Link's tempo and phase."""
        if self.osc_out is not None and self.engine.events is not None:
            self.osc_out.add(self.engine.events)
            self.osc_out.poll(now)
        if self.link is not None:
            self.link.update(now, self.engine.origin, self.engine.period)

    def frame(self, f: InputFrame, now: float, frame_ms: float | None, move_ms: float | None, late: int) -> None:
        """After each input frame: the preview's newest picture."""
        if self.preview is None:
            return
        from rhythmicnet.realtime.preview import PreviewFigures

        s = self.engine.status(now)
        self.preview.show(f.image, f.keypoints, f.confidence,
                          PreviewFigures(s.beat, self.engine.period, s.tempo_bpm, s.bar, s.state, s.mode, frame_ms,
                                         move_ms, late))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"controls": dict(self.controls)}
        if self.osc_in is not None:
            out.update(self.osc_in.counters.as_dict())
        if self.osc_out is not None:
            out["osc_sent"] = self.osc_out.sent
        if self.link is not None:
            out["link_peers"] = self.link.peers
            out["link_tempo_updates"] = self.link.tempo_updates
            out["link_phase_updates"] = self.link.phase_updates
        if self.preview is not None:
            out["preview_frames"] = self.preview.shown
        return out

    def close(self) -> None:
        if self.osc_in is not None:
            self.osc_in.close()
        if self.link is not None:
            self.link.close()
        if self.preview is not None:
            self.preview.close()


def median_or_none(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None
