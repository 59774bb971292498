"""Train Drum2Music (Transformer-XL encoder-decoder over REMI bars): ``rhythmicnet train music``.

Data (``offline/music_dataset.py``): the multitrack set's permissive files (freedoom, BSD-3) for
(drum bar i, piano/guitar bar i) pairs, and POP909's piano (MIT) for pretraining. One model serves
both instruments (an instrument embedding on the decoder input; see ``models/music_transformer.py``).

* A training sample is a 16-bar segment (as in the paper) starting at a random bar of a song,
  transposed by a random -5..+5 semitones and its tempo scaled by 0.85-1.15 (the drum bars' Tempo
  token; notes stay on the grid). The model runs bar after bar over the segment with its memory
  carried (stop-gradient, Transformer-XL style); the NLL of every bar's tokens is summed and one
  optimiser step is taken per batch of segments.
* **POP909** has no drums: its bars go in with an empty drum bar (``Bar Tempo EndBar``), so during
  pretraining the decoder learns piano as a REMI language model (tempo-aware), and the encoder and
  cross-attention learn from the multitrack pairs mixed into every batch. For the first
  ``pretrain_fraction`` of the time budget batches are drawn from POP909 and the multitrack set
  alike (weight ``pop909_weight`` for a POP909 segment); after that from the multitrack set only.
  ``use_pop909=False`` gives the "without POP909" run; ``mem_len=0`` the no-memory run.
* With ``pop909_drums`` POP909's songs get drums written by Rhythm2Drum from their beats and piano
  stresses (``offline/pop909_drums.py``), and after pretraining a ``pop909_fine_share`` of the
  segments still comes from them: the freedoom piano alone is sparse (3.5 pitches a bar, 1 s between
  onsets), and a model fine-tuned on it alone wrote sparse piano for dense songs.
* ``instruments`` (``--instrument piano|guitar``) keeps one instrument's multitrack parts (and
  validation set; POP909 only with the piano). Resumed from a copy of the shared model's checkpoint,
  it fine-tunes that copy for the one instrument (``drum2music_<instrument>``, which
  :class:`~rhythmicnet.models.drum2music.Drum2Music` then prefers for it): the two instruments want
  different POP909 shares (the piano's evaluation songs are as dense as POP909, the guitar's as
  sparse as freedoom), which one shared model cannot have.
* Bars are padded per batch to the longest bar in it (at most ``max_bar_len`` tokens).
* Validation: NLL (nats per decoder token) on the permissive validation split, every
  ``val_every`` steps; the best weights are kept. Checkpoints are atomic and ``--resume`` continues
  a run (elapsed time included); ``--minutes`` is the wall-time budget.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rhythmicnet.fileio import atomic_path, ensure_output_dir, write_text_atomic
from rhythmicnet.models.music_transformer import (
    INSTRUMENTS,
    BarMemory,
    Drum2MusicConfig,
    Drum2MusicModel,
    encode_drum_bars,
    encode_instrument_bars,
)
from rhythmicnet.models.remi import VOCAB, DrumBar
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline import music_dataset as md
from rhythmicnet.offline.pop909_drums import write_drums
from rhythmicnet.offline.training import (
    hardware_record,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    seed_everything,
    since_on_resume,
)
from rhythmicnet.offline.training import resume as resume_checkpoint

log = logging.getLogger(__name__)

SEGMENT_BARS = 16


@dataclass(frozen=True)
class MusicTrainConfig:
    name: str = "drum2music"
    d_model: int = 128
    d_ff: int = 512
    mem_len: int = 256
    dropout: float = 0.1
    max_bar_len: int = 128
    max_drum_len: int = 64
    batch_size: int = 4
    segment_bars: int = SEGMENT_BARS
    lr: float = 7e-4
    weight_decay: float = 0.01
    warmup_steps: int = 60
    steps: int = 20000
    max_minutes: float | None = None
    use_pop909: bool = True
    pretrain_fraction: float = 0.5
    pop909_weight: float = 1.0
    # POP909 with drums written by Rhythm2Drum (offline/pop909_drums.py) instead of an empty drum bar,
    # and the share of fine-tuning segments drawn from it (0: the multitrack set only).
    pop909_drums: bool = False
    pop909_fine_share: float = 0.0
    transpose: int = 5
    tempo_scale: tuple[float, float] = (0.85, 1.15)
    # Which 16-bar segments teach: the instrument plays in at least this share of the bars, and in the
    # first (see ``plays_enough``). 0.0 / False keep every segment.
    min_playing_fraction: float = 0.5
    first_bar_plays: bool = True
    val_every: int = 50
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    limit_songs: int | None = None  # a few songs per pool, for smoke tests
    #: the instruments whose multitrack parts (and validation set) the run learns from; POP909 is piano,
    #: so a guitar-only run has none
    instruments: tuple[str, ...] = INSTRUMENTS

    def model_config(self) -> Drum2MusicConfig:
        return Drum2MusicConfig(d_model=self.d_model, d_ff=self.d_ff, mem_len=self.mem_len, dropout=self.dropout,
                                max_bar_len=self.max_bar_len, max_drum_len=self.max_drum_len)


@dataclass
class MusicData:
    """The song pools of one run."""

    train: list[md.SongBars]  # multitrack, permissive, both instruments
    pop909: list[md.SongBars]
    validation: list[md.SongBars]  # multitrack, permissive


def load_data(config: MusicTrainConfig) -> MusicData:
    lim = config.limit_songs
    train: list[md.SongBars] = []
    val: list[md.SongBars] = []
    for inst in config.instruments:
        train += md.read_multitrack("train", inst)[:lim]
        val += md.read_multitrack("validation", inst)[:lim]
    pop = md.read_pop909("train", limit=lim) if config.use_pop909 and "piano" in config.instruments else []
    if pop and config.pop909_drums:
        pop = write_drums(pop, seed=config.seed)
    return MusicData(train, pop, val)


def plays_enough(segment: md.SongBars, min_playing_fraction: float, first_bar_plays: bool) -> bool:
    """Whether a segment is one the model should learn from.

    In the multitrack set the instrument is silent in about half of all bars, mostly in long
    stretches (intros, drum breaks, the other instrument's verse): an arrangement choice the drums
    cannot tell. Trained on every segment, the first bar of a piece (no memory yet) was a rest 60 %
    of the time whatever the drums, and a rest in memory begot more rests, so a short video often got
    no accompaniment at all. Segments where the instrument plays in at least ``min_playing_fraction``
    of the bars (and, with ``first_bar_plays``, in the first) keep the rests inside a part and drop
    the tacets. The arguments are the keys of ``segment_rule``: ``plays_enough(s, **rule)``.
    """
    playing = [len(b) > 0 for b in segment.notes]
    if not playing:
        return False
    return (not first_bar_plays or playing[0]) and float(np.mean(playing)) >= min_playing_fraction


def segment_rule(config: MusicTrainConfig) -> dict[str, Any]:
    """The arguments of ``plays_enough`` that ``config`` trains with."""
    return {"min_playing_fraction": config.min_playing_fraction, "first_bar_plays": config.first_bar_plays}


#: the rule of a run from before the rule existed: every segment counts
NO_SEGMENT_RULE = {"min_playing_fraction": 0.0, "first_bar_plays": False}


def pop909_mix(config: MusicTrainConfig) -> dict[str, Any]:
    """How POP909 enters the fine-tuning of ``config``."""
    return {"pop909_drums": config.use_pop909 and config.pop909_drums,
            "pop909_fine_share": config.pop909_fine_share if config.use_pop909 else 0.0}


#: the mix of a run from before POP909 had drums
NO_POP909_PAIRS = {"pop909_drums": False, "pop909_fine_share": 0.0}


def recipe_settings(config: MusicTrainConfig) -> dict[str, tuple[Any, Any]]:
    """The settings that define a run's validation set or recipe, by checkpoint key: (``config``'s value,
    the value of a run from before the key existed). When one changes on resume, the best weights so
    far belong to the old setting and their selection starts anew; ``<key>_since`` records the step
    from which the current value holds."""
    return {"segment_rule": (segment_rule(config), NO_SEGMENT_RULE),
            "pop909_mix": (pop909_mix(config), NO_POP909_PAIRS),
            "instruments": (list(config.instruments), list(INSTRUMENTS))}


#: the ``<key>_since`` steps of ``recipe_settings``, in checkpoints and the manifest's training record
SINCE_KEYS = tuple(f"{k}_since" for k in recipe_settings(MusicTrainConfig()))


def _segment(song: md.SongBars, start: int, n: int) -> md.SongBars:
    end = start + n
    return dataclasses.replace(
        song, tempo_bpm=song.tempo_bpm[start:end],
        drum_hits=None if song.drum_hits is None else song.drum_hits[start:end],
        drum_velocity=None if song.drum_velocity is None else song.drum_velocity[start:end],
        notes=song.notes[start:end])


def drum_bars(song: md.SongBars) -> list[DrumBar]:
    """The encoder's drum bars of a song; an empty bar (tempo only) where the song has no drums."""
    n = len(song.notes)
    empty = np.zeros((9, 16), bool)
    if song.drum_hits is None or song.drum_velocity is None:
        return [DrumBar(empty, np.zeros((9, 16), np.float32), float(song.tempo_bpm[i])) for i in range(n)]
    return [DrumBar(song.drum_hits[i], song.drum_velocity[i], float(song.tempo_bpm[i])) for i in range(n)]


