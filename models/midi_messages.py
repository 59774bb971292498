"""The MIDI vocabulary of the project, defined once: channels, the drum note map, and the messages every
sink writes (MIDI files offline, the live port, the recorder).

Channels are mido's 0-based numbers: the drums on General MIDI channel 10 (``DRUM_CHANNEL`` 9), the
accompaniment on channel 1 (``INSTRUMENT_CHANNEL`` 0) with its General MIDI program. Drum classes play
their canonical General MIDI notes (``DRUM_NOTES``, the GrooVAE classes of :mod:`.drum_grid`).

Live play can send them elsewhere (``rhythmicnet live --drum-map``): a :class:`DrumMap` gives each drum class
a note, and the drums, the accompaniment and the count-in clicks a channel. Two ship, by name: ``gm``
(General MIDI: the notes above on channel 10, the default) and ``drum-rack`` (one class per pad from C1 =
MIDI 36, the bottom-left pad first, in class order, the count-in on the next two pads: the default 4x4 C1
layout of an Ableton Live Drum Rack, which Push, Maschine and MPC-style pad grids share).
:func:`load_drum_map` reads either name or a JSON file in the schema :meth:`DrumMap.to_json` writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mido

from rhythmicnet.models.drum_grid import CLASS_NAMES, DRUM_CHANNEL, OUTPUT_PITCHES

__all__ = ["COUNT_IN_NOTES", "DRUM_CHANNEL", "DRUM_MAPS", "DRUM_NOTES", "INSTRUMENT_CHANNEL", "DrumMap",
           "all_notes_off", "load_drum_map", "note_off", "note_on", "program_change"]

INSTRUMENT_CHANNEL = 0
#: General MIDI note of each of the 9 drum classes (kick, snare, closed/open hi-hat, toms, crash, ride).
DRUM_NOTES: tuple[int, ...] = OUTPUT_PITCHES

#: Count-in clicks: General MIDI hi wood block on the first beat of the bar, low wood block on the others.
COUNT_IN_NOTES: tuple[int, int] = (76, 77)


@dataclass(frozen=True)
class DrumMap:
    """Where live notes go: ``notes`` (9,) the MIDI note of each drum class (``drum_grid.CLASS_NAMES`` order),
    ``count_in`` the (first beat, other beats) click notes; channels are mido's 0-based numbers."""

    name: str
    notes: tuple[int, ...]
    drum_channel: int = DRUM_CHANNEL
    instrument_channel: int = INSTRUMENT_CHANNEL
    count_in: tuple[int, int] = COUNT_IN_NOTES

    def __post_init__(self) -> None:
        if len(self.notes) != len(CLASS_NAMES):
            raise ValueError(f"a drum map needs {len(CLASS_NAMES)} notes ({', '.join(CLASS_NAMES)})")
        if not all(0 <= n <= 127 for n in (*self.notes, *self.count_in)):
            raise ValueError("drum map notes must be MIDI notes 0-127")
        if not all(0 <= c <= 15 for c in (self.drum_channel, self.instrument_channel)):
            raise ValueError("drum map channels must be 1-16")

    def to_json(self) -> str:
        """The file form (channels 1-16, as DAWs number them)."""
        return json.dumps({"name": self.name, "drum_channel": self.drum_channel + 1,
                           "instrument_channel": self.instrument_channel + 1,
                           "notes": dict(zip(CLASS_NAMES, self.notes, strict=True)),
                           "count_in": list(self.count_in)}, indent=1) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any], name: str = "custom") -> DrumMap:
        """From the file form; ``notes`` may name a subset of the classes (the rest keep General MIDI)."""
        unknown = set(data) - {"name", "drum_channel", "instrument_channel", "notes", "count_in"}
        notes = data.get("notes", {})
        if unknown or not isinstance(notes, dict) or set(notes) - set(CLASS_NAMES):
            bad = sorted(unknown | (set(notes) - set(CLASS_NAMES) if isinstance(notes, dict) else {"notes"}))
            raise ValueError(f"unknown keys {', '.join(map(str, bad))} (notes are named {', '.join(CLASS_NAMES)})")
        return cls(str(data.get("name", name)),
                   tuple(int(notes.get(c, n)) for c, n in zip(CLASS_NAMES, OUTPUT_PITCHES, strict=True)),
                   int(data.get("drum_channel", DRUM_CHANNEL + 1)) - 1,
                   int(data.get("instrument_channel", INSTRUMENT_CHANNEL + 1)) - 1,
                   tuple(int(n) for n in data.get("count_in", COUNT_IN_NOTES)))  # type: ignore[arg-type]


#: The shipped maps (``--drum-map NAME``).
DRUM_MAPS: dict[str, DrumMap] = {
    "gm": DrumMap("gm", DRUM_NOTES),
    # count-in clicks on the next two pads (A1, A#1)
    "drum-rack": DrumMap("drum-rack", tuple(range(36, 36 + len(CLASS_NAMES))), count_in=(45, 46)),
}


def load_drum_map(name_or_path: str) -> DrumMap:
    """A shipped map by name, or a JSON file (see :meth:`DrumMap.to_json`). Raises ValueError with one line
    for a file that is missing or wrong."""
    if name_or_path in DRUM_MAPS:
        return DRUM_MAPS[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (shipped maps: {', '.join(DRUM_MAPS)})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return DrumMap.from_json(data, path.stem)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a drum map ({str(e).splitlines()[0]})") from None


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
