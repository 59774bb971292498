"""Put the generated soundtrack under the dance video: ffprobe, ffmpeg muxing and a skeleton video.

The output stage of ``rhythmicnet render`` after :mod:`rhythmicnet.offline.audio_render` has written
the WAV. Everything shells out to the ``ffmpeg`` / ``ffprobe`` executables on ``PATH``.

Decisions:

* **Output.** Always MP4 with one H.264 video stream and one AAC (LC, ``audio_bitrate``) stream,
  ``-movflags +faststart``, written atomically (temp file beside ``out``, renamed on success).
  ``video_codec="copy"`` copies the stream and refuses anything but H.264 (VP9 or MPEG-4 part 2 in
  MP4 plays in browsers but many editors reject it); ``"h264"`` re-encodes with libx264
  (``-preset veryfast -crf 20 -pix_fmt yuv420p``, odd sizes cropped to even, as 4:2:0 needs);
  ``"auto"`` copies only an H.264 stream in 8-bit 4:2:0 (``yuv420p``/``yuvj420p``, what every player
  and editor takes) and re-encodes anything else.
* **Length and sync.** The audio is cut or padded with silence to exactly the video stream's
  duration in samples (``apad=whole_len=N,atrim=end_sample=N``), so no ``-shortest`` is needed
  (it cuts at packet granularity and depends on muxer buffering). The AAC encoder's priming delay
  (1024 samples) is handled by ffmpeg's MP4 muxer, which writes an edit list that skips it: the
  first WAV sample plays with the first video frame (the tests check a click's position after a
  decode, and ``|audio - video| <= 1/fps`` with ffprobe).
* **keep_audio.** The original audio is resampled onto the soundtrack's rate with its start padded
  to t=0 (``aresample=async=1:first_pts=0``, so a late-starting original stays in sync), attenuated
  by 12 dB (``KEEP_AUDIO_DB``) and summed (``amix ... normalize=0``: no hidden 1/n scaling) with
  the soundtrack at full level; a look-ahead limiter (``alimiter``, -1 dBFS ceiling, auto-level off,
  latency compensated so nothing shifts) catches the peaks where both are loud. Without an audio
  stream in the video keep_audio is a no-op with a warning.
* **Errors.** Missing/unreadable inputs -> InputError naming the file; ffmpeg failures ->
  OutputError with the last line of ffmpeg's stderr; no ffmpeg/ffprobe -> :class:`FFmpegNotFoundError`.
* **Skeleton video** (keypoints without a video): COCO-17 bones (``COCO17_EDGES``) on a dark
  background, left side cyan, right side orange, joints below ``MIN_CONFIDENCE`` not drawn; each beat
  flashes the background, starting on the frame nearest the beat and decaying linearly to nothing
  over ``FLASH_S`` (100 ms). Frame ``i`` shows the keypoint sample nearest ``times[0] + i / fps``
  (nearest, not interpolated: interpolating towards an unseen joint's (0, 0) would draw garbage).
  Raw BGR frames are piped straight into ffmpeg/libx264 (no mp4v intermediate); the length is
  ``round((times[-1] - times[0]) * fps) + 1`` frames.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from rhythmicnet.errors import FFmpegNotFoundError, InputError, OutputError
from rhythmicnet.fileio import atomic_path
from rhythmicnet.models.skeleton import COCO17_EDGES, NUM_JOINTS

__all__ = [
    "FFmpegNotFoundError",
    "KEEP_AUDIO_DB",
    "VideoInfo",
    "mux",
    "probe",
    "skeleton_video",
]

log = logging.getLogger(__name__)

KEEP_AUDIO_DB = -12.0
LIMIT_DBFS = -1.0
FLASH_S = 0.1
MIN_CONFIDENCE = 0.2
_COPYABLE_PIX_FMTS = ("yuv420p", "yuvj420p", None)  # None: ffprobe did not say; trust the codec
_X264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p")


@dataclass
class VideoInfo:
    """What :func:`probe` found. ``duration_s`` is the video stream's duration (the audio's for an
    audio-only file); width/height/fps are 0 without a video stream."""

    video_codec: str | None
    width: int
    height: int
    fps: float
    duration_s: float
    has_audio: bool
    audio_codec: str | None
    audio_duration_s: float | None = None
    audio_sample_rate: int | None = None
    pix_fmt: str | None = None
    video_start_s: float = 0.0
    audio_start_s: float | None = None


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FFmpegNotFoundError("ffmpeg/ffprobe not found: install ffmpeg")
    return path


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _rate(value: Any) -> float:
    """ffprobe's "30000/1001" -> 29.97; "0/0" or junk -> 0."""
    try:
        r = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(r) if r > 0 else 0.0


