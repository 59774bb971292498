"""Train a beat network (any ablation row, offline or causal, or the TCN baseline): ``rhythmicnet train beat``.

Data: synthetic dancers generated on the fly (``offline/synthetic_dancer.py``, training seeds only),
each clip resampled to 30 fps, normalised with its clip-level centre and scale (the causal variant:
with the live running estimate, ``skeleton.normalize_running``, tau 3 s), turned into the input
features (``models/beat_features.py``), and cut to a random window of ``window_frames`` frames;
targets are the labelled beats and downbeats widened to +-1 frame (the preparation is
``models/clip_preparation.py``'s ``prepare_clip``). Clips are never split across train
and validation: validation uses its own seed range and whole 30 s clips, scored by mir_eval's
F-measure after DBN decoding, which picks the kept weights.

Budget: ``steps`` optimiser steps or ``max_minutes`` of wall time, whichever comes first (the
ablation rows get a fixed, equal time budget). Checkpoints every ``val_every`` steps (atomic);
``resume`` continues a stopped run. Output: ``beat_<name>.pt`` + ``beat_<name>.json`` (manifest:
config, generator version and seed ranges, steps, time, hardware, validation figures) in ``out_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mir_eval
import numpy as np
import torch
from tqdm import tqdm

from rhythmicnet.errors import InputError
from rhythmicnet.fileio import atomic_path, ensure_output_dir, write_text_atomic
from rhythmicnet.models.beat_hmm import BeatTrackerConfig, decode_beats
from rhythmicnet.models.beat_model import output_delay
from rhythmicnet.models.beat_net import (
    ABLATION_ROWS,
    BeatNet,
    BeatNetConfig,
    ablation_config,
    align_output,
    beat_loss,
    delay_targets,
)
from rhythmicnet.models.clip_preparation import PreparedClip, prepare_clip
from rhythmicnet.models.keypoints import MODEL_FPS
from rhythmicnet.models.tcn_beat import TCNBeat, TCNBeatConfig
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline.beat_datasets import read_labelled
from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG, TRAIN_SEED_LIMIT, training_clip, validation_clip
from rhythmicnet.offline.synthetic_dancer import GENERATOR_VERSION
from rhythmicnet.offline.train_drums import _git_commit
from rhythmicnet.offline.training import (
    hardware_record,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    seed_everything,
    since_on_resume,
)

log = logging.getLogger(__name__)
MODEL_KINDS = (*ABLATION_ROWS, "tcn")


@dataclass(frozen=True)
class BeatTrainConfig:
    model: str = "full"
    causal: bool = False
    steps: int = 4000
    batch_size: int = 16
    window_frames: int = 240
    clip_seconds: float = 12.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 150
    seed: int = 0
    max_minutes: float | None = None
    val_clips: int = 24
    val_every: int = 200
    device: str = "auto"
    #: CPU threads; 1 when another job shares the machine (small ops wait for descheduled partners).
    threads: int | None = None
    #: Real beat-labelled data (``offline/beat_datasets.py``): its train split is mixed into the
    #: synthetic batches, a window from it with probability ``real_fraction``.
    aist_dir: str | None = None
    music_dir: str | None = None
    keypoints_dir: str | None = None
    real_fraction: float = 0.5
    #: Start from these weights instead of a fresh network (fine-tuning on a new generator): a weights file
    #: (``.pt``) or a shipped model name (``full``, ``full_causal``, ...); the architecture must match.
    init_from: str | None = None
    #: :class:`BeatNetConfig` fields that differ from the ablation row's defaults (a wider or deeper network,
    #: e.g. ``{"stgcn_channels": [32] * 10}``); saved in the manifest's architecture like every other field.
    arch: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODEL_KINDS:
            raise ValueError(f"model must be one of {', '.join(MODEL_KINDS)}; got {self.model!r}")
        if self.arch and self.model == "tcn":
            raise ValueError("architecture overrides are for the beat networks, not the TCN baseline")
        build_config(self.model, self.causal, self.arch)  # a bad override fails here, before any training

    @property
    def name(self) -> str:
        return f"{self.model}_causal" if self.causal else self.model


def build_config(model: str, causal: bool, arch: dict[str, Any] | None = None) -> BeatNetConfig | None:
    """The network config of a model kind (None for the TCN baseline), with ``arch`` overrides."""
    if model == "tcn":
        return None
    if "causal" in (arch or {}):
        raise ValueError("causal is set by --causal, not by an architecture override")
    return ablation_config(model, causal=causal, **(arch or {}))


def build_model(model: str, causal: bool, arch: dict[str, Any] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A fresh network for a model kind, with its config dict (saved in the manifest)."""
    cfg = build_config(model, causal, arch)
    if cfg is None:
        cfg_t = TCNBeatConfig(causal=causal)
        return TCNBeat(cfg_t), {"kind": "tcn", "config": cfg_t.to_dict()}
    return BeatNet(cfg), {"kind": "beat_net", "config": cfg.to_dict()}


