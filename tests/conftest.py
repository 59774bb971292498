"""Shared pytest fixtures.

``shared_dir``: the project's shared data folder (example clips, reference outputs), which lives
*beside* the repository (``<repo>/../shared``; CI clones the repo with ``shared/`` next to it), or
inside it (``<repo>/shared``), or wherever ``RHYTHMICNET_SHARED_DIR`` points. Tests that need it
are skipped cleanly when it is absent.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# A suite started in the background of a non-interactive shell (``cmd &`` with no job control) inherits SIGINT
# ignored, as POSIX has it for asynchronous commands; Python then installs no KeyboardInterrupt handler and every
# child inherits the ignored signal, so the Ctrl-C tests saw no interrupt (a clean-clone run of 5 December 2026:
# SigIgn 0x5001006 in the pytest process and its children). Give the suite Python's usual handler, as a terminal
# would; a handler (unlike SIG_IGN) is reset to the default in the children at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def find_shared_dir() -> Path | None:
    """The shared data folder, or None when there is none."""
    candidates = []
    env = os.environ.get("RHYTHMICNET_SHARED_DIR")
    if env:
        candidates.append(Path(env))
    candidates += [REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]
    for c in candidates:
        if (c / "data").is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``shared/`` (holds ``data/example_video/...``); skips the test when it is not found."""
    found = find_shared_dir()
    if found is None:
        pytest.skip("shared data folder not found (expected ../shared beside the repo or $RHYTHMICNET_SHARED_DIR)")
    return found


@pytest.fixture(scope="session")
def example_video_dir(shared_dir: Path) -> Path:
    """``shared/data/example_video``; skips the test when it is missing."""
    d = shared_dir / "data" / "example_video"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


def _c_sigint_handler() -> int | None:
    """The address of the process's SIGINT handler as the C library sees it (a native library may replace
    Python's without Python knowing: ``signal.getsignal`` only reports what Python installed)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(256)  # struct sigaction; sa_handler comes first (glibc, musl, BSDs)
        if libc.sigaction(signal.SIGINT, None, buf) != 0:
            return None
        return int.from_bytes(buf.raw[: ctypes.sizeof(ctypes.c_void_p)], "little")
    except (OSError, AttributeError):
        return None


def _sigint_state() -> tuple[object, int | None, frozenset[int]]:
    """This process's SIGINT handler (Python's and the C library's) and the main thread's blocked signals
    (children inherit an ignored or blocked SIGINT)."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, []) if main else set()
    return signal.getsignal(signal.SIGINT), _c_sigint_handler(), frozenset(int(s) for s in mask)


@pytest.fixture(autouse=True)
def _sigint_left_as_found(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Every test leaves Ctrl-C working: a SIGINT left ignored or blocked in the pytest process would make the
    Ctrl-C tests that run after it (in this process, or in the commands it starts, which inherit both)
    see no interrupt at all. The state is put back, and the test that changed it errors, by name."""
    import signal

    before = _sigint_state()
    yield
    after = _sigint_state()
    if after != before:
        signal.signal(signal.SIGINT, before[0])  # type: ignore[arg-type]  (re-installs the C handler too)
        signal.pthread_sigmask(signal.SIG_SETMASK, before[2])
        pytest.fail(f"{request.node.nodeid} left SIGINT changed: {before} -> {after}")


def _process_report(pid: int) -> str:
    """Each thread of ``pid`` and of its child processes: name, state, kernel wait channel, and the signal
    masks (pending, blocked, ignored, caught), from /proc (Linux)."""
    lines: list[str] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in sorted(Path(f"/proc/{p}/task").glob("*")):
            try:
                status = dict(ln.split(":\t", 1) for ln in (task / "status").read_text().splitlines() if ":\t" in ln)
                wchan = (task / "wchan").read_text()
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            sig = " ".join(f"{k}={status.get(k, '').strip()}"
                           for k in ("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"))
            lines.append(f"{p}/{task.name} {status.get('Name', '').strip()} {status.get('State', '').strip()} "
                         f"wchan={wchan} {sig}")
    return "\n".join(lines)


@pytest.fixture
def process_report():  # type: ignore[no-untyped-def]
    """``process_report(pid)``: every thread of ``pid`` and of its child processes, with state, kernel wait
    channel and signal masks (Linux /proc): for a Ctrl-C test's failure message, where an interrupt went."""
    return _process_report
