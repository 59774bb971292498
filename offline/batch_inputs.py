"""The clips of a batch: what ``rhythmicnet render`` INPUTs name, each clip's output folder, its content hash.

:func:`expand_inputs` turns the command line's inputs (files, folders, globs, ``--list FILE``) into
one ordered list of clips: a folder gives the videos and keypoint files inside it (in its sub-folders
too with ``recursive``), sorted by path; a glob (``*``, ``?``, ``[...]``, ``**``) the files and folders
it matches; a path given twice (or through a folder and by name) is one clip. Hidden files, the
``.beats.json`` beside synthetic keypoints, and anything inside the output folder are never picked up
from a folder.

:func:`clip_folders` names each clip's output folder: its file name's stem, or ``<stem>-<hash8>``
(8 hex digits of the SHA-256 of its absolute path) for every clip whose stem another clip shares
(compared without case). The name depends only on the set of inputs, not on their order.

:func:`input_sha256` is a clip's identity for resuming: the SHA-256 of its whole content.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rhythmicnet.errors import InputError

__all__ = ["VIDEO_SUFFIXES", "BatchInputs", "clip_folders", "expand_inputs", "input_sha256", "is_batch",
           "read_list_file"]

#: File name suffixes taken as videos when a folder or glob is expanded (any case). A file named on the
#: command line or in a list is always taken, whatever its suffix.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
                  ".ts", ".mts", ".m2ts", ".ogv")
#: Keypoint files (see ``keypoint_io.KEYPOINT_SUFFIXES``).
KEYPOINT_SUFFIXES = (".npz", ".json")

_HASH_CHUNK = 1 << 20


def input_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's whole content. Raises InputError (one line) when it cannot be read."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a video or keypoint file")
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    except FileNotFoundError as e:
        raise InputError(f"{p}: file not found") from e
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from e
    return h.hexdigest()


def _is_media(p: Path) -> bool:
    name = p.name.lower()
    if name.startswith(".") or name.endswith(".beats.json"):
        return False
    return name.endswith(VIDEO_SUFFIXES + KEYPOINT_SUFFIXES)


def _inside(p: Path, folder: Path | None) -> bool:
    return folder is not None and (p == folder or folder in p.parents)


def _scan(folder: Path, recursive: bool, outdir: Path | None) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for f in files:
        rel = f.relative_to(folder).parts
        if any(part.startswith(".") for part in rel[:-1]):  # inside a hidden folder
            continue
        if _is_media(f) and f.is_file() and not _inside(f.resolve(), outdir):
            found.append(f)
    return sorted(found, key=str)


@dataclass
class BatchInputs:
    """``clips``: the paths in order (as the user spelled them, joined to the folder they came from);
    ``notes``: one line per input that gave no clip (an empty folder, a glob that matched nothing)."""

    clips: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_list_file(path: Path) -> list[str]:
    """The entries of ``--list FILE``: one path, folder or glob a line; blank lines and ``#`` comments
    skipped; relative paths are relative to the current folder (as on the command line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InputError(f"{path}: list file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the list file ({getattr(e, 'strerror', None) or e})") from e
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def expand_inputs(items: Iterable[str], *, recursive: bool = False, outdir: Path | None = None) -> BatchInputs:
    """The clips named by ``items`` (see the module notes). A path that does not exist and is no glob is
    kept as a clip: it fails with "file not found" in the batch, as any unreadable clip does."""
    out = BatchInputs()
    seen: set[Path] = set()
    out_resolved = outdir.resolve() if outdir is not None else None

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.clips.append(p)

    for item in items:
        p = Path(item)
        if p.is_dir():
            found = _scan(p, recursive, out_resolved)
            if not found:
                out.notes.append(f"{item}: no videos or keypoint files in this folder"
                                 + ("" if recursive else " (--recursive looks in its sub-folders)"))
            for f in found:
                add(f)
        elif p.exists() or not glob.has_magic(item):
            add(p)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            files: list[Path] = []
            for m in map(Path, matches):
                if m.is_dir():
                    files += _scan(m, recursive, out_resolved)
                elif _is_media(m) and not _inside(m.resolve(), out_resolved):
                    files.append(m)
            if not files:
                out.notes.append(f"{item}: matches no video or keypoint file")
            for f in files:
                add(f)
    return out


def is_batch(items: Sequence[str], list_file: Path | None) -> bool:
    """True unless the inputs are one file named as it is (that renders into OUTDIR itself, as always)."""
    if list_file is not None or len(items) != 1:
        return True
    p = Path(items[0])
    return p.is_dir() or (not p.exists() and glob.has_magic(items[0]))


def _path_hash8(p: Path) -> str:
    return hashlib.sha256(str(p.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def clip_folders(clips: Sequence[Path]) -> list[str]:
    """The output folder name of each clip (same order): ``<stem>``, or ``<stem>-<hash8>`` for each clip
    whose stem (without case) another clip has too."""
    stems = [c.stem or c.name for c in clips]
    counts = Counter(s.casefold() for s in stems)
    return [s if counts[s.casefold()] == 1 else f"{s}-{_path_hash8(c)}" for s, c in zip(stems, clips, strict=True)]