def batch_tensors(segments: Sequence[md.SongBars], cfg: Drum2MusicConfig, n_bars: int) -> dict[str, torch.Tensor]:
    """Segments -> drums (B, n_bars, Le), instrument tokens (B, n_bars, Ld + 1), instrument ids (B,).

    Bars are padded to the longest bar of the batch; a segment shorter than ``n_bars`` gets all-pad bars.
    """
    b = len(segments)
    drums = [encode_drum_bars(drum_bars(s), cfg.max_drum_len) for s in segments]
    inst = [encode_instrument_bars(s.notes, cfg.max_bar_len) for s in segments]
    le = max(1, max(int((d != VOCAB.pad).sum(1).max()) if len(d) else 1 for d in drums))
    ld = max(2, max(int((t != VOCAB.pad).sum(1).max()) if len(t) else 2 for t in inst))
    out_d = torch.full((b, n_bars, le), VOCAB.pad, dtype=torch.long)
    out_i = torch.full((b, n_bars, ld), VOCAB.pad, dtype=torch.long)
    for k, (d, t) in enumerate(zip(drums, inst, strict=True)):
        out_d[k, : len(d)] = d[:n_bars, :le]
        out_i[k, : len(t)] = t[:n_bars, :ld]
    ids = torch.tensor([INSTRUMENTS.index(s.instrument) for s in segments])
    return {"drums": out_d, "inst": out_i, "instrument": ids}


