"""Atomic file writing: output appears whole or not at all (temp file in the same folder + rename).

Used for every output the program writes, so Ctrl-C or a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rhythmicnet.errors import OutputError


def ensure_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and check it is writable; raise OutputError naming it otherwise."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: output path exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{p}: cannot create output folder ({e.strerror or e})") from e
    if not p.is_dir():
        raise OutputError(f"{p}: output path exists and is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: output folder is not writable")
    return p


def ensure_output_file(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that ``path`` can be written as a file: not a folder, its folder exists
    (created if needed, as :func:`ensure_output_dir`) and is writable. Raises OutputError naming it."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p}: is a folder; give the name of the file to write")
    ensure_output_dir(p.parent)
    return p


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe later on.
_UMASK = _read_umask()


def _replace(tmp: Path, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError as e:  # e.g. the target is a folder
        raise OutputError(f"{target}: cannot write ({e.strerror or e})") from e


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    The temporary name keeps the target's suffix, so writers that pick a format from the
    extension (matplotlib, numpy, ffmpeg) still work.
    """
    target = Path(target)
    tmp_name: str | None = None
    try:  # from the moment mkstemp returns: Ctrl-C anywhere below removes the temp file
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}",
                                            dir=target.parent)
        except OSError as e:
            raise OutputError(f"{target}: cannot write ({e.strerror or e})") from e
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        # mkstemp makes the file private (0600); give the result the permissions a plain open() would.
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o666 & ~_UMASK)
        # (a call, not a nested try: CPython 3.11 lets an interrupt on a bare `try:` line here escape
        # the handler below)
        _replace(tmp, target)
    except BaseException:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        raise


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(target, text.encode("utf-8"))
