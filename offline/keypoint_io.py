"""Keypoint files: read and write the interchange format (``.npz``, or ``.json`` with the same keys).

Schema (design notes, "Keypoint file"):

* ``keypoints``  float32 (T, 17, 2): COCO-17 joints in pixels (aspect ratio kept);
* ``confidence`` float32 (T, 17) in [0, 1], 0 = unseen;
* ``times``      float64 (T,) seconds from the first frame, strictly increasing;
* ``image_size`` optional int (2,) = (width, height) in pixels.

Other keys are ignored on reading (the pose cache stores its provenance beside the arrays).
Loading is strict about structure (keys, shapes, finite times and confidences, T >= 1) and raises
:class:`~rhythmicnet.errors.InputError` with one line naming the file. Limits, checked on loading so
that an implausible file fails at once instead of deep inside the pipeline:

* the clip spans at most ``MAX_DURATION_S`` (4 hours) from its first to its last frame;
* its frame rate (the median of the frame intervals) lies in ``MIN_FPS``..``MAX_FPS`` (1-240 fps).

The repairs it makes: a non-finite keypoint, or one further than ``MAX_OFFSCREEN`` image sizes
outside the image (``image_size``; without it, beyond ``MAX_COORD_PX`` pixels from the origin),
becomes an unseen joint (coordinates 0, confidence 0), as a missing person is a confidence of 0
everywhere else in the project. Writing is atomic.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rhythmicnet.errors import InputError, OutputError
from rhythmicnet.fileio import atomic_path
from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.models.skeleton import NUM_JOINTS

KEYPOINT_SUFFIXES: tuple[str, ...] = (".npz", ".json")
REQUIRED_KEYS: tuple[str, ...] = ("keypoints", "confidence", "times")
_CONF_TOL = 1e-4
#: Longest clip a keypoint file may span (first to last frame), seconds: 4 hours.
MAX_DURATION_S = 4 * 3600.0
#: Frame rates (median of the frame intervals) a keypoint file may have, frames per second.
MIN_FPS, MAX_FPS = 1.0, 240.0
#: A joint more than this many image widths/heights outside the image is unseen (a bad coordinate).
MAX_OFFSCREEN = 10.0
#: Without an image_size: a joint further than this from the origin, in pixels, is unseen.
MAX_COORD_PX = 100_000.0


def is_keypoint_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` names a keypoint file by its suffix (``.npz`` or ``.json``, any case)."""
    return Path(path).suffix.lower() in KEYPOINT_SUFFIXES


def _arrays(seq: KeypointSequence) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {
        "keypoints": np.asarray(seq.keypoints, dtype=np.float32),
        "confidence": np.asarray(seq.confidence, dtype=np.float32),
        "times": np.asarray(seq.times, dtype=np.float64),
    }
    if seq.image_size is not None:
        out["image_size"] = np.asarray(seq.image_size, dtype=np.int64)
    return out


def save_keypoints(
    path: str | os.PathLike[str],
    seq: KeypointSequence,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``seq`` to ``path`` atomically; the format follows the suffix (``.npz`` or ``.json``).

    Args:
        path: target file; its folder must exist.
        seq: keypoints (T, 17, 2) px, confidence (T, 17), times (T,) s, optional image_size (w, h).
        extra: additional scalar or array entries stored beside the schema keys (provenance);
            readers ignore them. Names must not clash with the schema keys.

    Raises:
        OutputError: unknown suffix or the file cannot be written.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in KEYPOINT_SUFFIXES:
        raise OutputError(f"{p}: keypoint files must end in .npz or .json")
    data: dict[str, Any] = dict(_arrays(seq))
    for key, value in (extra or {}).items():
        if key in data or key == "image_size":
            raise ValueError(f"extra key {key!r} clashes with the keypoint schema")
        data[key] = value
    try:
        with atomic_path(p) as tmp:
            if suffix == ".npz":
                arrays: dict[str, Any] = {k: np.asarray(v) for k, v in data.items()}
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, **arrays)
            else:
                doc = {k: (np.asarray(v).tolist() if not isinstance(v, str) else v) for k, v in data.items()}
                tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    except OSError as e:
        raise OutputError(f"{p}: cannot write ({e.strerror or e})") from e
    return p


_NPZ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, NotImplementedError)


def _read_npz(p: Path) -> dict[str, Any]:
    try:
        obj = np.load(p, allow_pickle=False)
    except _NPZ_ERRORS as e:
        raise InputError(f"{p}: not a valid .npz keypoint file ({type(e).__name__})") from e
    if not isinstance(obj, np.lib.npyio.NpzFile):
        raise InputError(f"{p}: not a valid .npz keypoint file (a single .npy array, not an archive)")
    try:
        with obj:
            return {k: obj[k] for k in obj.files}
    except _NPZ_ERRORS as e:
        raise InputError(f"{p}: corrupt .npz keypoint file ({type(e).__name__})") from e


def _read_json(p: Path) -> dict[str, Any]:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not a valid .json keypoint file (not UTF-8 text)") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not a valid .json keypoint file (line {e.lineno}: {e.msg})") from e
    if not isinstance(doc, dict):
        raise InputError(f"{p}: not a valid .json keypoint file (top level is not an object)")
    return doc