def _hms(value: Any) -> float | None:
    """Matroska's DURATION tag "00:00:02.000000000" -> 2.0."""
    try:
        h, m, s = str(value).split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None


def _stream_duration(stream: dict[str, Any], fps: float = 0.0) -> float | None:
    d = _float(stream.get("duration"))
    if d is None:  # Matroska/WebM keep stream durations in a tag
        tags = {k.upper(): v for k, v in (stream.get("tags") or {}).items()}
        d = _hms(tags["DURATION"]) if "DURATION" in tags else None
    if d is None and fps > 0:
        frames = _float(stream.get("nb_frames"))
        d = frames / fps if frames else None
    return d


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read codecs, size, frame rate and durations of a media file with ffprobe.

    Raises InputError when the file is missing, unreadable or has neither video nor audio.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    res = _run_tool([_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                     str(p)])
    if res.returncode != 0:
        raise InputError(f"{p}: not a readable video or audio file ({_last_line(res.stderr)})")
    try:
        data = json.loads(res.stdout or "{}")
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not a readable video or audio file (bad ffprobe output)") from e
    streams: list[dict[str, Any]] = data.get("streams") or []
    # Cover art in audio files is a one-frame "video" stream flagged attached_pic: not a video.
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise InputError(f"{p}: no video or audio stream")
    fmt_duration = _float((data.get("format") or {}).get("duration"))
    audio_duration = _stream_duration(audio) if audio is not None else None
    fps = 0.0
    if video is not None:
        fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
        duration = _stream_duration(video, fps)
    else:
        duration = audio_duration
    if duration is None:
        duration = fmt_duration or 0.0
    if audio is not None and audio_duration is None:
        audio_duration = fmt_duration
    return VideoInfo(
        video_codec=video.get("codec_name") if video is not None else None,
        width=int(video.get("width") or 0) if video is not None else 0,
        height=int(video.get("height") or 0) if video is not None else 0,
        fps=fps,
        duration_s=float(duration),
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio is not None else None,
        audio_duration_s=audio_duration,
        audio_sample_rate=int(audio.get("sample_rate") or 0) or None if audio is not None else None,
        pix_fmt=video.get("pix_fmt") if video is not None else None,
        video_start_s=(_float(video.get("start_time")) or 0.0) if video is not None else 0.0,
        audio_start_s=(_float(audio.get("start_time")) or 0.0) if audio is not None else None,
    )