def segment_nll(model: Drum2MusicModel, batch: dict[str, torch.Tensor], *,
                backward: bool = False) -> tuple[float, int]:
    """Sum of token NLL (nats) and token count over the bars of a batch, memory carried bar to bar.

    With ``backward`` the gradient of (sum / count of the batch) is accumulated bar by bar (the memory
    is detached, so each bar's graph can be freed at once).
    """
    device = next(model.parameters()).device
    drums, inst, ids = (batch[k].to(device) for k in ("drums", "inst", "instrument"))
    n_tok = int((inst[:, :, 1:] != VOCAB.pad).sum())
    memory: BarMemory = model.initial_memory(drums.shape[0], device)
    total = 0.0
    for j in range(drums.shape[1]):
        dec_in, target = inst[:, j, :-1], inst[:, j, 1:]
        logits, memory = model.forward_bar(drums[:, j], dec_in, ids, memory)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=VOCAB.pad,
                               reduction="sum")
        if backward and n_tok:
            (loss / n_tok).backward()
        total += float(loss.detach())
    return total, n_tok


def validation_segments(songs: Sequence[md.SongBars], n_bars: int) -> list[md.SongBars]:
    out = []
    for s in songs:
        for start in range(0, max(1, len(s.notes) - n_bars // 4), n_bars):
            out.append(_segment(s, start, n_bars))
    return out


@torch.no_grad()
def evaluate_nll(model: Drum2MusicModel, segments: Sequence[md.SongBars], n_bars: int, batch_size: int = 8) -> float:
    """Nats per decoder token over the segments."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(segments), batch_size):
        t, c = segment_nll(model, batch_tensors(segments[i : i + batch_size], model.config, n_bars))
        total, count = total + t, count + c
    return total / max(count, 1)


class SegmentSampler:
    """Random augmented 16-bar segments from the training pools."""

    def __init__(self, data: MusicData, config: MusicTrainConfig) -> None:
        self.data, self.cfg = data, config
        self.rule = segment_rule(config)
        self.train_w = np.array([max(1, len(s.notes)) for s in data.train], float)
        self.pop_w = np.array([max(1, len(s.notes)) for s in data.pop909], float)

    def sample(self, rng: np.random.Generator, pretraining: bool) -> md.SongBars:
        """A segment; while ``pretraining`` POP909 and the multitrack set by their sizes (POP909 weighted
        by ``pop909_weight``), after it POP909 for a ``pop909_fine_share`` of the segments."""
        n_train, n_pop = self.train_w.sum(), self.pop_w.sum() * self.cfg.pop909_weight
        share = n_pop / (n_pop + n_train) if pretraining else self.cfg.pop909_fine_share
        use_pop = len(self.data.pop909) > 0 and rng.random() < share
        pool, w = (self.data.pop909, self.pop_w) if use_pop else (self.data.train, self.train_w)
        song = pool[int(rng.choice(len(pool), p=w / w.sum()))]
        n = self.cfg.segment_bars
        for _ in range(20):  # a tacet teaches little (see plays_enough): draw again
            start = int(rng.integers(0, max(1, len(song.notes) - n + 1)))
            seg = _segment(song, start, n)
            if plays_enough(seg, **self.rule):
                break
        k = int(rng.integers(-self.cfg.transpose, self.cfg.transpose + 1))
        if k:
            seg = md.transpose(seg, k)
        lo, hi = self.cfg.tempo_scale
        return md.scale_tempo(seg, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + np.cos(np.pi * min(1.0, (step - warmup) / max(1, total - warmup)))) * 0.9 + 0.1


def train_music(out_dir: str | os.PathLike[str] = WEIGHTS_DIR, *, config: MusicTrainConfig = MusicTrainConfig(),
                checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
                progress: bool = True, data: MusicData | None = None) -> dict[str, Any]:
    """Train and write ``<name>.pt`` + ``<name>.json`` into ``out_dir``; returns the manifest."""
    t_start = time.perf_counter()
    out = ensure_output_dir(out_dir)
    ckpt_path = Path(checkpoint) if checkpoint else out / f"{config.name}.ckpt"
    device = pick_device(config.device)
    torch.set_num_threads(config.threads or max(1, os.cpu_count() or 1))
    seed_everything(config.seed)
    data = data or load_data(config)
    if not data.train:
        raise ValueError("no multitrack training songs found")
    val_segments = [s for s in validation_segments(data.validation, config.segment_bars)
                    if plays_enough(s, **segment_rule(config))]
    model = Drum2MusicModel(config.model_config()).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = SegmentSampler(data, config)
    rng = np.random.default_rng(config.seed)

    step, history, best_nll, best_state, elapsed_before, tokens_seen = 0, [], float("inf"), None, 0.0, 0
    settings = recipe_settings(config)
    since = dict.fromkeys(SINCE_KEYS, 0)  # the step from which each setting holds
    if resume and ckpt_path.exists():
        step, _ = resume_checkpoint(ckpt_path, model, opt)
        extra = load_checkpoint(ckpt_path)["extra"]
        history, best_nll, best_state = extra["history"], extra["best_nll"], extra["best_state"]
        elapsed_before, tokens_seen = float(extra["elapsed_s"]), int(extra["tokens_seen"])
        rng = np.random.default_rng([config.seed, step])
        # another segment rule or instrument set is another validation set; another POP909 mix another
        # recipe, whose aim the (freedoom-only) validation NLL does not measure: the selection restarts
        changed = []
        for key, (current, before) in settings.items():
            since[f"{key}_since"], key_changed = since_on_resume(extra, key, current, before, f"{key}_since", step)
            if key_changed:
                changed.append(key)
        if changed:
            log.info("%s changed at step %d: best weights start anew", ", ".join(changed), step)
            best_nll, best_state = float("inf"), None

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t_start

    budget_s = None if config.max_minutes is None else 60 * config.max_minutes
    bar = tqdm(total=config.steps, initial=step, desc=f"train {config.name}", disable=not progress, unit="step")
    running = None
    while step < config.steps and (budget_s is None or elapsed() < budget_s):
        pretraining = config.use_pop909 and (
            elapsed() < config.pretrain_fraction * budget_s if budget_s is not None
            else step < config.pretrain_fraction * config.steps)
        model.train()
        f = _lr_factor(step, config.steps if budget_s is None else max(step + 1, _expected_steps(history, budget_s,
                                                                                                  config.steps)),
                       config.warmup_steps)
        for g in opt.param_groups:
            g["lr"] = config.lr * f
        segments = [sampler.sample(rng, pretraining) for _ in range(config.batch_size)]
        opt.zero_grad(set_to_none=True)
        total, n_tok = segment_nll(model, batch_tensors(segments, model.config, config.segment_bars), backward=True)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += n_tok
        nll = total / max(n_tok, 1)
        running = nll if running is None else 0.98 * running + 0.02 * nll
        bar.update(1)
        bar.set_postfix(nll=f"{running:.3f}", phase="pre" if pretraining else "fine")
        last = step >= config.steps or (budget_s is not None and elapsed() >= budget_s)
        if step % config.val_every == 0 or last:
            v = evaluate_nll(model, val_segments, config.segment_bars) if val_segments else float("nan")
            history.append({"step": step, "train_nll": running, "val_nll": v, "minutes": elapsed() / 60,
                            "tokens_seen": tokens_seen, "pretraining": pretraining})
            if progress:
                tqdm.write(f"step {step}: train {running:.3f}  validation NLL {v:.3f} nats/token  "
                           f"({elapsed() / 60:.1f} min, {tokens_seen} tokens)")
            if not np.isnan(v) and v < best_nll:
                best_nll, best_state = v, {k: t.detach().cpu().clone() for k, t in model.state_dict().items()}
            save_checkpoint(ckpt_path, model=model, optimizer=opt, step=step, epoch=0,
                            config={"train": asdict(config), "model": model.config.to_dict()},
                            extra={"history": history, "best_nll": best_nll, "best_state": best_state,
                                   **{key: current for key, (current, _) in settings.items()}, **since,
                                   "elapsed_s": elapsed(), "tokens_seen": tokens_seen,
                                   "hardware": hardware_record(device)})
    bar.close()
    if best_state is None:
        best_state = model.state_dict()
    return write_weights(out, config, model.config, best_state, data,
                         {"steps_run": step, "tokens_seen": tokens_seen, "seconds": round(elapsed(), 1),
                          **since, **hardware_record(device)}, best_nll, history)


def write_weights(out: Path, config: MusicTrainConfig, model_config: Drum2MusicConfig, state: dict[str, Any],
                  data: MusicData, run: dict[str, Any], best_nll: float, history: list[dict[str, Any]],
                  note: str | None = None) -> dict[str, Any]:
    """Write ``<name>.pt`` (the state dict) and the manifest ``<name>.json`` atomically; returns the manifest."""
    model = Drum2MusicModel(model_config)
    model.load_state_dict(state)
    # Stored as float16 (6 MB instead of 13 MB for the repository); loading casts back to float32.
    with atomic_path(out / f"{config.name}.pt") as tmp:
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, tmp)
    manifest = {
        "model": "drum2music",
        "version": 1,
        "config": model_config.to_dict(),
        "parameters": model.num_parameters(),
        "weights_dtype": "float16",
        "programs": _programs(data),
        "data": {
            "multitrack": "../shared/data/multitrack_midi, permissive files only (freedoom, BSD-3-Clause)",
            "pop909": ("../shared/data/pop909 train split (MIT)"
                       + (", drums written by Rhythm2Drum (offline/pop909_drums.py)" if config.pop909_drums else "")
                       if config.use_pop909 else None),
            "train_songs": len(data.train), "pop909_songs": len(data.pop909),
            "validation_songs": len(data.validation),
            "instruments": list(config.instruments),
            "train_bars": {inst: sum(len(s.notes) for s in data.train if s.instrument == inst)
                           for inst in config.instruments},
            "pop909_bars": sum(len(s.notes) for s in data.pop909),
            "augmentation": {"transpose": config.transpose, "tempo_scale": list(config.tempo_scale)},
        },
        "training": {**asdict(config), **run},
        "validation_nll": best_nll,
        "history": history,
    }
    if note:
        manifest["note"] = note
    write_text_atomic(out / f"{config.name}.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def export_checkpoint(checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str] = WEIGHTS_DIR, *,
                      note: str | None = None, last: bool = False) -> dict[str, Any]:
    """Write the best weights so far of a (possibly still running) training run, with its manifest; with
    ``last``, the weights of its last step instead (for a fine-tune whose aim the validation NLL does not
    measure; the manifest says which)."""
    state = load_checkpoint(checkpoint)
    train = state["config"]["train"]
    config = MusicTrainConfig(**{**train, "tempo_scale": tuple(train["tempo_scale"]),
                                 "instruments": tuple(train.get("instruments", INSTRUMENTS))})
    model_config = Drum2MusicConfig.from_dict(state["config"]["model"])
    extra = state["extra"]
    best = state["model"] if last or extra["best_state"] is None else extra["best_state"]
    run = {"steps_run": int(state["step"]), "tokens_seen": int(extra["tokens_seen"]),
           **{k: int(extra.get(k, 0)) for k in SINCE_KEYS},
           "seconds": round(float(extra["elapsed_s"]), 1), "checkpoint": str(checkpoint),
           "weights_from": "last step" if last else "best validation NLL",
           **extra.get("hardware", hardware_record(torch.device("cpu")))}
    return write_weights(ensure_output_dir(out_dir), config, model_config, best, load_data(config), run,
                         float(extra["best_nll"]), extra["history"], note)


def _expected_steps(history: list[dict[str, Any]], budget_s: float, cap: int) -> int:
    """Steps the time budget will allow, from the pace so far (sets the cosine schedule's length)."""
    if not history or history[-1]["minutes"] <= 0:
        return cap
    pace = history[-1]["step"] / (history[-1]["minutes"] * 60)
    return int(min(cap, pace * budget_s))


def _programs(data: MusicData) -> dict[str, int]:
    """GM programs to write: 0 (acoustic grand) for piano; for guitar the program its training songs
    mostly have (by bars)."""
    out = {"piano": 0}
    for inst in ("guitar",):
        counts: dict[int, int] = {}
        for s in data.train:
            if s.instrument == inst:
                counts[s.program] = counts.get(s.program, 0) + len(s.notes)
        if counts:
            out[inst] = max(counts, key=lambda p: counts[p])
    return out