def _as_array(p: Path, key: str, value: Any, dtype: type) -> np.ndarray:
    try:
        arr: np.ndarray = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise InputError(f"{p}: '{key}' is not a numeric array") from e
    return arr


def load_keypoints(path: str | os.PathLike[str]) -> KeypointSequence:
    """Read a keypoint file (``.npz`` or ``.json``, see the module docstring for the schema).

    Returns:
        KeypointSequence with keypoints float32 (T, 17, 2) px, confidence float32 (T, 17),
        times float64 (T,) s and image_size (w, h) or None.

    Raises:
        InputError: missing file, unknown suffix, unreadable/corrupt file, missing keys,
            wrong shapes, no frames, non-finite times or confidences, confidences outside [0, 1],
            times not strictly increasing, longer than ``MAX_DURATION_S`` or at a frame rate outside
            ``MIN_FPS``..``MAX_FPS``, bad image_size. The message is one line naming the file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    suffix = p.suffix.lower()
    if suffix not in KEYPOINT_SUFFIXES:
        raise InputError(f"{p}: not a keypoint file (expected .npz or .json)")
    try:
        raw = _read_npz(p) if suffix == ".npz" else _read_json(p)
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from e

    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise InputError(f"{p}: missing key(s) {', '.join(repr(k) for k in missing)} in keypoint file")
    kp = _as_array(p, "keypoints", raw["keypoints"], np.float32)
    conf = _as_array(p, "confidence", raw["confidence"], np.float32)
    times = _as_array(p, "times", raw["times"], np.float64)

    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
        raise InputError(f"{p}: 'keypoints' has shape {kp.shape}, expected (T, {NUM_JOINTS}, 2)")
    t_len = kp.shape[0]
    if t_len == 0:
        raise InputError(f"{p}: keypoint file has no frames")
    if conf.shape != (t_len, NUM_JOINTS):
        raise InputError(f"{p}: 'confidence' has shape {conf.shape}, expected ({t_len}, {NUM_JOINTS})")
    if times.shape != (t_len,):
        raise InputError(f"{p}: 'times' has shape {times.shape}, expected ({t_len},)")
    if not np.all(np.isfinite(times)):
        raise InputError(f"{p}: 'times' contains non-finite values")
    if t_len > 1 and np.any(np.diff(times) <= 0):
        raise InputError(f"{p}: 'times' must be strictly increasing (seconds)")
    span = float(times[-1] - times[0])
    if span > MAX_DURATION_S:
        raise InputError(f"{p}: 'times' span {span / 3600:.1f} hours, more than the {MAX_DURATION_S / 3600:g} "
                         "hours a keypoint file may last (are the times in seconds?)")
    if t_len > 1:
        fps = float(1.0 / np.median(np.diff(times)))
        if not MIN_FPS <= fps <= MAX_FPS:
            raise InputError(f"{p}: frame rate {fps:.3g} fps is outside {MIN_FPS:g}-{MAX_FPS:g} fps "
                             "(are the times in seconds?)")
    if not np.all(np.isfinite(conf)):
        raise InputError(f"{p}: 'confidence' contains non-finite values")
    if conf.min() < -_CONF_TOL or conf.max() > 1 + _CONF_TOL:
        raise InputError(f"{p}: 'confidence' outside [0, 1] (range {conf.min():.3g}..{conf.max():.3g})")
    conf = np.clip(conf, 0.0, 1.0)

    image_size: tuple[int, int] | None = None
    if raw.get("image_size") is not None:
        size = _as_array(p, "image_size", raw["image_size"], np.float64)
        if size.shape != (2,) or not np.all(np.isfinite(size)) or np.any(size <= 0) or np.any(size % 1 != 0):
            raise InputError(f"{p}: 'image_size' must be two positive integers (width, height)")
        image_size = (int(size[0]), int(size[1]))

    # A non-finite coordinate, or one far outside the image, is an unseen joint.
    with np.errstate(invalid="ignore"):
        if image_size is not None:
            dims = np.asarray(image_size, dtype=np.float64)
            far = np.any((kp < -MAX_OFFSCREEN * dims) | (kp > (1.0 + MAX_OFFSCREEN) * dims), axis=-1)
        else:
            far = np.any(np.abs(kp) > MAX_COORD_PX, axis=-1)
    bad = ~np.all(np.isfinite(kp), axis=-1) | far
    if bad.any():
        kp = kp.copy()
        conf = conf.copy()
        kp[bad] = 0.0
        conf[bad] = 0.0

    return KeypointSequence(
        keypoints=np.ascontiguousarray(kp, dtype=np.float32),
        confidence=np.ascontiguousarray(conf, dtype=np.float32),
        times=np.ascontiguousarray(times, dtype=np.float64),
        image_size=image_size,
    )


def read_extra(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The non-schema entries of a keypoint file (provenance), as plain Python values; {} on any error."""
    p = Path(path)
    try:
        raw = _read_npz(p) if p.suffix.lower() == ".npz" else _read_json(p)
    except (InputError, OSError):
        return {}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k in REQUIRED_KEYS or k == "image_size":
            continue
        arr = np.asarray(v)
        out[k] = arr.item() if arr.ndim == 0 else arr.tolist()
    return out
