"""Drums + piano/guitar as one MIDI file (I/O kept out of models/).

A type-1 file: track 0 the drums on General MIDI channel 10 (with the tempo and 4/4 meta events of
the drum grid writer), track 1 the instrument on channel 1 with its GM program. Notes sit on the
16th grid of the bars; a note that would overlap the next note of the same pitch is shortened so
every note-on has its own note-off.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import mido

from rhythmicnet.fileio import write_bytes_atomic
from rhythmicnet.models.drum_grid import DEFAULT_TICKS_PER_BEAT, DrumGrid, grid_to_midi
from rhythmicnet.models.midi_messages import INSTRUMENT_CHANNEL  # the channels, defined once
from rhythmicnet.models.remi import STEPS_PER_BAR, BarNote

__all__ = ["instrument_track", "music_midi", "write_music_midi", "INSTRUMENT_CHANNEL"]

STEPS_PER_BEAT = 4


def instrument_track(bars: Sequence[Sequence[BarNote]], *, program: int, name: str,
                     ticks_per_beat: int = DEFAULT_TICKS_PER_BEAT, channel: int = INSTRUMENT_CHANNEL) -> mido.MidiTrack:
    """Bars of notes (bar i starts at 16 * i steps) -> a MIDI track with a program change first."""
    if not 0 <= program <= 127:
        raise ValueError(f"GM program must lie in 0..127, got {program}")
    q = ticks_per_beat // STEPS_PER_BEAT
    notes = sorted((i * STEPS_PER_BAR + n.step, n.pitch, n.velocity, n.duration)
                   for i, bar in enumerate(bars) for n in bar)
    # Shorten a note that would still sound when its pitch strikes again.
    next_on: dict[int, int] = {}
    events: list[tuple[int, int, int, int]] = []  # (tick, 0 off / 1 on, pitch, velocity)
    for step, pitch, vel, dur in reversed(notes):
        on = step * q
        off = on + max(1, dur) * q
        if pitch in next_on:
            off = min(off, next_on[pitch])
        next_on[pitch] = on
        if off > on:
            events += [(on, 1, pitch, int(min(127, max(1, vel)))), (off, 0, pitch, 0)]
    events.sort()
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    now = 0
    for tick, kind, pitch, vel in events:
        track.append(mido.Message("note_on" if kind else "note_off", channel=channel, note=pitch,
                                  velocity=vel, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def music_midi(drums: DrumGrid, bars: Sequence[Sequence[BarNote]], *, program: int, instrument: str,
               ticks_per_beat: int = DEFAULT_TICKS_PER_BEAT) -> mido.MidiFile:
    """A two-track file: the drums (tempo from the grid) and the instrument part."""
    drum_file = grid_to_midi(drums, ticks_per_beat=ticks_per_beat)
    drum_track = drum_file.tracks[0]
    drum_track.insert(0, mido.MetaMessage("track_name", name="drums", time=0))
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(drum_track)
    mid.tracks.append(instrument_track(bars, program=program, name=instrument, ticks_per_beat=ticks_per_beat))
    return mid


def write_music_midi(path: str | os.PathLike[str], drums: DrumGrid, bars: Sequence[Sequence[BarNote]], *,
                     program: int, instrument: str) -> Path:
    """Write :func:`music_midi` atomically."""
    buf = io.BytesIO()
    music_midi(drums, bars, program=program, instrument=instrument).save(file=buf)
    return write_bytes_atomic(path, buf.getvalue())
