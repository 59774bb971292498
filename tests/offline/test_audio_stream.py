"""Block-wise WAV rendering (offline/audio_stream.py) writes the whole-array path's samples, in flat memory."""

from __future__ import annotations

import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from rhythmicnet.offline import audio_render as ar
from rhythmicnet.offline.audio_stream import render_wavs

SR = 48000
GM = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
pytestmark = pytest.mark.skipif(not GM.is_file(), reason="FluidR3_GM.sf2 (fluid-soundfont-gm) not installed")


def _part(channel: int, notes: list[tuple[float, int]], program: int = 0) -> mido.MidiFile:
    """A one-track file at 120 BPM: (start beat, note) quarter notes, loud enough to clip the mix."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0))
    if channel != 9:
        tr.append(mido.Message("program_change", channel=channel, program=program, time=0))
    events = []
    for beat, note in notes:
        events.append((int(beat * 480), mido.Message("note_on", channel=channel, note=note, velocity=127)))
        events.append((int(beat * 480) + 400, mido.Message("note_off", channel=channel, note=note, velocity=0)))
    now = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        tr.append(msg.copy(time=tick - now))
        now = tick
    return mid


def _frames(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, SR)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


def test_blocks_write_the_same_samples_as_the_whole_array_path(tmp_path):
    # loud chords: the mix peaks above -1 dBFS, so the mastering gain (< 1) and its clip are exercised
    parts = {"drums": _part(9, [(b * 0.5, n) for b in range(12) for n in (36, 38, 49, 57)]),
             "piano": _part(0, [(b, n) for b in range(6) for n in (36, 43, 48, 52, 55, 60, 64, 67)])}
    duration = 3.3
    # the whole-array path render.py used before (synthesize -> mix -> master_with_gain / apply_gain)
    stems = {k: ar.synthesize(m, GM, sample_rate=SR, duration_s=duration) for k, m in parts.items()}
    mixed, gain = ar.master_with_gain(ar.mix(list(stems.values())), SR)
    assert gain < 0.9
    ref = tmp_path / "ref"
    ref.mkdir()
    ar.write_wav(ref / "soundtrack.wav", mixed, SR)
    for k, s in stems.items():
        ar.write_wav(ref / f"{k}.wav", ar.apply_gain(s, gain, SR), SR)
    out = tmp_path / "out"
    out.mkdir()
    # blocks much shorter than the fade-out and not a divisor of the length: every seam is crossed
    paths = render_wavs(parts, GM, out, sample_rate=SR, duration_s=duration, block=7001)
    assert list(paths) == ["soundtrack_wav", "drums_wav", "piano_wav"]
    for name in ("soundtrack", "drums", "piano"):
        a, b = _frames(ref / f"{name}.wav"), _frames(out / f"{name}.wav")
        assert a.shape == b.shape == (round(duration * SR), 2)
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in out.iterdir()) == ["drums.wav", "piano.wav", "soundtrack.wav"]  # no temp files
    assert np.abs(_frames(out / "soundtrack.wav")).max() > 0