def _batch(cfg: BeatTrainConfig, step: int, rng: np.random.Generator,
           real: Sequence[PreparedClip] = ()) -> dict[str, torch.Tensor]:
    dancer = dataclasses.replace(TRAIN_CONFIG, duration_s=(cfg.clip_seconds, cfg.clip_seconds))
    w = cfg.window_frames
    delay = int(cfg.arch.get("output_delay", 0))
    feats, bts, dts, masks = [], [], [], []
    for b in range(cfg.batch_size):
        if real and rng.random() < cfg.real_fraction:
            clip = real[int(rng.integers(0, len(real)))]
        else:
            index = (cfg.seed * 7919 + step * cfg.batch_size + b) % TRAIN_SEED_LIMIT
            clip = prepare_clip(training_clip(index, dancer), running=cfg.causal)
        t = len(clip.features)
        start = int(rng.integers(0, max(1, t - w + 1)))
        sl = slice(start, start + w)
        # a delayed model scores frame t - delay at frame t: its targets move with it
        f = clip.features[sl]
        bt, dt = delay_targets(clip.beat_target, delay)[sl], delay_targets(clip.downbeat_target, delay)[sl]
        pad = w - len(f)
        m = np.ones(w, bool)
        if pad > 0:  # padding at the end, masked out
            f = np.concatenate([f, np.zeros((pad, *f.shape[1:]), np.float32)])
            bt, dt = np.concatenate([bt, np.zeros(pad, np.float32)]), np.concatenate([dt, np.zeros(pad, np.float32)])
            m[w - pad :] = False
        feats.append(f)
        bts.append(bt)
        dts.append(dt)
        masks.append(m)
    return {"x": torch.as_tensor(np.stack(feats)), "beat": torch.as_tensor(np.stack(bts)),
            "downbeat": torch.as_tensor(np.stack(dts)), "mask": torch.as_tensor(np.stack(masks))}