def _run_tool(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ffmpeg/ffprobe, capturing its output; a missing executable is FFmpegNotFoundError.

    On any exception while it runs (Ctrl-C, or SIGTERM raised as one by the command line) the child is
    killed and waited for, so no ffmpeg outlives the program (its temporary output is then removed by
    ``atomic_path``)."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError as e:
        raise FFmpegNotFoundError("ffmpeg/ffprobe not found: install ffmpeg") from e
    with proc:
        try:
            out, err = proc.communicate()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _run_ffmpeg(args: list[str], out: Path) -> None:
    cmd = [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    log.debug("ffmpeg: %s", " ".join(cmd))
    res = _run_tool(cmd)
    if res.returncode != 0:
        raise OutputError(f"{out}: ffmpeg failed: {_last_line(res.stderr)}")


def mux(video: str | os.PathLike[str], wav: str | os.PathLike[str], out: str | os.PathLike[str], *,
        video_codec: str = "auto", keep_audio: bool = False, audio_bitrate: str = "192k") -> Path:
    """Write ``out``: the video of ``video`` with ``wav`` as its soundtrack (MP4, H.264 + AAC).

    The audio is cut/padded to the video's duration; see the module notes for ``video_codec`` and
    ``keep_audio``. Raises InputError for bad inputs, OutputError when ``out`` cannot be written.
    """
    if video_codec not in ("auto", "copy", "h264"):
        raise ValueError(f"video_codec must be 'auto', 'copy' or 'h264', got {video_codec!r}")
    video_p, wav_p, out_p = Path(video), Path(wav), Path(out)
    vinfo = probe(video_p)
    if vinfo.video_codec is None:
        raise InputError(f"{video_p}: no video stream")
    ainfo = probe(wav_p)
    if not ainfo.has_audio:
        raise InputError(f"{wav_p}: no audio stream")
    if vinfo.duration_s <= 0:
        raise InputError(f"{video_p}: cannot tell the video's duration")

    is_h264 = vinfo.video_codec == "h264"
    if video_codec == "copy" and not is_h264:
        raise InputError(f"{video_p}: video codec is {vinfo.video_codec}, not H.264; it cannot be copied into the "
                         "MP4 (re-encode it: video codec 'h264' or 'auto')")
    copy = video_codec == "copy" or (video_codec == "auto" and is_h264 and vinfo.pix_fmt in _COPYABLE_PIX_FMTS)
    if copy:
        vargs = ["-c:v", "copy"]
    else:
        vargs = list(_X264)
        if vinfo.width % 2 or vinfo.height % 2:
            vargs += ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0"]

    rate = ainfo.audio_sample_rate or 48000
    n = int(round(vinfo.duration_s * rate))  # the soundtrack's length in samples = the video's duration
    fit = f"apad=whole_len={n},atrim=end_sample={n}"
    stereo = f"aformat=sample_fmts=fltp:sample_rates={rate}:channel_layouts=stereo"
    if keep_audio and not vinfo.has_audio:
        log.warning("%s has no audio track: keep_audio ignored", video_p)
    if keep_audio and vinfo.has_audio:
        limit = 10.0 ** (LIMIT_DBFS / 20.0)
        graph = (f"[0:a:0]aresample={rate}:async=1:first_pts=0,{stereo},volume={KEEP_AUDIO_DB}dB[orig];"
                 f"[1:a:0]{stereo}[track];"
                 f"[track][orig]amix=inputs=2:duration=longest:normalize=0,"
                 f"alimiter=limit={limit:.4f}:level=false:latency=true:attack=5:release=50,{fit}[aout]")
    else:
        graph = f"[1:a:0]{stereo},{fit}[aout]"

    with atomic_path(out_p) as tmp:
        _run_ffmpeg(["-i", str(video_p), "-i", str(wav_p), "-filter_complex", graph,
                     "-map", "0:v:0", "-map", "[aout]", *vargs, "-tag:v", "avc1",
                     "-c:a", "aac", "-b:a", audio_bitrate, "-ac", "2",
                     "-movflags", "+faststart", "-f", "mp4", str(tmp)], out_p)
    log.info("wrote %s (%s video, %.2f s)", out_p, "copied" if copy else "re-encoded", vinfo.duration_s)
    return out_p


def _flash_curve(beats: np.ndarray, t0: float, n_frames: int, fps: float) -> np.ndarray:
    """Per-frame flash strength in [0, 1]: 1 on the frame nearest a beat, linear decay over FLASH_S."""
    flash = np.zeros(n_frames, dtype=np.float32)
    span = max(1, int(round(FLASH_S * fps)))
    decay = 1.0 - np.arange(span, dtype=np.float32) / span
    for b in np.asarray(beats, dtype=np.float64).ravel():
        if not math.isfinite(b):
            continue
        start = int(round((b - t0) * fps))
        lo, hi = max(0, start), min(n_frames, start + span)
        if lo < hi:
            flash[lo:hi] = np.maximum(flash[lo:hi], decay[lo - start:hi - start])
    return flash


def _joint_colour(j: int) -> tuple[int, int, int]:
    # COCO-17: odd indices are left joints, even (but the nose) right; BGR.
    if j == 0:
        return (235, 235, 235)
    return (255, 220, 60) if j % 2 else (60, 150, 255)


def skeleton_video(keypoints: np.ndarray, confidence: np.ndarray, times: np.ndarray, beats: np.ndarray,
                   out: str | os.PathLike[str], *, image_size: tuple[int, int] | None = None, fps: float = 30.0,
                   max_size: int = 640) -> Path:
    """Draw the COCO-17 skeleton with a flash on every beat into an H.264 MP4 (no audio).

    Args:
        keypoints: (T, 17, 2) pixels in an image of ``image_size`` (w, h); None = the joints'
            bounding box plus a margin.
        confidence: (T, 17); joints below ``MIN_CONFIDENCE`` are not drawn.
        times: (T,) seconds, increasing; beats: seconds on the same clock.
        max_size: the longer side of the video is scaled down to this (never up).
    Duration: ``times[-1] - times[0] + 1 / fps``.
    """
    import cv2  # deferred: only this function draws

    kp = np.asarray(keypoints, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2) or len(kp) == 0:
        raise ValueError(f"keypoints must be (T, {NUM_JOINTS}, 2) with T >= 1, got {kp.shape}")
    if conf.shape != kp.shape[:2] or t.shape != kp.shape[:1]:
        raise ValueError(f"confidence {conf.shape} / times {t.shape} do not match keypoints {kp.shape}")
    if not fps > 0 or max_size < 2:
        raise ValueError("fps must be > 0 and max_size >= 2")
    seen = (conf >= MIN_CONFIDENCE) & np.isfinite(kp).all(axis=2)

    if image_size is not None:
        origin = np.zeros(2)
        w, h = float(image_size[0]), float(image_size[1])
    elif seen.any():
        pts = kp[seen]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        margin = 0.1 * max(float((hi - lo).max()), 1.0)
        origin = lo - margin
        w, h = float(hi[0] - lo[0] + 2 * margin), float(hi[1] - lo[1] + 2 * margin)
    else:
        origin, w, h = np.zeros(2), float(max_size), float(max_size)
    scale = min(1.0, max_size / max(w, h))
    out_w, out_h = max(2, int(round(w * scale)) // 2 * 2), max(2, int(round(h * scale)) // 2 * 2)
    thick = max(2, int(round(min(out_w, out_h) / 120)))

    n_frames = int(round((t[-1] - t[0]) * fps)) + 1
    frame_t = t[0] + np.arange(n_frames) / fps
    # Nearest keypoint sample for every output frame.
    idx = np.clip(np.searchsorted(t, frame_t), 1, max(1, len(t) - 1))
    if len(t) > 1:
        idx = np.where(np.abs(t[idx - 1] - frame_t) <= np.abs(t[idx] - frame_t), idx - 1, idx)
    else:
        idx = np.zeros(n_frames, dtype=np.int64)
    flash = _flash_curve(np.asarray(beats), float(t[0]), n_frames, fps)
    px = np.rint((kp - origin) * scale).astype(np.int64)

    bg = np.array([24, 20, 20], dtype=np.float32)  # BGR, near black
    bright = np.array([250, 240, 200], dtype=np.float32)
    rate = Fraction(fps).limit_denominator(1001)
    out_p = Path(out)
    with atomic_path(out_p) as tmp, tempfile.TemporaryFile() as err:
        cmd = [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{out_w}x{out_h}", "-framerate", str(rate), "-i", "-",
               *_X264, "-movflags", "+faststart", "-f", "mp4", str(tmp)]
        # stderr to a file: a pipe nobody reads while frames are written could fill and deadlock.
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err)
        assert proc.stdin is not None
        try:
            for i in range(n_frames):
                f = float(flash[i])
                img = np.empty((out_h, out_w, 3), dtype=np.uint8)
                img[:] = np.rint(bg + (bright - bg) * 0.7 * f).astype(np.uint8)
                k, ok = px[idx[i]], seen[idx[i]]
                width = thick + int(round(thick * f))  # bones swell with the flash
                for a, b in COCO17_EDGES:
                    if ok[a] and ok[b]:
                        colour = _joint_colour(b if a == 0 else a)
                        cv2.line(img, (int(k[a, 0]), int(k[a, 1])), (int(k[b, 0]), int(k[b, 1])), colour, width,
                                 cv2.LINE_AA)
                for j in np.flatnonzero(ok):
                    cv2.circle(img, (int(k[j, 0]), int(k[j, 1])), width + 1, _joint_colour(int(j)), -1, cv2.LINE_AA)
                proc.stdin.write(img.tobytes())
        except BrokenPipeError:
            pass  # ffmpeg died: its exit code and stderr say why, below
        except BaseException:
            proc.kill()  # an error, Ctrl-C or SIGTERM: end ffmpeg now rather than let it finish a file
            raise
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # EOF lets ffmpeg finish (or exit) instead of waiting forever
            rc = proc.wait()
        if rc != 0:
            err.seek(0)
            raise OutputError(f"{out_p}: ffmpeg failed: {_last_line(err.read().decode('utf-8', 'replace'))}")
    log.info("wrote %s (%d frames at %s fps, %dx%d)", out_p, n_frames, rate, out_w, out_h)
    return out_p
