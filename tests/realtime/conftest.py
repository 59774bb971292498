"""A real MIDI server for the port tests: JACK's dummy driver, started for the session where ``jackd`` exists
(``scripts/setup.sh`` installs it), reused when one already runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest


def _jack_running() -> bool:
    import rtmidi

    try:
        probe = rtmidi.MidiOut(rtmidi.API_UNIX_JACK)
        # rtmidi's JACK client connects lazily: opening a virtual port fails without a server
        probe.open_virtual_port("probe")
        probe.close_port()
        return True
    except Exception:  # noqa: BLE001 - no server
        return False


@pytest.fixture(scope="session")
def jack_server() -> Iterator[None]:
    if _jack_running():
        yield
        return
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd not installed (scripts/setup.sh installs jackd2)")
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}
    # 1024-frame periods (21 ms): with 256 (5 ms), a non-realtime dummy server on 2 cores busy with pose
    # lost MIDI events in transit (the port delivered 226 of 230 note-ons the engine sent, and some final
    # note-offs), while a server started by hand with 256 did not: the test checks the engine, not JACK.
    proc = subprocess.Popen([jackd, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "1024"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline and not _jack_running():
        time.sleep(0.2)
    if not _jack_running():
        proc.kill()
        pytest.skip("jackd did not start")
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