def _initial_weights(source: str) -> dict[str, torch.Tensor]:
    """The state dict named by ``BeatTrainConfig.init_from`` (a file, or a shipped ``beat_<name>.pt``)."""
    path = Path(source) if source.endswith(".pt") else WEIGHTS_DIR / f"beat_{source}.pt"
    if not path.exists():
        raise InputError(f"--init-from: no weights at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a corrupt file is the user's: one line
        raise InputError(f"--init-from: cannot read {path}: {e}") from None
    return dict(state)


@torch.no_grad()
def clip_activations(model: torch.nn.Module, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beat and downbeat probabilities of a whole clip, on the frames they score (a delayed causal
    model's outputs realigned, :func:`~rhythmicnet.models.beat_net.align_output`).
    Shapes: (T, 17, C) -> (T,), (T,)."""
    model.eval()
    out = model(torch.as_tensor(features)[None])
    delay = output_delay(model)
    return (align_output(torch.sigmoid(out.beat_logits[0]).numpy().astype(np.float64), delay),
            align_output(torch.sigmoid(out.downbeat_logits[0]).numpy().astype(np.float64), delay))


def validation_f(model: torch.nn.Module, clips: list[PreparedClip]) -> float:
    """Mean mir_eval F-measure (defaults) of DBN-decoded beats over the validation clips."""
    scores = []
    for c in clips:
        act, _ = clip_activations(model, c.features)
        est = decode_beats(act, BeatTrackerConfig(fps=MODEL_FPS))
        ref = mir_eval.beat.trim_beats(c.beats)
        scores.append(mir_eval.beat.f_measure(ref, mir_eval.beat.trim_beats(est)))
    return float(np.mean(scores)) if scores else float("nan")


def train_beat(out_dir: str | os.PathLike[str] = WEIGHTS_DIR, *, config: BeatTrainConfig = BeatTrainConfig(),
               checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
               progress: bool = True) -> dict[str, Any]:
    """Train one beat model and write ``beat_<name>.pt`` + ``beat_<name>.json``. Returns the manifest."""
    t_start = time.perf_counter()
    out = ensure_output_dir(out_dir)
    ckpt_path = Path(checkpoint) if checkpoint else out / f"beat_{config.name}.ckpt"
    device = pick_device(config.device)
    torch.set_num_threads(config.threads or max(1, os.cpu_count() or 1))
    seed_everything(config.seed)
    model, arch = build_model(config.model, config.causal, config.arch)
    if config.init_from and not (resume and ckpt_path.exists()):
        model.load_state_dict(_initial_weights(config.init_from))
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    val = [prepare_clip(validation_clip(i), running=config.causal) for i in range(config.val_clips)]
    real = [prepare_clip(c, running=config.causal)
            for c in read_labelled(aist_dir=config.aist_dir, music_dir=config.music_dir,
                                   keypoints_dir=config.keypoints_dir, split="train")]
    if (config.aist_dir or config.keypoints_dir) and not real:
        raise InputError("the real data given has no clip in its train split")

    step, history, best_f, best_state, elapsed_before = 0, [], -1.0, None, 0.0
    # the step from which the clips come from this GENERATOR_VERSION (and the earlier version, if any)
    generator_since, earlier_generator = 0, None
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        saved_arch = state.get("config", {}).get("arch", {}) or {}
        if build_config(config.model, config.causal, saved_arch) != build_config(config.model, config.causal,
                                                                               config.arch):
            raise InputError(f"{ckpt_path} was trained with the architecture overrides {saved_arch}, not "
                             f"{config.arch}: give the same --arch to resume, or another --checkpoint")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        extra = state["extra"]
        history, best_f, best_state = extra["history"], extra["best_f"], extra["best_state"]
        elapsed_before = float(extra["elapsed_s"])
        generator_since, changed = since_on_resume(extra, "generator_version", GENERATOR_VERSION, "1.0",
                                                   "generator_since", step)
        earlier_generator = extra.get("earlier_generator")
        if changed:
            # another generator makes other validation clips: the best so far was measured on the old ones
            earlier_generator = extra.get("generator_version", "1.0")
            best_f, best_state = -1.0, None
            log.info("generator %s -> %s at step %d: best weights start anew", earlier_generator,
                     GENERATOR_VERSION, step)
        log.info("resumed %s at step %d", ckpt_path, step)
    rng = np.random.default_rng([config.seed, step])

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t_start

    bar = tqdm(total=config.steps, initial=step, desc=f"beat {config.name}", disable=not progress, unit="step")
    running = 0.0
    while step < config.steps:
        if config.max_minutes is not None and elapsed() / 60 >= config.max_minutes:
            log.info("time budget reached at step %d", step)
            break
        model.train()
        warm = min(1.0, (step + 1) / config.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, step / config.steps)))
        for g in opt.param_groups:
            g["lr"] = config.lr * warm * (0.05 + 0.95 * cosine)
        b = {k: v.to(device) for k, v in _batch(config, step, rng, real).items()}
        out_t = model(b["x"], b["mask"])
        loss = beat_loss(out_t, b["beat"], b["downbeat"], b["mask"])
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        running = 0.95 * running + 0.05 * float(loss.total.detach()) if step > 1 else float(loss.total.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}")
        last = step >= config.steps or (config.max_minutes is not None and elapsed() / 60 >= config.max_minutes)
        if step % config.val_every == 0 or last:
            f = validation_f(model, val)
            history.append({"step": step, "loss": running, "val_f": f, "minutes": elapsed() / 60})
            if progress:
                tqdm.write(f"step {step}: loss {running:.4f}  validation F {f:.3f}  ({elapsed() / 60:.1f} min)")
            if f > best_f:
                best_f, best_state = f, {k: t.detach().cpu().clone() for k, t in model.state_dict().items()}
            save_checkpoint(ckpt_path, model=model, optimizer=opt, step=step, epoch=0, config=asdict(config),
                            extra={"history": history, "best_f": best_f, "best_state": best_state,
                                   "elapsed_s": elapsed(), "generator_version": GENERATOR_VERSION,
                                   "generator_since": generator_since, "earlier_generator": earlier_generator})
    bar.close()
    if best_state is None:
        best_state = model.state_dict()
    with atomic_path(out / f"beat_{config.name}.pt") as tmp:
        torch.save(best_state, tmp)
    n_params = sum(p.numel() for p in model.parameters())
    manifest = {
        "model": f"beat_{config.name}",
        "version": 1,
        "code_commit": _git_commit(),
        "architecture": arch,
        "parameters": n_params,
        "data": {"generator": "offline/synthetic_dancer.py", "generator_version": GENERATOR_VERSION,
                 "generator_since_step": generator_since, "earlier_generator": earlier_generator,
                 "train_seeds": f"[0, {TRAIN_SEED_LIMIT}) from seed {config.seed}",
                 "validation_seeds": f"validation_clip(0..{config.val_clips - 1})",
                 "window_frames": config.window_frames, "clip_seconds": config.clip_seconds,
                 "normalisation": "running (tau 3 s, causal)" if config.causal else "clip-level",
                 "real_clips": len(real), "real_sources": {"aist_dir": config.aist_dir, "music_dir": config.music_dir,
                                                           "keypoints_dir": config.keypoints_dir},
                 # unlabelled real motion (e.g. motion capture) may only ever serve realism or self-supervision,
                 # never as made-up beat labels; this trainer uses none
                 "unlabelled_real_motion": "none",
                 "init_from": config.init_from},
        "training": {**asdict(config), "steps_run": step, "seconds": round(elapsed(), 1), **hardware_record(device)},
        "validation_f": best_f,
        "history": history,
    }
    write_text_atomic(out / f"beat_{config.name}.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
