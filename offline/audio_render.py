"""MIDI -> stereo audio with FluidSynth, offline: synthesis, mixing, mastering and WAV writing.

The output stage of ``rhythmicnet render``: the generated drums + instrument MIDI becomes a 16-bit
stereo WAV that :mod:`rhythmicnet.offline.video_mux` puts under the dance video.

Decisions:

* **Offline rendering, no audio driver.** Each :func:`synthesize` call builds its own
  ``fluidsynth.Synth`` (16 MIDI channels, gain 0.2), loads the SoundFont, and deletes the synth (and
  with it the SoundFont) in ``finally``, so nothing outlives the call. Samples are rendered as
  float32 with ``fluid_synth_write_float`` (bound with ctypes from pyfluidsynth's own library: no
  int16 clipping inside the synth, no dither), falling back to pyfluidsynth's int16 ``get_samples``
  where that symbol is missing. A fixed make-up gain of x4 (+12 dB, ``MAKEUP_GAIN``) follows: at 0.2
  FluidR3 drums + chords peak near -18 dBFS, too quiet for a soundtrack; x4 puts them around -6 dBFS
  and :func:`master` pulls anything louder down, so :func:`synthesize` may return peaks above 1.
* **Timing from the file's tempo map.** The tracks are merged (``mido.merge_tracks``) and every delta
  is converted to seconds under the tempo in force at that point, so a tempo change every beat is
  followed exactly. Samples are generated in one render call per gap between events (not per
  sample); an event lands on the sample ``round(t * sample_rate)``, up to FluidSynth's 64-sample
  internal block later (1.3 ms at 48 kHz).
* **Drum bank.** FluidSynth makes channel 10 (``channel=9``) a drum channel by default; after loading
  the SoundFont every channel gets an explicit preset: bank 128 program 0 (GM standard kit) on
  channel 9, bank 0 program 0 (piano) elsewhere. The file's program changes then pick the program
  within that bank, so a program change on channel 9 selects a drum kit, never a melodic sound.
* **Length.** ``duration_s`` gives exactly ``round(duration_s * sample_rate)`` frames (events beyond
  are dropped; the synth keeps running past the last event, so releases and reverb ring out rather
  than a hard zero pad); without it the length is the end of the file (its last event, end_of_track
  included) plus ``tail_s``.
* **Mastering** (:func:`master`): NaN/inf -> 0, then a whole-track gain normalisation (no look-ahead,
  no limiter: it cannot pump or distort) that brings the peak down to ``peak_dbfs`` only when it is
  above it (quiet tracks are left as they are), then a half-cosine fade-out over the last ``fade_s``
  that reaches exactly 0 on the last sample. Gain and fade never raise a sample, so the result never
  exceeds the peak. :func:`master_with_gain` also returns that gain, and :func:`apply_gain` applies
  it (and the same fade) to each stem, so stems written beside the mix add up to it.
* **WAV.** 16-bit PCM stereo (the canonical 44-byte header, then the samples), written atomically; samples are clipped
  to [-1, 1] and scaled by 32767 (symmetric, so +1 and -1 both fit).
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import mido
import numpy as np

from rhythmicnet.errors import InputError, OutputError
from rhythmicnet.fileio import atomic_path
from rhythmicnet.models.midi_messages import DRUM_CHANNEL  # the channels, defined once

__all__ = [
    "DRUM_CHANNEL",
    "SOUNDFONT_ENV",
    "apply_gain",
    "default_soundfont",
    "master",
    "master_with_gain",
    "mix",
    "render_midi_to_wav",
    "synthesize",
    "write_wav",
]

log = logging.getLogger(__name__)

SOUNDFONT_ENV = "RHYTHMICNET_SOUNDFONT"
DRUM_BANK = 128
SYNTH_GAIN = 0.2
#: Applied in float after synthesis: FluidR3 at gain 0.2 peaks near -18 dBFS for drums + chords, too
#: quiet for a soundtrack; x4 (+12 dB) puts ordinary material around -6 dBFS and :func:`master` pulls
#: anything louder down to its peak.
MAKEUP_GAIN = 4.0
_MAX_CHUNK = 1 << 16  # frames per C call (FluidSynth takes an int length; keeps any one call short)
_SF2_DIR = Path("/usr/share/sounds/sf2")
_DEFAULT_SOUNDFONTS = (_SF2_DIR / "FluidR3_GM.sf2", _SF2_DIR / "default-GM.sf2")
_INT16_SCALE = 32767.0


def default_soundfont() -> Path:
    """``$RHYTHMICNET_SOUNDFONT`` if set, else the first General MIDI SoundFont found on the system."""
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        return Path(env)
    candidates = list(_DEFAULT_SOUNDFONTS)
    if _SF2_DIR.is_dir():
        candidates += sorted(_SF2_DIR.glob("MuseScore_General*.sf2")) + sorted(_SF2_DIR.glob("MuseScore_General*.sf3"))
    for path in candidates:
        if path.is_file():
            return path
    raise InputError("no General MIDI SoundFont found: install fluid-soundfont-gm or pass --soundfont PATH")


def _check_soundfont(soundfont: str | Path) -> Path:
    path = Path(soundfont)
    if not path.is_file():
        raise InputError(f"{path}: SoundFont not found")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: SoundFont is not readable")
    return path


def _timed_messages(mid: mido.MidiFile) -> list[tuple[float, mido.Message | mido.MetaMessage]]:
    """All messages of all tracks with their absolute time in seconds under the file's tempo map."""
    tpb = mid.ticks_per_beat
    tempo = 500_000  # MIDI default: 120 bpm until the first set_tempo
    now = 0.0
    out: list[tuple[float, mido.Message | mido.MetaMessage]] = []
    for msg in mido.merge_tracks(mid.tracks):
        if msg.time:
            now += mido.tick2second(msg.time, tpb, tempo)
        out.append((now, msg))
        if msg.type == "set_tempo":
            tempo = msg.tempo
    return out


