"""Issue 17: Ctrl-C at any point of writing a WAV leaves no file and nothing but the KeyboardInterrupt
(no stray ``Exception ignored in ... __del__`` from a half-made writer)."""

from __future__ import annotations

import gc
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from rhythmicnet.offline.audio_render import write_wav

# (not tempfile.py: an interrupt inside its one-time lock set-up would deadlock the next mkstemp)
_WATCHED = ("audio_render.py", "wave.py", "fileio.py", "contextlib.py")


def _interrupt_at(n: int):
    """A tracer that raises KeyboardInterrupt at the n-th line executed (as a signal would between two
    bytecodes); returns (tracer, counter)."""
    count = [0]

    def tracer(frame, event, arg):
        if event == "call" and not frame.f_code.co_filename.endswith(_WATCHED):
            return None  # numpy's internals: no signal handling matters there
        if event == "line":
            count[0] += 1
            if count[0] == n:
                raise KeyboardInterrupt
        return tracer

    return tracer, count


def _write_in_blocks(target: Path, audio: np.ndarray, sample_rate: int) -> None:
    """audio_stream.render_wavs's way: an atomic temp file and a WavWriter fed block by block."""
    from rhythmicnet.fileio import atomic_path
    from rhythmicnet.offline.audio_render import WavWriter

    with atomic_path(target) as tmp, WavWriter(tmp, sample_rate) as w:
        for start in range(0, len(audio), 64):
            w.writeframes(np.rint(audio[start:start + 64] * 32767).astype("<i2").tobytes())


@pytest.mark.parametrize("writer", [write_wav, _write_in_blocks])
def test_an_interrupt_anywhere_in_write_wav_leaves_nothing(tmp_path: Path, monkeypatch, writer) -> None:
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.object}"))
    audio = np.linspace(-0.5, 0.5, 200, dtype=np.float32)[:, None].repeat(2, axis=1)
    target = tmp_path / "soundtrack.wav"
    n, completed = 0, False
    while not completed:
        n += 1
        tracer, count = _interrupt_at(n)
        sys.settrace(tracer)
        try:
            writer(target, audio, 48000)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        completed = count[0] < n  # ran to the end without reaching the n-th line
        # the half-made writer sits in a reference cycle with the interrupt's traceback, all of it made in
        # this iteration: a youngest-generation collection finds it (a full one each time took ~30 s)
        gc.collect(0)
        assert unraisable == [], f"interrupt at line {n}: {unraisable}"
        if not completed:  # nothing but, when the rename had happened, the whole file
            assert [p.name for p in tmp_path.iterdir() if p != target] == [], f"interrupt at line {n} left a file"
            if target.exists():
                assert target.stat().st_size == 44 + 200 * 4
                target.unlink()
    gc.collect()
    assert unraisable == [], unraisable
    assert n > 10  # the tracer did see write_wav's lines
    with wave.open(str(target), "rb") as w:  # and the finished file is a proper 16-bit stereo WAV
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, 48000, 200)
        frames = np.frombuffer(w.readframes(200), dtype="<i2").reshape(-1, 2)
    np.testing.assert_allclose(frames[:, 0] / 32767, audio[:, 0], atol=1 / 32767)


@pytest.mark.parametrize("seconds", [0.0, 1.5])
def test_wav_header_is_the_canonical_one(tmp_path: Path, seconds: float) -> None:
    n = int(seconds * 48000)
    audio = np.zeros((n, 2), dtype=np.float32)
    write_wav(tmp_path / "a.wav", audio, 48000)
    with wave.open(str(tmp_path / "b.wav"), "wb") as w:  # what the standard library writes
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(np.zeros((n, 2), "<i2").tobytes())
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
