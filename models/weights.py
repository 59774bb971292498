"""Shipped weights: load a model's state dict and manifest from package data, locally only.

Layout: ``models/weights/<name>.pt`` (a torch state dict saved with ``torch.save``) beside
``models/weights/<name>.json`` (the manifest: model config, data, split, training settings, figures,
code commit). Loading never touches the network; a missing or corrupt file raises ``WeightsError``
naming the file. Prefix fixes (``_orig_mod.`` from ``torch.compile``, ``module.`` from
DataParallel) happen here and only here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rhythmicnet.errors import WeightsError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_PREFIXES = ("_orig_mod.", "module.")


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.pt"


def manifest_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.json"


def strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """Remove wrapper prefixes from state-dict keys."""
    out = {}
    for k, v in state.items():
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    return out


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: weights manifest not found")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{p}: corrupt weights manifest ({e.__class__.__name__})") from e
    if not isinstance(data, dict):
        raise WeightsError(f"{p}: corrupt weights manifest (not a JSON object)")
    return data


def torch_load(path: str | os.PathLike[str], what: str, *, weights_only: bool) -> Any:
    """``torch.load`` to the CPU; a missing or damaged file is a WeightsError naming it and ``what`` it is."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: {what} not found")
    try:
        return torch.load(p, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        raise WeightsError(f"{p}: corrupt {what} ({e.__class__.__name__})") from e


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a state dict (``weights_only=True``) from a file; WeightsError on any problem."""
    p = Path(path)
    obj = torch_load(p, "weights file", weights_only=True)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # a training checkpoint
    if not isinstance(obj, dict):
        raise WeightsError(f"{p}: corrupt weights file (no state dict inside)")
    return strip_prefixes(obj)


def load_into(module: Any, path: str | os.PathLike[str]) -> None:
    """Load weights into ``module`` strictly; a missing or unexpected key is a WeightsError naming it."""
    state = load_state_dict(path)
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        first = str(e).strip().splitlines()[-1].strip()
        raise WeightsError(f"{Path(path)}: weights do not fit the model ({first})") from e
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        what = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise WeightsError(f"{Path(path)}: weights do not fit the model ({what})")
