"""The render's WAVs in blocks: memory stays flat however long the clip.

:func:`render_wavs` writes what ``render`` wrote with :mod:`.audio_render`'s whole-array functions
(``synthesize`` per stem, ``mix``, ``master_with_gain``, ``apply_gain``, ``write_wav``), sample for
sample the same, without ever holding a whole track: an hour at 48 kHz stereo float32 is 1.4 GB per
stem, and the whole-array path held five such arrays at once.

1. Each stem is synthesised by FluidSynth in blocks of ``block`` frames (events still land on their
   own sample) into an anonymous temporary file of float32 frames beside the outputs (removed
   however the call ends); the make-up gain is applied per block.
2. A first pass over the stems' blocks finds the mix's peak, hence the mastering gain.
3. A second pass writes the mastered mix and the gained stems, block by block, with the same
   fade-out over the last ``fade_s``, into WAVs written atomically.

Memory: a few blocks (``block`` = 2**18 frames, 2 MB of float32 stereo each). Disk: 8 bytes per
frame per stem while it runs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import mido
import numpy as np

from rhythmicnet.errors import InputError, OutputError
from rhythmicnet.fileio import atomic_path
from rhythmicnet.offline import audio_render as ar

BLOCK_FRAMES = 1 << 18


def synthesize_to(file: IO[bytes], mid: mido.MidiFile, soundfont: str | Path, *, sample_rate: int,
                  duration_s: float, block: int = BLOCK_FRAMES) -> int:
    """:func:`.audio_render.synthesize` (with ``duration_s``) written to ``file`` as float32 (N, 2)
    frames, ``block`` frames at a time. Returns N."""
    import fluidsynth  # deferred: loads libfluidsynth

    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    sf_path = ar._check_soundfont(soundfont)
    events = ar._timed_messages(mid)
    n_total = int(round(duration_s * sample_rate))
    buf = np.zeros((block, 2), dtype=np.float32)
    fill = 0  # frames of buf rendered and not yet written
    synth = fluidsynth.Synth(gain=ar.SYNTH_GAIN, samplerate=float(sample_rate), channels=16)
    try:
        sfid = synth.sfload(str(sf_path))
        if sfid < 0:
            raise InputError(f"{sf_path}: not a readable SoundFont")
        for ch in range(16):
            synth.program_select(ch, sfid, ar.DRUM_BANK if ch == ar.DRUM_CHANNEL else 0, 0)
        write = ar._writer(synth)

        def render(n: int) -> None:
            nonlocal fill
            while n > 0:
                k = min(n, block - fill)
                write(buf[fill : fill + k])
                fill += k
                n -= k
                if fill == block:
                    flush()

        def flush() -> None:
            nonlocal fill
            part = buf[:fill]
            part *= np.float32(ar.MAKEUP_GAIN)
            file.write(part.tobytes())
            fill = 0

        pos = 0
        for t, msg in events:
            frame = int(round(t * sample_rate))
            if frame >= n_total:
                break
            if frame > pos:
                render(frame - pos)
                pos = frame
            ar._apply(synth, msg)
        if n_total > pos:
            render(n_total - pos)
        if fill:
            flush()
    finally:
        synth.delete()
    file.flush()
    return n_total


def _read(file: IO[bytes], start: int, n: int) -> np.ndarray:
    """Frames ``start .. start + n`` of a float32 stereo file. Shape: (n, 2)."""
    file.seek(start * 8)
    return np.frombuffer(file.read(n * 8), dtype=np.float32).reshape(-1, 2)  # read-only


def _clean(file: IO[bytes], start: int, n: int) -> np.ndarray:
    """:func:`_read` as a writable copy with NaN/inf as 0 (as ``apply_gain`` does)."""
    return np.nan_to_num(_read(file, start, n), nan=0.0, posinf=0.0, neginf=0.0)


def _fade(n_total: int, sample_rate: int, fade_s: float) -> tuple[int, np.ndarray]:
    """First frame of the fade-out and its gains, as :func:`.audio_render._fade_out` makes them."""
    n_fade = min(n_total, int(round(max(0.0, fade_s) * sample_rate)))
    if n_fade > 1:
        return n_total - n_fade, (0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, n_fade)))).astype(np.float32)
    if n_fade == 1:
        return n_total - 1, np.zeros(1, np.float32)
    return n_total, np.zeros(0, np.float32)


def _pcm(block: np.ndarray) -> bytes:
    """:func:`.audio_render.write_wav`'s conversion of float samples to 16-bit PCM."""
    a = np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.rint(np.clip(a, -1.0, 1.0) * ar._INT16_SCALE).astype("<i2").tobytes()


