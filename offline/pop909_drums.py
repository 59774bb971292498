"""Drums for POP909 written by Rhythm2Drum: (drums, piano) pairs for Drum2Music.

POP909 is ten times more piano than the multitrack set, and its piano is the dense pop playing the
evaluation songs have (10 pitches a bar, onsets 0.3 s apart), while the permissive multitrack piano
(freedoom) is sparse (3.5 pitches a bar, 1 s apart). Without drums POP909 can only pretrain the
decoder; with drums it teaches the whole encoder-decoder what piano goes with a groove.

Each song gets the rhythm a dancer would give Rhythm2Drum (the shipped weights):

* its **beats**: every 4th 16th step (POP909's bars come from its beat/downbeat annotations);
* **accents** on the off-beat steps the piano stresses: a bass note (below ``BASS_PITCH``) or a chord
  of at least ``CHORD_NOTES`` notes starting there, each dropped with probability ``DROP_RATE`` (as
  the Groove training rhythms thin their kick/snare accents), seeded per song.

Rhythm2Drum then plays the drums bar after bar (the streaming contract, many songs at once). The
drums follow the song's beat and its piano's stresses the way the live system's drums follow a
dancer, so the pairs are the kind the model sees at inference. The result is cached (keyed by the
Rhythm2Drum weights, the songs and the constants here): about 4 minutes for the 56 k training bars
on one CPU core.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rhythmicnet.fileio import atomic_path, ensure_output_dir
from rhythmicnet.models.rhythm2drum import HITS_WEIGHTS, UNET_WEIGHTS, Rhythm2Drum, SamplingConfig
from rhythmicnet.models.rhythm_grid import STEPS_PER_BAR
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline.groove_dataset import beat_mask, default_cache_dir
from rhythmicnet.offline.music_dataset import SongBars

VERSION = 1
BASS_PITCH = 55  # G3: notes below are the left hand's bass
CHORD_NOTES = 3
DROP_RATE = 0.5
BATCH_SONGS = 128


def piano_rhythm(song: SongBars, rng: np.random.Generator) -> np.ndarray:
    """The input rhythm for Rhythm2Drum of one piano part: (n_bars * 16,) bool (beats ∪ thinned accents)."""
    n = song.n_bars * STEPS_PER_BAR
    accent = np.zeros(n, dtype=bool)
    for i, bar in enumerate(song.notes):
        starts: dict[int, list[int]] = {}
        for note in bar:
            starts.setdefault(int(note.step), []).append(int(note.pitch))
        for step, pitches in starts.items():
            if min(pitches) < BASS_PITCH or len(pitches) >= CHORD_NOTES:
                accent[i * STEPS_PER_BAR + step] = True
    beats = beat_mask(n)
    keep = rng.random(n) >= DROP_RATE
    return beats | (accent & ~beats & keep)


def _weights_digest(weights_dir: Path) -> str:
    h = hashlib.sha256()
    for name in (HITS_WEIGHTS, UNET_WEIGHTS):
        h.update((weights_dir / name).read_bytes())
    return h.hexdigest()[:16]


def _cache_key(songs: Sequence[SongBars], weights_dir: Path, seed: int) -> str:
    h = hashlib.sha256(json.dumps([VERSION, BASS_PITCH, CHORD_NOTES, DROP_RATE, seed,
                                   _weights_digest(weights_dir)]).encode())
    for s in songs:
        h.update(f"{s.name}\t{s.n_bars}\t{s.n_notes}\n".encode())
    return h.hexdigest()[:20]


def _load(path: Path, songs: Sequence[SongBars]) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            vel = z["velocity"]
        if vel.shape != (sum(s.n_bars for s in songs), 9, STEPS_PER_BAR):
            return None
        return vel
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def write_drums(songs: Sequence[SongBars], *, model: Rhythm2Drum | None = None, seed: int = 0,
                weights_dir: str | os.PathLike[str] = WEIGHTS_DIR, cache: bool = True,
                cache_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> list[SongBars]:
    """Copies of ``songs`` (piano without drums) with drums written by Rhythm2Drum.

    Songs are played in batches of similar length; the velocities are kept as MIDI velocities
    (1..127 on a hit). Deterministic for a ``seed`` and a batch order (songs sorted by length).
    """
    wdir = Path(weights_dir)
    path = None
    if cache:
        path = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / \
            f"pop909_drums_{_cache_key(songs, wdir, seed)}.npz"
    velocity = _load(path, songs) if path is not None and path.is_file() else None
    if velocity is None:
        velocity = _play(songs, model or Rhythm2Drum.load(wdir), seed, progress)
        if path is not None:
            try:
                ensure_output_dir(path.parent)
                with atomic_path(path) as tmp:
                    np.savez_compressed(tmp, velocity=velocity)
            except OSError as e:  # a cache that cannot be written only costs time
                warnings.warn(f"POP909 drum cache not written: {e}", stacklevel=2)
    out, b0 = [], 0
    for s in songs:
        v = velocity[b0 : b0 + s.n_bars].astype(np.float32) / 127.0
        out.append(dataclasses.replace(s, drum_hits=v > 0, drum_velocity=v))
        b0 += s.n_bars
    return out


def _play(songs: Sequence[SongBars], model: Rhythm2Drum, seed: int, progress: bool) -> np.ndarray:
    """MIDI velocities (uint8) of the drums of all songs' bars, in song order: (sum of bars, 9, 16)."""
    rhythms = [piano_rhythm(s, np.random.default_rng([seed, i])) for i, s in enumerate(songs)]
    order = sorted(range(len(songs)), key=lambda i: songs[i].n_bars)
    per_song: list[np.ndarray | None] = [None] * len(songs)
    bar = tqdm(total=sum(s.n_bars for s in songs), desc="POP909 drums", unit="bar", disable=not progress)
    with torch.inference_mode():
        for k in range(0, len(order), BATCH_SONGS):
            idx = order[k : k + BATCH_SONGS]
            longest = max(songs[i].n_bars for i in idx)
            batch = np.zeros((len(idx), longest * STEPS_PER_BAR), dtype=bool)
            for j, i in enumerate(idx):
                batch[j, : len(rhythms[i])] = rhythms[i]
            hits, vel, _ = model.generate_batch(batch, sampling=SamplingConfig(seed=seed + k))
            midi = np.where(hits > 0, np.clip(np.rint(vel * 127), 1, 127), 0).astype(np.uint8)
            for j, i in enumerate(idx):
                n = songs[i].n_bars
                per_song[i] = midi[j, :, : n * STEPS_PER_BAR].reshape(9, n, STEPS_PER_BAR).transpose(1, 0, 2)
            bar.update(sum(songs[i].n_bars for i in idx))
    bar.close()
    parts = [p for p in per_song if p is not None]
    return np.concatenate(parts) if parts else np.zeros((0, 9, STEPS_PER_BAR), np.uint8)