def _writer(synth: Any) -> Callable[[np.ndarray], None]:
    """A function rendering ``len(buf)`` frames into a C-contiguous float32 ``(n, 2)`` slice ``buf``.

    Float output (``fluid_synth_write_float``) has no int16 clipping and no dither; pyfluidsynth only
    wraps the int16 writer, so the float one is bound with ctypes from the same library, falling back
    to ``get_samples`` where it is missing.
    """
    import fluidsynth

    try:
        fn = ctypes.CDLL(fluidsynth.lib).fluid_synth_write_float
    except (AttributeError, OSError, TypeError):
        fn = None
    if fn is None:
        log.debug("fluid_synth_write_float unavailable: using int16 get_samples")

        def write_s16(buf: np.ndarray) -> None:
            buf[:] = synth.get_samples(len(buf)).reshape(-1, 2).astype(np.float32) / np.float32(_INT16_SCALE)

        return write_s16
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_int, ctypes.c_int]

    def write_float(buf: np.ndarray) -> None:
        # Interleaved stereo straight into the output array: left at offset 0, right at 1, stride 2.
        ptr = buf.ctypes.data
        for start in range(0, len(buf), _MAX_CHUNK):
            n = min(_MAX_CHUNK, len(buf) - start)
            addr = ptr + start * 8
            if fn(synth.synth, n, addr, 0, 2, addr, 1, 2) != 0:
                raise RuntimeError("fluid_synth_write_float failed")

    return write_float


def _apply(synth: Any, msg: mido.Message | mido.MetaMessage) -> None:
    """Send one channel message to the synth (pyfluidsynth has no stubs); meta and sysex are ignored."""
    kind = msg.type
    if kind == "note_on":
        synth.noteon(msg.channel, msg.note, msg.velocity)  # velocity 0 is a note-off in FluidSynth too
    elif kind == "note_off":
        synth.noteoff(msg.channel, msg.note)
    elif kind == "program_change":
        synth.program_change(msg.channel, msg.program)
    elif kind == "control_change":
        synth.cc(msg.channel, msg.control, msg.value)
    elif kind == "pitchwheel":
        synth.pitch_bend(msg.channel, msg.pitch)


