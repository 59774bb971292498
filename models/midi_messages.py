"""The MIDI vocabulary of the project, defined once: channels, the drum note map, and the messages every
sink writes (MIDI files offline, the live port, the recorder).

Channels are mido's 0-based numbers: the drums on General MIDI channel 10 (``DRUM_CHANNEL`` 9), the
accompaniment on channel 1 (``INSTRUMENT_CHANNEL`` 0) with its General MIDI program. Drum classes play
their canonical General MIDI notes (``DRUM_NOTES``, the GrooVAE classes of :mod:`.drum_grid`).
"""

from __future__ import annotations

from collections.abc import Iterable

import mido

from rhythmicnet.models.drum_grid import DRUM_CHANNEL, OUTPUT_PITCHES

__all__ = ["DRUM_CHANNEL", "DRUM_NOTES", "INSTRUMENT_CHANNEL", "all_notes_off", "note_off", "note_on",
           "program_change"]

INSTRUMENT_CHANNEL = 0
#: General MIDI note of each of the 9 drum classes (kick, snare, closed/open hi-hat, toms, crash, ride).
DRUM_NOTES: tuple[int, ...] = OUTPUT_PITCHES

#: Controller numbers of the channel-mode messages sent on every stop.
ALL_SOUND_OFF = 120
ALL_NOTES_OFF = 123


def note_on(channel: int, note: int, velocity: int) -> mido.Message:
    """A note-on (velocity clipped to 1..127: a note-on of velocity 0 means note-off)."""
    return mido.Message("note_on", channel=channel, note=int(note), velocity=max(1, min(127, int(velocity))))


def note_off(channel: int, note: int) -> mido.Message:
    return mido.Message("note_off", channel=channel, note=int(note), velocity=0)


def program_change(channel: int, program: int) -> mido.Message:
    return mido.Message("program_change", channel=channel, program=int(program))


def all_notes_off(channels: Iterable[int] = range(16)) -> list[mido.Message]:
    """All Notes Off and All Sound Off on each channel: what a sink sends when it stops, so no note hangs
    in a synth that ignores the note-offs it never got."""
    return [mido.Message("control_change", channel=c, control=cc, value=0)
            for c in channels for cc in (ALL_NOTES_OFF, ALL_SOUND_OFF)]
