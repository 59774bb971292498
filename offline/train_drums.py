"""Train Rhythm2Drum (hits transformer + U-Net) on the Groove MIDI Dataset: ``rhythmicnet train drums``.

Data: info.csv's train split, 4/4, 2-bar windows with a one-bar hop (``offline/groove_dataset.py``).
Each epoch draws fresh input rhythms (beats ∪ thinned kick/snare accents ∪ random accents, seeded per
epoch) so the model sees many rhythms per groove. Both nets train in the same loop on the same
batches: the transformer with cross-entropy on the hit tokens (teacher forcing), the U-Net with MSE
on the hit cells (velocities and offsets only mean something where a drum is hit; the paper's Table 2
scores hit cells too). The best epoch of each net by validation loss is kept.

Checkpoints every epoch (atomic), ``--resume`` continues a stopped run exactly; ``--minutes`` stops
at the last epoch boundary that fits the time budget. At the end the weights, the vocabulary and a
manifest (data, split, settings, epochs, steps, time, hardware, validation figures) are written to
the output folder, by default the package's ``models/weights``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rhythmicnet.fileio import atomic_path, ensure_output_dir, write_text_atomic
from rhythmicnet.models.drum_unet import DrumUNet, DrumUNetConfig, unet_loss
from rhythmicnet.models.hits_transformer import HitsTransformer, HitsTransformerConfig, hits_loss, shift_right
from rhythmicnet.models.hits_vocabulary import HitsVocabulary
from rhythmicnet.models.rhythm2drum import HITS_WEIGHTS, MANIFEST, UNET_WEIGHTS, VOCAB_FILE
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline import groove_dataset as gd
from rhythmicnet.offline.training import (
    hardware_record,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    seed_everything,
)
from rhythmicnet.offline.training import resume as resume_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrumTrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr_hits: float = 5e-4
    lr_unet: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 300
    seed: int = 0
    d_model: int = 128
    max_minutes: float | None = None
    limit_files: int | None = None  # a few files, for smoke tests
    max_steps_per_epoch: int | None = None  # likewise
    device: str = "auto"


class _Both(torch.nn.Module):
    """Both nets under one state dict, for checkpoints."""

    def __init__(self, hits: HitsTransformer, unet: DrumUNet) -> None:
        super().__init__()
        self.hits, self.unet = hits, unet


@dataclass
class _Best:
    loss: float = math.inf
    epoch: int = -1
    state: dict[str, torch.Tensor] = field(default_factory=dict)


def _cpu_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: t.detach().cpu().clone() for k, t in module.state_dict().items()}


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _to_tensors(windows: gd.DrumWindows, rhythms: np.ndarray, vocab: HitsVocabulary, idx: np.ndarray,
                device: torch.device) -> dict[str, torch.Tensor]:
    hits = windows.hits[idx]
    tokens = np.stack([vocab.encode(h) for h in hits])
    return {
        "rhythm": torch.as_tensor(rhythms[idx].astype(np.int64), device=device),
        "tokens": torch.as_tensor(tokens, device=device),
        "hits": torch.as_tensor(hits.astype(np.float32), device=device),
        "vel": torch.as_tensor(windows.velocities[idx], device=device),
        "off": torch.as_tensor(windows.offsets[idx], device=device),
    }


@torch.no_grad()
def evaluate_losses(hits_model: HitsTransformer, unet: DrumUNet, windows: gd.DrumWindows, rhythms: np.ndarray,
                    vocab: HitsVocabulary, device: torch.device, batch_size: int = 256) -> dict[str, float]:
    """Mean validation cross-entropy (nats/token) and hit-cell MSEs."""
    hits_model.eval()
    unet.eval()
    ce, mv, mo, n_tok, n_hit = 0.0, 0.0, 0.0, 0, 0
    for i in range(0, len(windows), batch_size):
        idx = np.arange(i, min(i + batch_size, len(windows)))
        b = _to_tensors(windows, rhythms, vocab, idx, device)
        logits = hits_model(b["rhythm"], shift_right(b["tokens"], vocab.pad_id))
        ce += float(hits_loss(logits, b["tokens"], vocab.pad_id)) * b["tokens"].numel()
        n_tok += b["tokens"].numel()
        v, o = unet(b["hits"])
        mask = b["hits"] > 0
        mv += float(((v - b["vel"]) ** 2)[mask].sum())
        mo += float(((o - b["off"]) ** 2)[mask].sum())
        n_hit += int(mask.sum())
    return {"ce": ce / max(n_tok, 1), "mse_velocity": mv / max(n_hit, 1), "mse_offset": mo / max(n_hit, 1)}


def train_drums(out_dir: str | os.PathLike[str] = WEIGHTS_DIR, *, config: DrumTrainConfig = DrumTrainConfig(),
                checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
                groove_root: str | os.PathLike[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Train both nets and write weights + vocabulary + manifest into ``out_dir``. Returns the manifest."""
    t_start = time.perf_counter()
    out = ensure_output_dir(out_dir)
    ckpt_path = Path(checkpoint) if checkpoint else out / "rhythm2drum.ckpt"
    device = pick_device(config.device)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    seed_everything(config.seed)

    train_grids = gd.load_split("train", groove_root, limit=config.limit_files)
    val_grids = gd.load_split("validation", groove_root, limit=config.limit_files)
    train_w, val_w = gd.make_windows(train_grids), gd.make_windows(val_grids)
    vocab = HitsVocabulary.build([g.hits for g in train_grids])
    val_rhythms = gd.derive_rhythms(val_w.hits, gd.epoch_rng(config.seed + 1, 0))
    log.info("train windows %d, validation windows %d, vocabulary %d", len(train_w), len(val_w), vocab.size)

    hits_cfg = HitsTransformerConfig(vocab_size=vocab.size, pad_id=vocab.pad_id, bos_id=vocab.bos_id,
                                     d_model=config.d_model)
    unet_cfg = DrumUNetConfig()
    hits_model, unet = HitsTransformer(hits_cfg).to(device), DrumUNet(unet_cfg).to(device)
    opt_h = torch.optim.AdamW(hits_model.parameters(), lr=config.lr_hits, weight_decay=config.weight_decay)
    opt_u = torch.optim.AdamW(unet.parameters(), lr=config.lr_unet, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_w) / config.batch_size)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs

    both = _Both(hits_model, unet)
    step, epoch0, history = 0, 0, []
    best_h, best_u = _Best(), _Best()
    elapsed_before = 0.0
    if resume and ckpt_path.exists():
        step, epoch0 = resume_checkpoint(ckpt_path, both, {"hits": opt_h, "unet": opt_u})
        extra = load_checkpoint(ckpt_path)["extra"]
        history = extra["history"]
        best_h = _Best(extra["best_hits_loss"], extra["best_hits_epoch"], extra["best_hits_state"])
        best_u = _Best(extra["best_unet_loss"], extra["best_unet_epoch"], extra["best_unet_state"])
        elapsed_before = float(extra.get("elapsed_s", 0.0))
        log.info("resumed from %s at epoch %d (step %d)", ckpt_path, epoch0, step)

    last_epoch_s = 0.0
    for epoch in range(epoch0, config.epochs):
        used_min = (elapsed_before + time.perf_counter() - t_start) / 60
        if config.max_minutes is not None and epoch > epoch0 and used_min + last_epoch_s / 60 > config.max_minutes:
            log.info("time budget reached after %d epochs (%.1f min)", epoch, used_min)
            break
        t_epoch = time.perf_counter()
        rng = gd.epoch_rng(config.seed, epoch)
        rhythms = gd.derive_rhythms(train_w.hits, rng)
        batches = _batches(len(train_w), config.batch_size, rng)[:steps_per_epoch]
        hits_model.train()
        unet.train()
        sums = np.zeros(3)
        bar = tqdm(batches, desc=f"drums epoch {epoch + 1}/{config.epochs}", disable=not progress, unit="batch",
                   leave=False)
        for idx in bar:
            f = _lr_factor(step, total_steps, config.warmup_steps)
            for g in opt_h.param_groups:
                g["lr"] = config.lr_hits * f
            for g in opt_u.param_groups:
                g["lr"] = config.lr_unet * f
            b = _to_tensors(train_w, rhythms, vocab, idx, device)
            logits = hits_model(b["rhythm"], shift_right(b["tokens"], vocab.pad_id))
            loss_h = hits_loss(logits, b["tokens"], vocab.pad_id)
            opt_h.zero_grad(set_to_none=True)
            loss_h.backward()
            torch.nn.utils.clip_grad_norm_(hits_model.parameters(), 1.0)
            opt_h.step()
            v, o = unet(b["hits"])
            lu = unet_loss(v, o, b["vel"], b["off"], b["hits"] > 0, hit_cells_only=True)
            opt_u.zero_grad(set_to_none=True)
            lu.loss.backward()
            opt_u.step()
            sums += [float(loss_h.detach()), float(lu.mse_velocity.detach()), float(lu.mse_offset.detach())]
            step += 1
            bar.set_postfix(ce=f"{float(loss_h.detach()):.3f}", mse_v=f"{float(lu.mse_velocity.detach()):.4f}")
        n = max(len(batches), 1)
        val = evaluate_losses(hits_model, unet, val_w, val_rhythms, vocab, device)
        record = {"epoch": epoch + 1, "step": step, "train_ce": float(sums[0] / n),
                  "train_mse_velocity": float(sums[1] / n), "train_mse_offset": float(sums[2] / n),
                  **{f"val_{k}": v for k, v in val.items()},
                  "seconds": time.perf_counter() - t_epoch}
        history.append(record)
        if progress:
            tqdm.write(f"epoch {epoch + 1}: train ce {record['train_ce']:.3f}  val ce {val['ce']:.3f}  "
                       f"val mse v {val['mse_velocity']:.4f} o {val['mse_offset']:.4f}  ({record['seconds']:.0f} s)")
        if val["ce"] < best_h.loss:
            best_h = _Best(val["ce"], epoch + 1, _cpu_copy(hits_model))
        unet_val = val["mse_velocity"] + val["mse_offset"]
        if unet_val < best_u.loss:
            best_u = _Best(unet_val, epoch + 1, _cpu_copy(unet))
        last_epoch_s = time.perf_counter() - t_epoch
        save_checkpoint(ckpt_path, model=both, optimizer={"hits": opt_h, "unet": opt_u}, step=step, epoch=epoch + 1,
                        config={"train": asdict(config), "hits": hits_cfg.to_dict(), "unet": unet_cfg.to_dict()},
                        extra={"history": history, "best_hits_loss": best_h.loss, "best_hits_epoch": best_h.epoch,
                               "best_hits_state": best_h.state, "best_unet_loss": best_u.loss,
                               "best_unet_epoch": best_u.epoch, "best_unet_state": best_u.state,
                               "elapsed_s": elapsed_before + time.perf_counter() - t_start})

    if not best_h.state:  # no epoch ran (e.g. resumed a finished run): keep the current weights
        best_h.state, best_u.state = hits_model.state_dict(), unet.state_dict()
    with atomic_path(out / HITS_WEIGHTS) as tmp:
        torch.save(best_h.state, tmp)
    with atomic_path(out / UNET_WEIGHTS) as tmp:
        torch.save(best_u.state, tmp)
    vocab.save(out / VOCAB_FILE)
    elapsed = elapsed_before + time.perf_counter() - t_start
    manifest = {
        "model": "rhythm2drum",
        "version": 1,
        "code_commit": _git_commit(),
        "data": {"dataset": "Groove MIDI Dataset (Gillick et al. 2019), CC BY 4.0",
                 "split": "info.csv split column, 4/4 files only", "train_files": len(train_grids),
                 "validation_files": len(val_grids), "train_windows": len(train_w),
                 "validation_windows": len(val_w), "window_steps": gd.WINDOW_STEPS, "hop_steps": gd.WINDOW_HOP,
                 "input_rhythm": json.loads(gd.describe_rates())},
        "vocabulary": {"file": VOCAB_FILE, "size": vocab.size},
        "hits_transformer": {"file": HITS_WEIGHTS, "config": hits_cfg.to_dict(),
                             "parameters": hits_model.num_parameters(), "best_epoch": best_h.epoch,
                             "val_ce": best_h.loss},
        "unet": {"file": UNET_WEIGHTS, "config": unet_cfg.to_dict(), "parameters": unet.num_parameters(),
                 "best_epoch": best_u.epoch, "loss": "MSE over hit cells"},
        "training": {**asdict(config), "epochs_run": len(history), "steps": step, "seconds": round(elapsed, 1),
                     "torch_threads": torch.get_num_threads(), **hardware_record(device)},
        "history": history,
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest
