"""``live --record FILE.mid``: what was played, as a Standard MIDI File with the dancer's tempo map.

:class:`RecordingSink` passes every message on to the real sink and keeps the channel messages with the
clock time they were sent at. :func:`performance_to_midi` turns them into a type-0 file whose ticks follow
the beat grid the engine sent: quarter note k of the grid sits at tick ``k * ppq``, and a Set Tempo event
at each grid beat holds the interval to the next one, so in a DAW the notes land on its bars and beats
(and the file plays back at the times they were sent). Times before the first or after the last grid
beat use the first or last interval. Real-time messages (clock, Start, Stop) are not written.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import mido
import numpy as np

from rhythmicnet.realtime.midi_out import MidiSink

__all__ = ["RecordingSink", "performance_to_midi", "seconds_to_ticks"]

PPQ = 480


def seconds_to_ticks(times: np.ndarray, beat_grid: np.ndarray, ppq: int = PPQ) -> np.ndarray:
    """Clock times (s) -> ticks on the grid (quarter note k at ``beat_grid[k]``), linear between grid beats
    and extrapolated by the first / last interval outside them. Shapes: (N,), (K,) with K >= 2 -> (N,)."""
    g = np.asarray(beat_grid, float)
    t = np.asarray(times, float)
    beats = np.interp(t, g, np.arange(len(g), dtype=float))
    first, last = g[1] - g[0], g[-1] - g[-2]
    beats = np.where(t < g[0], (t - g[0]) / first, beats)
    beats = np.where(t > g[-1], len(g) - 1 + (t - g[-1]) / last, beats)
    return np.round(beats * ppq).astype(np.int64)


def performance_to_midi(messages: Sequence[tuple[float, mido.Message]], beat_grid: Sequence[float],
                        ppq: int = PPQ, default_bpm: float = 120.0) -> mido.MidiFile:
    """Sent channel messages (time s, message) and the sent beat grid (s) -> a type-0 MIDI file (see the
    module docstring). With fewer than two grid beats the file runs at ``default_bpm`` from the first
    message."""
    msgs = [(t, m) for t, m in messages if not m.is_realtime and not m.is_meta]
    grid = np.asarray(sorted(beat_grid), float)
    if len(grid) < 2:
        t0 = msgs[0][0] if msgs else 0.0
        grid = t0 + np.arange(2) * 60.0 / default_bpm
    # the file starts at the earlier of the first message and the first grid beat, on a whole beat
    start = min([grid[0]] + [t for t, _ in msgs])
    start_tick = int(np.floor(seconds_to_ticks(np.array([start]), grid, ppq)[0] / ppq)) * ppq
    events: list[tuple[int, int, mido.MetaMessage | mido.Message]] = []
    for k in range(len(grid) - 1):
        events.append((k * ppq - start_tick, 0, mido.MetaMessage("set_tempo", tempo=int(round((grid[k + 1] - grid[k])
                                                                                             * 1e6)))))
    if start_tick < 0:  # before the first grid beat: the first interval
        events.append((0, 0, mido.MetaMessage("set_tempo", tempo=int(round((grid[1] - grid[0]) * 1e6)))))
    ticks = seconds_to_ticks(np.array([t for t, _ in msgs]), grid, ppq) if msgs else np.zeros(0, np.int64)
    for tick, (_, m) in zip(ticks.tolist(), msgs, strict=True):
        events.append((int(tick) - start_tick, 1, m))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    now = 0
    for tick, _, m in events:
        tick = max(tick, now)
        track.append(m.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    out = mido.MidiFile(type=0, ticks_per_beat=ppq)
    out.tracks.append(track)
    return out


class RecordingSink(MidiSink):
    """Passes every message to ``inner`` and keeps the channel messages with their send times."""

    def __init__(self, inner: MidiSink) -> None:
        super().__init__()
        self.inner = inner
        self.messages: list[tuple[float, mido.Message]] = []
        self.name = getattr(inner, "name", None)

    def _write(self, message: mido.Message, time: float | None) -> None:
        self.inner.send(message, time)
        if time is not None and not message.is_realtime:
            self.messages.append((time, message))

    def _close(self) -> None:
        self.inner.close()

    def write(self, path: str | Path, beat_grid: Sequence[float]) -> Path:
        """Write what was played to ``path`` (atomically)."""
        from rhythmicnet.fileio import write_bytes_atomic

        buf = io.BytesIO()
        performance_to_midi(self.messages, beat_grid).save(file=buf)
        return write_bytes_atomic(path, buf.getvalue())
