"""Drum MIDI files: read a file into a DrumGrid and write a grid atomically (I/O kept out of models/).

Errors name the file: a missing or corrupt file is an InputError, an unwritable folder an OutputError.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import mido

from rhythmicnet.errors import InputError
from rhythmicnet.fileio import write_bytes_atomic
from rhythmicnet.models.drum_grid import DRUM_CHANNEL, DrumGrid, grid_from_midi, grid_to_midi


def read_midi_file(path: str | os.PathLike[str], *, num_steps: int | None = None,
                   channel: int | None = DRUM_CHANNEL) -> DrumGrid:
    """Read a drum MIDI file into a grid; a missing, corrupt or format-2 file raises InputError naming it."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: MIDI file not found")
    try:
        mid = mido.MidiFile(p)
    except EOFError as e:
        raise InputError(f"{p}: not a readable MIDI file (it ends early: truncated?)") from e
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise InputError(f"{p}: not a readable MIDI file ({e or type(e).__name__})") from e
    if mid.type == 2:
        # format 2: each track is an independent pattern, not a part played at the same time
        raise InputError(f"{p}: a format-2 MIDI file (independent patterns, not simultaneous tracks); save it as "
                         "format 0 or 1")
    try:
        return grid_from_midi(mid, num_steps=num_steps, channel=channel)
    except ValueError as e:
        raise InputError(f"{p}: {e}") from e


def write_midi_file(grid: DrumGrid, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write the grid as a MIDI file, atomically (OutputError when the folder is not writable)."""
    buf = io.BytesIO()
    grid_to_midi(grid, **kwargs).save(file=buf)
    return write_bytes_atomic(path, buf.getvalue())
