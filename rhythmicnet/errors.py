"""User-facing errors: the CLI prints ``str(error)`` as one line and exits non-zero, no traceback.

Raise these for problems a performer or editor can fix (a missing file, a video with no person,
an unwritable folder, a corrupt checkpoint). Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class RhythmicNetError(Exception):
    """A problem with the user's input or environment; the message names the file and the problem."""

    exit_code = 2


class InputError(RhythmicNetError):
    """An input file is missing, unreadable or not what it should be."""


class NoPersonError(InputError):
    """No person was found in any frame of the input."""


class OutputError(RhythmicNetError):
    """An output folder or file cannot be written."""


class WeightsError(RhythmicNetError):
    """A weights/checkpoint file is missing or corrupt."""


class DeviceError(RhythmicNetError):
    """A MIDI port, camera or audio device is missing or cannot be opened."""


class FFmpegNotFoundError(RhythmicNetError):
    """The ffmpeg or ffprobe executable is not on PATH."""