def synthesize(mid: mido.MidiFile, soundfont: str | Path, *, sample_rate: int = 48000, duration_s: float | None = None,
               tail_s: float = 1.0) -> np.ndarray:
    """Render ``mid`` with FluidSynth. Returns float32 ``(N, 2)`` audio in [-1, 1].

    ``N = round(duration_s * sample_rate)`` when ``duration_s`` is given, else the end of the file
    plus ``tail_s`` seconds. Raises InputError when the SoundFont is missing or unreadable.
    """
    import fluidsynth  # deferred: loads libfluidsynth, only needed here

    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if duration_s is not None and duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    sf_path = _check_soundfont(soundfont)
    events = _timed_messages(mid)
    end_s = events[-1][0] if events else 0.0
    total_s = duration_s if duration_s is not None else end_s + max(0.0, tail_s)
    n_total = int(round(total_s * sample_rate))
    out = np.zeros((n_total, 2), dtype=np.float32)

    synth = fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=float(sample_rate), channels=16)
    try:
        sfid = synth.sfload(str(sf_path))
        if sfid < 0:
            raise InputError(f"{sf_path}: not a readable SoundFont")
        for ch in range(16):
            bank = DRUM_BANK if ch == DRUM_CHANNEL else 0
            synth.program_select(ch, sfid, bank, 0)
        write = _writer(synth)
        pos = 0
        for t, msg in events:
            frame = int(round(t * sample_rate))
            if frame >= n_total:
                break  # cut: nothing after the requested length can be heard
            if frame > pos:
                write(out[pos:frame])
                pos = frame
            _apply(synth, msg)
        if n_total > pos:
            write(out[pos:])
    finally:
        synth.delete()
    log.debug("synthesised %.2f s (%d events) with %s", n_total / sample_rate, len(events), sf_path.name)
    out *= np.float32(MAKEUP_GAIN)
    return out


def _as_2d(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"audio must be (N,) or (N, C), got shape {a.shape}")
    return a


def mix(stems: Sequence[np.ndarray]) -> np.ndarray:
    """Sum stems, padding each with silence to the longest. Mono stems are spread to every channel.

    Returns float32 ``(N, C)``; no gain is applied (run :func:`master` afterwards).
    """
    if not stems:
        raise ValueError("mix needs at least one stem")
    arrays = [_as_2d(s) for s in stems]
    channels = max(a.shape[1] for a in arrays)
    if any(a.shape[1] not in (1, channels) for a in arrays):
        raise ValueError(f"stems have incompatible channel counts: {[a.shape[1] for a in arrays]}")
    out = np.zeros((max(a.shape[0] for a in arrays), channels), dtype=np.float32)
    for a in arrays:
        out[: a.shape[0]] += a  # (n, 1) broadcasts over channels
    return out


def master_with_gain(audio: np.ndarray, sample_rate: int, *, peak_dbfs: float = -1.0,
                     fade_s: float = 0.5) -> tuple[np.ndarray, float]:
    """:func:`master`, also returning the linear gain it applied (1.0 when the peak was already low).

    Give that gain to :func:`apply_gain` to write stems that add up to the mastered mix.
    """
    out = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)  # a copy
    if out.size == 0:
        return out, 1.0
    limit = float(10.0 ** (peak_dbfs / 20.0))
    peak = float(np.max(np.abs(out)))
    gain = limit / peak if peak > limit else 1.0
    if gain != 1.0:
        out *= np.float32(gain)
        # float32 rounding can land a hair above the limit; this clip only ever moves it back to it.
        np.clip(out, -limit, limit, out=out)
    _fade_out(out, sample_rate, fade_s)
    return out, gain


def master(audio: np.ndarray, sample_rate: int, *, peak_dbfs: float = -1.0, fade_s: float = 0.5) -> np.ndarray:
    """Peak-normalise down to ``peak_dbfs`` (only if louder) and fade out over the last ``fade_s``.

    Returns a float32 copy; NaN/inf become 0. See the module notes for why a whole-track gain.
    """
    return master_with_gain(audio, sample_rate, peak_dbfs=peak_dbfs, fade_s=fade_s)[0]


