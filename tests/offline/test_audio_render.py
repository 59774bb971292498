"""MIDI -> WAV rendering with FluidSynth: timing under a tempo map, drum bank, length, mastering, WAV I/O."""

from __future__ import annotations

import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from rhythmicnet.errors import InputError
from rhythmicnet.offline import audio_render
from rhythmicnet.offline.audio_render import (
    apply_gain,
    default_soundfont,
    master,
    master_with_gain,
    mix,
    render_midi_to_wav,
    synthesize,
    write_wav,
)

SR = 48000
GM = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
pytestmark = pytest.mark.skipif(not GM.is_file(), reason="FluidR3_GM.sf2 (fluid-soundfont-gm) not installed")

KICK_S = 1.0  # where the tempo map below puts the kick
PIANO_S = (2.0, 2.5)


def _tiny_midi() -> mido.MidiFile:
    """Kick on channel 10 at 1.0 s and a piano C4 at 2.0-2.5 s, under 120 bpm then 60 bpm from tick 480.

    Ticks -> seconds: 480 ticks at 120 bpm = 0.5 s; then 480 ticks = 1 s. Kick at tick 720 = 1.0 s,
    piano at tick 1200 = 2.0 s to tick 1440 = 2.5 s (the file's end).
    """
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    drums, piano = mido.MidiTrack(), mido.MidiTrack()
    mid.tracks += [drums, piano]
    drums.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0))
    drums.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=480))
    drums.append(mido.Message("note_on", channel=9, note=36, velocity=120, time=240))
    drums.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=120))
    piano.append(mido.Message("program_change", channel=0, program=0, time=0))
    piano.append(mido.Message("note_on", channel=0, note=60, velocity=100, time=1200))
    piano.append(mido.Message("note_off", channel=0, note=60, velocity=0, time=240))
    return mid


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _window(a: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return a[int(t0 * SR):int(t1 * SR)]


def test_synthesize_length_content_and_onset():
    a = synthesize(_tiny_midi(), GM, sample_rate=SR)
    assert a.dtype == np.float32 and a.shape == (round((PIANO_S[1] + 1.0) * SR), 2)  # end of file + 1 s tail
    assert np.isfinite(a).all()
    assert _rms(_window(a, 0.0, 0.9)) < 1e-4  # silence before the kick
    assert _rms(_window(a, KICK_S, KICK_S + 0.2)) > 0.01  # the kick on the drum channel is audible
    assert _rms(_window(a, PIANO_S[0], PIANO_S[1])) > 0.01  # the piano too
    onset = int(np.argmax(np.abs(a).max(axis=1) > 0.01)) / SR
    assert abs(onset - KICK_S) < 0.02


@pytest.mark.parametrize("duration_s", [1.2, 4.0])
def test_synthesize_exact_duration(duration_s):
    a = synthesize(_tiny_midi(), GM, sample_rate=SR, duration_s=duration_s)
    assert a.shape == (round(duration_s * SR), 2)
    if duration_s > 3.5:
        assert _rms(a[-SR // 10:]) < 1e-3  # padding past the tail is (near) silence


def _spectral_centroid(a: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(a[:, 0].astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(a), 1.0 / SR)
    return float((power * freqs).sum() / power.sum())


def test_drum_channel_uses_percussion_bank():
    # A closed hi-hat (42) is bright on the GM kit; on a melodic bank 42 would be a low F#2 (~92 Hz).
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("program_change", channel=9, program=0, time=0))  # a kit change stays a kit
    track.append(mido.Message("note_on", channel=9, note=42, velocity=120, time=0))
    track.append(mido.Message("note_off", channel=9, note=42, velocity=0, time=240))
    a = synthesize(mid, GM, sample_rate=SR, duration_s=0.2)
    assert _spectral_centroid(a) > 3000.0


def test_int16_fallback_matches_float_path(monkeypatch):
    a = synthesize(_tiny_midi(), GM, sample_rate=SR, duration_s=1.3)

    def no_lib(*_args, **_kwargs):
        raise OSError("no float writer")

    monkeypatch.setattr(audio_render.ctypes, "CDLL", no_lib)
    b = synthesize(_tiny_midi(), GM, sample_rate=SR, duration_s=1.3)
    assert b.shape == a.shape
    assert np.abs(a - b).max() < 2e-3  # int16 quantisation (x MAKEUP_GAIN) + dither


def test_each_call_deletes_its_synth(monkeypatch, tmp_path):
    import fluidsynth

    deleted: list[int] = []

    class CountingSynth(fluidsynth.Synth):
        def delete(self):
            deleted.append(1)
            super().delete()

    monkeypatch.setattr(fluidsynth, "Synth", CountingSynth)
    synthesize(_tiny_midi(), GM, sample_rate=SR, duration_s=0.1)
    assert deleted == [1]
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"not a soundfont")
    with pytest.raises(InputError, match="junk.sf2"):
        synthesize(_tiny_midi(), junk, sample_rate=SR, duration_s=0.1)
    assert deleted == [1, 1]  # deleted on the error path too


def test_missing_soundfont_is_input_error(tmp_path):
    with pytest.raises(InputError, match="nope.sf2"):
        synthesize(_tiny_midi(), tmp_path / "nope.sf2")


def test_default_soundfont(monkeypatch, tmp_path):
    monkeypatch.delenv(audio_render.SOUNDFONT_ENV, raising=False)
    assert default_soundfont() == GM
    monkeypatch.setenv(audio_render.SOUNDFONT_ENV, str(tmp_path / "mine.sf2"))
    assert default_soundfont() == tmp_path / "mine.sf2"
    monkeypatch.delenv(audio_render.SOUNDFONT_ENV)
    monkeypatch.setattr(audio_render, "_SF2_DIR", tmp_path)
    monkeypatch.setattr(audio_render, "_DEFAULT_SOUNDFONTS", (tmp_path / "FluidR3_GM.sf2",))
    with pytest.raises(InputError, match="fluid-soundfont-gm"):
        default_soundfont()
    (tmp_path / "MuseScore_General.sf3").write_bytes(b"x")
    assert default_soundfont() == tmp_path / "MuseScore_General.sf3"


def test_music_midi_file_renders():
    # The project's real two-track layout (drums channel 10 with tempo, instrument channel 1).
    from rhythmicnet.models.drum_grid import DrumGrid
    from rhythmicnet.models.remi import BarNote
    from rhythmicnet.offline.music_midi import music_midi

    hits = np.zeros((9, 16), dtype=bool)
    hits[0, ::4] = True
    mid = music_midi(DrumGrid.from_hits(hits, bpm=120.0), [[BarNote(0, 60, 90, 4), BarNote(8, 64, 90, 4)]],
                     program=24, instrument="guitar")
    a = synthesize(mid, GM, sample_rate=SR)
    assert a.shape[0] == round((2.0 + 1.0) * SR)  # one 4/4 bar at 120 bpm + tail
    assert _rms(_window(a, 0.0, 0.3)) > 0.01


def test_mix_pads_to_longest_and_spreads_mono():
    a = np.ones((4, 2), np.float32)
    b = np.full(6, 0.5, np.float32)
    m = mix([a, b])
    assert m.shape == (6, 2) and m.dtype == np.float32
    np.testing.assert_allclose(m[:4], 1.5)
    np.testing.assert_allclose(m[4:], 0.5)
    with pytest.raises(ValueError):
        mix([])


def test_master_limits_peak_and_fades_out():
    t = np.arange(2 * SR) / SR
    loud = np.stack([3.0 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    loud[100] = np.nan
    loud[200] = np.inf
    out = master(loud, SR, peak_dbfs=-1.0, fade_s=0.5)
    limit = 10 ** (-1.0 / 20)
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= limit + 1e-7
    assert np.abs(out).max() > 0.95 * limit  # normalised to the peak, not below it
    assert out[-1].tolist() == [0.0, 0.0]
    assert np.abs(out[-SR // 100:]).max() < 0.01 * limit  # ~0 over the last 10 ms
    assert np.abs(out[-SR // 2 - 1000:-SR // 2]).max() > 0.9 * limit  # full level before the fade

    quiet = (0.3 * np.sin(2 * np.pi * 220 * t))[:, None].astype(np.float32)
    q = master(quiet, SR, fade_s=0.0)
    np.testing.assert_allclose(q, quiet)  # quiet material is not raised


def test_stems_with_the_mix_gain_add_up_to_the_master():
    rng = np.random.default_rng(1)
    stems = [rng.uniform(-0.8, 0.8, size=(SR, 2)).astype(np.float32), rng.uniform(-0.8, 0.8, size=(SR // 2, 2))]
    mixed, gain = master_with_gain(mix(stems), SR)
    assert 0 < gain < 1
    np.testing.assert_allclose(mixed, master(mix(stems), SR))
    parts = mix([apply_gain(stems[0], gain, SR), apply_gain(np.pad(stems[1], ((0, SR // 2), (0, 0))), gain, SR)])
    np.testing.assert_allclose(parts, mixed, atol=1e-6)
    assert master_with_gain(0.1 * stems[0], SR)[1] == 1.0


def test_write_wav_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, size=(1000, 2)).astype(np.float32)
    path = write_wav(tmp_path / "x.wav", audio, SR)
    assert path == tmp_path / "x.wav"
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, SR, 1000)
        back = np.frombuffer(w.readframes(1000), dtype="<i2").reshape(-1, 2) / 32767.0
    assert np.abs(back - audio).max() <= 0.5 / 32767 + 1e-6
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # no temp file left


def test_render_midi_to_wav(tmp_path):
    out = tmp_path / "track.wav"
    audio = render_midi_to_wav(_tiny_midi(), out, soundfont=GM, duration_s=3.0)
    assert audio.shape == (3 * SR, 2)
    assert np.abs(audio).max() <= 10 ** (-1 / 20) + 1e-7
    with wave.open(str(out), "rb") as w:
        assert w.getnframes() == 3 * SR and w.getnchannels() == 2
