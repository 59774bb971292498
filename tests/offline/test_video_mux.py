"""Muxing the soundtrack into the video with ffmpeg, probing with ffprobe, and the skeleton video."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rhythmicnet.errors import InputError, OutputError, RhythmicNetError
from rhythmicnet.offline.audio_render import write_wav
from rhythmicnet.offline.video_mux import FFmpegNotFoundError, mux, probe, skeleton_video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg/ffprobe not installed")

SR = 48000
FPS = 30.0
CLICK_S = 0.5
SRC = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=30"]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """2-second test videos (H.264, VP9, MPEG-4 + noise audio) and 2.2 s / 1.5 s click WAVs."""
    d = tmp_path_factory.mktemp("media")
    _ffmpeg(*SRC, "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(d / "h264.mp4"))
    _ffmpeg(*SRC, "-t", "2", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p",
            str(d / "vp9.webm"))
    _ffmpeg(*SRC, "-f", "lavfi", "-i", "anoisesrc=sample_rate=44100:amplitude=0.3:seed=1", "-t", "2",
            "-c:v", "mpeg4", "-c:a", "aac", str(d / "mpeg4_audio.mp4"))
    for name, dur in (("long", 2.2), ("short", 1.5)):
        a = np.zeros((int(dur * SR), 2), np.float32)
        i = int(CLICK_S * SR)
        a[i:i + 48] = 0.8  # a 1 ms click: where it lands after muxing shows the A/V offset
        write_wav(d / f"{name}.wav", a, SR)
    return {p.stem: p for p in d.iterdir()}


def _streams(path: Path) -> list[tuple[str, str]]:
    res = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
                         capture_output=True, text=True, check=True)
    return [(s["codec_type"], s["codec_name"]) for s in json.loads(res.stdout)["streams"]]


def _decode_audio(path: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le",
                          "-ac", "2", "-ar", str(SR), "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, 2)[:, 0]


def _video_md5(path: Path) -> str:
    res = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                          "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return res.stdout.strip()


def _check_output(out: Path, video_duration: float) -> None:
    assert _streams(out) == [("video", "h264"), ("audio", "aac")]
    info = probe(out)
    assert info.audio_duration_s is not None
    assert abs(info.duration_s - video_duration) <= 1 / FPS
    assert abs(info.audio_duration_s - info.duration_s) <= 1 / info.fps
    assert info.video_start_s == 0.0 and info.audio_start_s == 0.0


def test_probe(media):
    info = probe(media["h264"])
    assert (info.video_codec, info.width, info.height, info.fps, info.has_audio) == ("h264", 160, 120, 30.0, False)
    assert info.duration_s == pytest.approx(2.0, abs=1e-3)
    assert probe(media["vp9"]).duration_s == pytest.approx(2.0, abs=1e-3)  # WebM: from the DURATION tag
    a = probe(media["mpeg4_audio"])
    assert (a.video_codec, a.has_audio, a.audio_codec) == ("mpeg4", True, "aac")
    wav = probe(media["long"])
    assert (wav.video_codec, wav.has_audio, wav.audio_sample_rate) == (None, True, SR)
    assert wav.duration_s == pytest.approx(2.2, abs=1e-3)


@pytest.mark.parametrize("wav", ["long", "short"])
def test_mux_copy_keeps_video_and_fits_audio(media, tmp_path, wav):
    out = mux(media["h264"], media[wav], tmp_path / "out.mp4", video_codec="copy")
    assert out == tmp_path / "out.mp4"
    _check_output(out, 2.0)
    assert _video_md5(out) == _video_md5(media["h264"])  # the stream is copied, bit for bit
    audio = _decode_audio(out)
    click = int(np.argmax(np.abs(audio) > 0.3)) / SR
    assert abs(click - CLICK_S) < 0.002  # AAC priming is skipped: the first WAV sample plays at t=0
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temp file left


def test_mux_auto_copies_h264_and_forced_h264_reencodes(media, tmp_path):
    auto = mux(media["h264"], media["long"], tmp_path / "auto.mp4")
    assert _video_md5(auto) == _video_md5(media["h264"])
    forced = mux(media["h264"], media["long"], tmp_path / "forced.mp4", video_codec="h264")
    _check_output(forced, 2.0)
    assert _video_md5(forced) != _video_md5(media["h264"])


@pytest.mark.parametrize("src", ["vp9", "mpeg4_audio"])
def test_mux_auto_reencodes_other_codecs(media, tmp_path, src):
    out = mux(media[src], media["short"], tmp_path / "out.mp4")
    _check_output(out, 2.0)
    with pytest.raises(InputError, match="not H.264"):
        mux(media[src], media["short"], tmp_path / "copy.mp4", video_codec="copy")
    assert not (tmp_path / "copy.mp4").exists()


def test_keep_audio_mixes_original_under_soundtrack(media, tmp_path):
    src = media["mpeg4_audio"]
    out = mux(src, media["short"], tmp_path / "keep.mp4", keep_audio=True)
    _check_output(out, 2.0)
    original, mixed = _decode_audio(src), _decode_audio(out)
    # After the 1.5 s soundtrack ends only the original is left: in sync (lag 0) at -12 dB.
    lo, hi = int(1.6 * SR), int(1.9 * SR)
    seg = original[lo:hi]
    lags = range(-200, 201)
    corr = [float(np.dot(seg, mixed[lo + k:hi + k])) for k in lags]
    assert lags[int(np.argmax(corr))] == 0
    gain = max(corr) / float(np.dot(seg, seg))
    assert 0.18 < gain < 0.32  # 10 ** (-12 / 20) = 0.25, give or take AAC
    plain = _decode_audio(mux(src, media["short"], tmp_path / "plain.mp4"))
    assert np.abs(plain[lo:hi]).max() < 1e-3  # without keep_audio the original is gone


def test_keep_audio_without_audio_track_warns(media, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="rhythmicnet.offline.video_mux"):
        out = mux(media["h264"], media["long"], tmp_path / "out.mp4", keep_audio=True)
    assert "keep_audio ignored" in caplog.text
    _check_output(out, 2.0)


def test_bad_inputs_are_input_errors(media, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match="junk.mp4"):
        probe(junk)
    with pytest.raises(InputError, match="junk.mp4"):
        mux(junk, media["long"], tmp_path / "out.mp4")
    with pytest.raises(InputError, match="missing.mp4"):
        mux(tmp_path / "missing.mp4", media["long"], tmp_path / "out.mp4")
    with pytest.raises(InputError, match="no audio stream"):
        mux(media["h264"], media["vp9"], tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_unwritable_output_and_ffmpeg_failure_are_output_errors(media, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError):
        mux(media["h264"], media["long"], blocker / "out.mp4")
    with pytest.raises(OutputError):
        mux(media["h264"], media["long"], tmp_path / "no" / "such" / "out.mp4")
    with pytest.raises(OutputError, match="ffmpeg failed"):
        mux(media["h264"], media["long"], tmp_path / "out.mp4", audio_bitrate="loud")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing half-written


def test_missing_ffmpeg_is_a_clear_error(media, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(FFmpegNotFoundError, match="install ffmpeg") as err:
        probe(media["h264"])
    assert isinstance(err.value, RhythmicNetError)


def _gray_frames(path: Path, w: int, h: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray",
                          "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w)


def test_skeleton_video(tmp_path):
    n = 45
    times = 0.25 + np.arange(n) / FPS  # 1.5 s of keypoints, not starting at 0
    base = np.array([[320, 100], [330, 90], [310, 90], [340, 95], [300, 95], [360, 160], [280, 160], [380, 230],
                     [260, 230], [390, 300], [250, 300], [340, 300], [300, 300], [345, 400], [295, 400], [350, 470],
                     [290, 470]], float)
    sway = 10 * np.sin(2 * np.pi * 2 * (times - times[0]))
    keypoints = base[None] + np.stack([sway, np.zeros(n)], axis=-1)[:, None, :]
    confidence = np.ones((n, 17))
    confidence[:, 3] = 0.0  # an unseen ear is not drawn
    beats = np.array([times[0] + 0.5, times[0] + 1.0])
    out = skeleton_video(keypoints, confidence, times, beats, tmp_path / "skel.mp4", image_size=(640, 480),
                         fps=FPS, max_size=320)
    info = probe(out)
    assert (info.video_codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 320, 240)
    assert abs(info.duration_s - (times[-1] - times[0] + 1 / FPS)) <= 1 / FPS / 2
    frames = _gray_frames(out, 320, 240)
    assert len(frames) == n
    bg = np.median(frames.reshape(n, -1), axis=1)
    assert bg[15] > bg[14] + 50 and bg[15] > bg[20] + 50  # the beat at +0.5 s flashes frame 15, then decays
    assert bg[14] < 40  # dark background between beats
    assert frames[5].max() > 100  # the skeleton is drawn
    assert [p.name for p in tmp_path.iterdir()] == ["skel.mp4"]
