"""Live MIDI outputs: a real port (python-rtmidi through mido) or a capture sink, both tracking held notes
so that stopping never leaves a note hanging.

* :class:`MidiPortSink` opens an existing output port by name (``--midi-port``), or by default creates a
  virtual output port named ``RhythmicNet`` that a DAW connects to (ALSA on Linux, JACK with
  ``api="jack"``, CoreMIDI on macOS). Windows has no virtual ports: the error says so and lists the ports.
* :class:`CaptureSink` keeps ``(time, message)`` pairs in memory: the deterministic tests' sink.

Every sink sends, on :meth:`~MidiSink.close` (also as a context manager, so on errors and Ctrl-C), a
note-off for each note still held and then All Notes Off / All Sound Off on every channel it used.
Messages come from :mod:`rhythmicnet.models.midi_messages` (the channels and note maps, defined once).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import mido

from rhythmicnet.errors import DeviceError
from rhythmicnet.models.midi_messages import all_notes_off, note_off

__all__ = ["API_BACKENDS", "CaptureSink", "MidiPortSink", "MidiSink", "list_output_ports"]

#: ``--midi-api`` -> mido's rtmidi backend name (None: the platform's default API).
API_BACKENDS = {"auto": None, "alsa": "mido.backends.rtmidi/LINUX_ALSA", "jack": "mido.backends.rtmidi/UNIX_JACK",
                "coremidi": "mido.backends.rtmidi/MACOSX_CORE", "winmm": "mido.backends.rtmidi/WINDOWS_MM"}
DEFAULT_PORT_NAME = "RhythmicNet"
#: Time given to the MIDI server to deliver the last messages (the all-notes-off) before the port closes.
CLOSE_GRACE_S = 0.1


def _backend(api: str) -> Any:
    if api not in API_BACKENDS:
        raise DeviceError(f"--midi-api is one of {', '.join(API_BACKENDS)}; got {api!r}")
    name = API_BACKENDS[api]
    try:
        return mido.Backend(name, load=True) if name else mido.Backend("mido.backends.rtmidi", load=True)
    except Exception as e:  # noqa: BLE001 - rtmidi raises its own errors for an API that is not there
        raise DeviceError(f"MIDI API {api}: not available on this machine ({e})") from e


def list_output_ports(api: str = "auto") -> list[str]:
    """Names of the MIDI output ports (``--list-ports``)."""
    try:
        return list(_backend(api).get_output_names())
    except DeviceError:
        raise
    except Exception as e:  # noqa: BLE001 - no MIDI server (e.g. no ALSA sequencer, no JACK server)
        raise DeviceError(f"MIDI API {api}: cannot list ports ({str(e).splitlines()[0]})") from e


class MidiSink:
    """Tracks held notes and the channels used; subclasses implement :meth:`_write`."""

    def __init__(self) -> None:
        self.held: set[tuple[int, int]] = set()  # (channel, note)
        self.channels: set[int] = set()
        self.sent = 0
        self.notes_sent = 0  # note-ons
        self.closed = False

    def _write(self, message: mido.Message, time: float | None) -> None:
        raise NotImplementedError

    def send(self, message: mido.Message, time: float | None = None) -> None:
        """Send now (``time``: the clock time it was sent at, for recorders)."""
        if self.closed:
            return
        if message.type in ("note_on", "note_off", "control_change", "program_change"):
            self.channels.add(message.channel)
        key = (getattr(message, "channel", -1), getattr(message, "note", -1))
        if message.type == "note_on" and message.velocity > 0:
            self.held.add(key)
            self.notes_sent += 1
        elif message.type in ("note_off", "note_on"):
            self.held.discard(key)
        self._write(message, time)
        self.sent += 1

    def silence(self, time: float | None = None) -> None:
        """Release every held note, then All Notes Off / All Sound Off on the channels used."""
        for channel, note in sorted(self.held):
            self._write(note_off(channel, note), time)
        self.held.clear()
        for msg in all_notes_off(sorted(self.channels)):
            self._write(msg, time)

    def close(self, time: float | None = None) -> None:
        if not self.closed:
            self.silence(time)
            self.closed = True
            self._close()

    def _close(self) -> None:
        pass

    def __enter__(self) -> MidiSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CaptureSink(MidiSink):
    """Keeps every message with the time it was sent: ``messages`` is a list of (time, mido.Message)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[float | None, mido.Message]] = []

    def _write(self, message: mido.Message, time: float | None) -> None:
        self.messages.append((time, message))


class MidiPortSink(MidiSink):
    """A real MIDI output: ``port`` names an existing output, or None for a virtual port ``virtual_name``."""

    def __init__(self, port: str | None = None, *, api: str = "auto", virtual_name: str = DEFAULT_PORT_NAME
                 ) -> None:
        super().__init__()
        backend = _backend(api)
        try:
            if port is None:
                if sys.platform == "win32":
                    names = ", ".join(list_output_ports(api)) or "none"
                    raise DeviceError("Windows has no virtual MIDI ports: create one with loopMIDI and pass "
                                      f"--midi-port NAME (outputs: {names})")
                self.port = backend.open_output(virtual_name, virtual=True)
            else:
                names = list_output_ports(api)
                if port not in names:
                    raise DeviceError(f"MIDI port {port!r} not found (outputs: {', '.join(names) or 'none'})")
                self.port = backend.open_output(port)
        except DeviceError:
            raise
        except Exception as e:  # noqa: BLE001 - rtmidi errors (no ALSA sequencer, no JACK server)
            raise DeviceError(f"cannot open a MIDI output with API {api} ({str(e).splitlines()[0]})") from e
        self.name = virtual_name if port is None else port

    def _write(self, message: mido.Message, time: float | None) -> None:
        self.port.send(message)

    def _close(self) -> None:
        # rtmidi's JACK backend hands messages to the server in its next process cycle (5 ms at 256 frames,
        # 48 kHz): closing the port at once could drop the final note-offs, leaving notes hanging in the DAW.
        time.sleep(CLOSE_GRACE_S)
        self.port.close()