def render_wavs(parts: Mapping[str, mido.MidiFile], soundfont: str | Path, outdir: str | os.PathLike[str], *,
                sample_rate: int, duration_s: float, mix_name: str = "soundtrack", peak_dbfs: float = -1.0,
                fade_s: float = 0.5, block: int = BLOCK_FRAMES) -> dict[str, Path]:
    """Synthesise each part, master their mix and write ``<mix_name>.wav`` and ``<part>.wav`` into
    ``outdir`` (16-bit stereo, atomically). Returns ``{"<mix_name>_wav": path, "<part>_wav": path, ...}``.

    The same samples as ``write_wav(master_with_gain(mix([synthesize(p) ...])))`` for the mix and
    ``write_wav(apply_gain(stem, gain))`` for each part, in bounded memory (see the module notes)."""
    if not parts:
        raise ValueError("render_wavs needs at least one part")
    out = Path(outdir)
    names = list(parts)
    with contextlib.ExitStack() as stack:
        files: dict[str, IO[bytes]] = {}
        n_total = 0
        for name in names:
            try:
                f = stack.enter_context(tempfile.TemporaryFile(prefix=f".{name}.", suffix=".f32", dir=out))
            except OSError as e:
                raise OutputError(f"{out}: cannot write a temporary audio file ({e.strerror or e})") from e
            files[name] = f
            n_total = synthesize_to(f, parts[name], soundfont, sample_rate=sample_rate, duration_s=duration_s,
                                    block=block)

        def mixed(start: int, n: int) -> np.ndarray:
            acc = np.zeros((n, 2), dtype=np.float32)
            for name in names:
                acc += _read(files[name], start, n)
            return np.nan_to_num(acc, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

        # pass 1: the mix's peak -> the mastering gain (as master_with_gain)
        peak = 0.0
        for start in range(0, n_total, block):
            peak = max(peak, float(np.max(np.abs(mixed(start, min(block, n_total - start))), initial=0.0)))
        limit = float(10.0 ** (peak_dbfs / 20.0))
        gain = limit / peak if peak > limit else 1.0
        fade_at, ramp = _fade(n_total, sample_rate, fade_s)

        def finish(a: np.ndarray, start: int, clip: bool) -> np.ndarray:
            """Gain (and for the mix the clip to the limit), then the fade-out, in place."""
            if gain != 1.0 or not clip:
                a *= np.float32(gain)
            if clip and gain != 1.0:
                np.clip(a, -limit, limit, out=a)
            lo = max(start, fade_at)
            if lo < start + len(a):
                a[lo - start :] *= ramp[lo - fade_at : start + len(a) - fade_at, None]
            return a

        # pass 2: write the mastered mix and the stems
        paths = {f"{mix_name}_wav": out / f"{mix_name}.wav", **{f"{n}_wav": out / f"{n}.wav" for n in names}}
        writers: dict[str, Any] = {}
        try:
            for key, path in paths.items():
                tmp = stack.enter_context(atomic_path(path))
                # not wave.open: its writer's __del__ prints a traceback after Ctrl-C (issue 17)
                writers[key] = stack.enter_context(ar.WavWriter(tmp, sample_rate))
            for start in range(0, n_total, block):
                n = min(block, n_total - start)
                writers[f"{mix_name}_wav"].writeframes(_pcm(finish(mixed(start, n), start, clip=True)))
                for name in names:
                    writers[f"{name}_wav"].writeframes(_pcm(finish(_clean(files[name], start, n), start, clip=False)))
        except OSError as e:
            raise OutputError(f"{out}: cannot write the WAVs ({e.strerror or e})") from e
    return paths
