"""Training plumbing shared by every model: device choice, seeding, resumable checkpoints.

A checkpoint holds the model and optimiser state, the step/epoch counters, the RNG states and the
model config, written atomically so an interrupted run never leaves a broken file; ``resume`` picks
it up where it stopped. Runs on CUDA when present, CPU otherwise (``pick_device('auto')``).
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rhythmicnet.errors import WeightsError
from rhythmicnet.fileio import atomic_path
from rhythmicnet.models.weights import torch_load

log = logging.getLogger(__name__)


def pick_device(prefer: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu' / 'cuda' force it (cuda must exist)."""
    if prefer not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {prefer!r}")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but no CUDA GPU is available")
    if prefer == "cpu" or (prefer == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def hardware_record(device: torch.device) -> dict[str, str]:
    """Where a run trained, for manifests: device, CPU and core count, torch version."""
    import platform

    return {"device": str(device), "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "torch": torch.__version__}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


Optimizers = torch.optim.Optimizer | dict[str, torch.optim.Optimizer] | None


def _optimizer_state(optimizer: Optimizers) -> Any:
    if optimizer is None:
        return None
    if isinstance(optimizer, dict):
        return {k: o.state_dict() for k, o in optimizer.items()}
    return optimizer.state_dict()


def save_checkpoint(path: str | os.PathLike[str], *, model: torch.nn.Module, optimizer: Optimizers,
                    step: int, epoch: int, config: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write a resumable checkpoint atomically (``optimizer`` may be a dict of named optimisers)."""
    state = {
        "model": model.state_dict(),
        "optimizer": _optimizer_state(optimizer),
        "step": int(step),
        "epoch": int(epoch),
        "config": config,
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "extra": extra or {},
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; WeightsError naming the file when unusable."""
    p = Path(path)
    state = torch_load(p, "checkpoint", weights_only=False)  # our own file: holds RNG states, not only tensors
    if not isinstance(state, dict) or "model" not in state:
        raise WeightsError(f"{p}: corrupt checkpoint (no model state)")
    return state


def resume(path: str | os.PathLike[str], model: torch.nn.Module, optimizer: Optimizers = None) -> tuple[int, int]:
    """Restore model, optimiser(s) and RNG states; returns (step, epoch)."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    saved = state.get("optimizer")
    if isinstance(optimizer, dict) and saved is not None:
        for k, o in optimizer.items():
            o.load_state_dict(saved[k])
    elif isinstance(optimizer, torch.optim.Optimizer) and saved is not None:
        optimizer.load_state_dict(saved)
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    log.info("resumed %s at step %d, epoch %d", path, state["step"], state["epoch"])
    return int(state["step"]), int(state["epoch"])


def since_on_resume(extra: dict[str, Any], key: str, current: Any, before: Any, since_key: str,
                    step: int) -> tuple[int, bool]:
    """On resuming at ``step``: the step from which ``current`` (a setting that defines the validation
    set or the recipe, saved under ``key`` in the checkpoint's ``extra``; ``before`` for checkpoints
    older than the key) holds, and whether it changes now. When it changes, the best weights so far
    belong to the old setting, and the caller starts their selection anew."""
    if extra.get(key, before) != current:
        return step, True
    return int(extra.get(since_key, 0)), False