def apply_gain(audio: np.ndarray, gain: float, sample_rate: int, *, fade_s: float = 0.5) -> np.ndarray:
    """Scale by ``gain`` and fade out exactly as :func:`master` does (for stems of a mastered mix)."""
    out = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    out *= np.float32(gain)
    _fade_out(out, sample_rate, fade_s)
    return out


def _fade_out(out: np.ndarray, sample_rate: int, fade_s: float) -> None:
    """In place: half cosine from 1 to exactly 0 on the last sample (smooth start, no click at the end)."""
    n_fade = min(out.shape[0], int(round(max(0.0, fade_s) * sample_rate)))
    if n_fade > 1:
        ramp = (0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, n_fade)))).astype(np.float32)
        out[-n_fade:] *= ramp if out.ndim == 1 else ramp[:, None]
    elif n_fade == 1:
        out[-1] = 0.0


def wav_header(n_bytes: int, sample_rate: int, channels: int = 2) -> bytes:
    """The canonical 44-byte header of 16-bit PCM WAV data of ``n_bytes`` bytes (what ``wave`` writes)."""
    if n_bytes > 0xFFFFFFFF - 36:
        raise ValueError(f"{n_bytes} bytes of audio do not fit a WAV file (4 GiB at most)")
    block = 2 * channels
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + n_bytes, b"WAVE", b"fmt ", 16, 1, channels,
                       int(sample_rate), int(sample_rate) * block, block, 16, b"data", n_bytes)


class WavWriter:
    """16-bit PCM WAV written block by block to a plain file, the header's sizes patched on close.

    Used instead of ``wave.Wave_write``: that class's ``__del__`` prints an "Exception ignored"
    traceback when Ctrl-C lands between opening it and setting its format; this one has no ``__del__``
    (an abandoned file object is closed silently). ``writeframes`` takes little-endian int16 bytes."""

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, channels: int = 2) -> None:
        self.sample_rate, self.channels, self.bytes_written = int(sample_rate), channels, 0
        self._file: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 (closed by close())
        self._file.write(wav_header(0, self.sample_rate, channels))

    def writeframes(self, data: bytes | np.ndarray) -> None:
        assert self._file is not None, "WavWriter is closed"
        buf = memoryview(data if isinstance(data, bytes) else np.ascontiguousarray(data).data)
        self._file.write(buf)
        self.bytes_written += buf.nbytes

    def close(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        try:
            f.seek(0)
            f.write(wav_header(self.bytes_written, self.sample_rate, self.channels))
        finally:
            f.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_wav(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> Path:
    """Write 16-bit PCM stereo WAV atomically (mono input is duplicated to both channels).

    Written with :class:`WavWriter` (not ``wave``: Ctrl-C stays one line)."""
    a = _as_2d(audio)
    if a.shape[1] == 1:
        a = np.repeat(a, 2, axis=1)
    if a.shape[1] != 2:
        raise ValueError(f"write_wav writes stereo: got {a.shape[1]} channels")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)
    pcm = np.ascontiguousarray(np.rint(np.clip(a, -1.0, 1.0) * _INT16_SCALE).astype("<i2"))
    target = Path(path)
    with atomic_path(target) as tmp:
        try:
            with WavWriter(tmp, sample_rate) as w:
                w.writeframes(pcm)  # the array's buffer, no copy
        except OSError as e:
            raise OutputError(f"{target}: cannot write ({e.strerror or e})") from e
    return target


def render_midi_to_wav(mid: mido.MidiFile, path: str | os.PathLike[str], *, soundfont: str | Path | None = None,
                       sample_rate: int = 48000, duration_s: float | None = None, fade_s: float = 0.5) -> np.ndarray:
    """Synthesise ``mid``, master it and write it to ``path``. Returns the mastered float32 (N, 2) audio."""
    sf = default_soundfont() if soundfont is None else soundfont
    audio = master(synthesize(mid, sf, sample_rate=sample_rate, duration_s=duration_s), sample_rate, fade_s=fade_s)
    write_wav(path, audio, sample_rate)
    return audio
