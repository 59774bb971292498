"""The paper's style stream: sudden movements from the STFT of kinematic offsets.

Pipeline (paper, "Style Extraction" and Implementation Details): keypoints at 15 fps ->
directogram (12 bins) -> kinematic offsets -> 16-point STFT, hop 4 -> magnitude of the highest
frequency bin -> peaks among the top 10 % magnitudes -> style events, repeated over the hop and
brought back to the model rate (30 fps).

Decisions where the paper is open (each tested in ``tests/models/test_style_stream.py``):

* **15 fps**: the 30 fps model-rate sequence is decimated by taking every second frame (the 15 fps
  grid is a subset of the 30 fps grid, so online and offline see the same samples).
* **Window and frame time**: a periodic Hann window of 16 samples. Frame ``m`` covers 15 fps samples
  ``4m-8 .. 4m+7`` (zeros before the clip), so the window's peak and the frame's time are its
  **centre**, sample ``4m`` — the 8-sample shift between a frame's start and its centre is removed,
  and a movement at time t is reported at t, not 0.53 s early. Offline, the clip is also padded with
  8 zeros at the end so the last samples get frames; the causal form only has complete frames.
* **Highest frequency bin**: a 16-point real FFT has bins 0..8; we use bin 8 (Nyquist, 7.5 Hz),
  which responds to an isolated spike of the offsets and cancels on smooth motion.
* **Top 10 %**: of STFT *frames* over the clip (the 90th percentile of the bin-8 magnitude), plus an
  absolute floor ``min_magnitude`` so a still clip yields no style at all (the paper's rule alone
  would always mark 10 % of frames, even of noise). The paper's binary stream is those marked frames,
  each repeated 4 times (the hop, centred on the frame) and then twice more to reach 30 fps: that is
  ``StyleResult.mask``.
* **Events**: a marked frame that is also a local maximum of the magnitude is one style event at its
  centre time; so a repeated style keeps only one onset when it is re-indexed onto the 16th grid
  (``rhythm_grid`` snaps each event to its nearest 16th step).
* **Causal variant** (``StyleStream``): the same frames, computed when the frame's last sample arrives
  (7 samples, ~0.47 s, after its centre) and the local-maximum test needs one more frame (4 samples),
  so events are reported ~0.73 s late — fine for the offline reference, too slow for live reactions,
  which use ``movement_onset``. The whole-clip top 10 % becomes a running 90th percentile over the
  last ``history_s`` seconds of frames (default 20 s, 75 frames), and events are held back until
  ``warmup_frames`` frames (default 8, ~2 s) have been seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from rhythmicnet.models.directogram import N_BINS, KinematicOffsetStream, kinematic_offsets

STYLE_FPS = 15.0
N_FFT = 16
HOP = 4
HIGHEST_BIN = N_FFT // 2
HALF = N_FFT // 2


@dataclass(frozen=True)
class StyleConfig:
    model_fps: float = 30.0
    style_fps: float = STYLE_FPS
    n_bins: int = N_BINS
    top_fraction: float = 0.10
    #: Bin-8 magnitudes below this never count as style (kinematic offsets in body units/frame^2).
    min_magnitude: float = 0.015
    #: ... and below this multiple of the median magnitude (noise and steady motion are not style).
    min_ratio_to_median: float = 1.5
    history_s: float = 20.0
    warmup_frames: int = 8

    def __post_init__(self) -> None:
        ratio = self.model_fps / self.style_fps
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(f"model_fps/style_fps must be whole, got {self.model_fps}/{self.style_fps}")
        if not 0.0 < self.top_fraction < 1.0:
            raise ValueError(f"top_fraction must be in (0, 1), got {self.top_fraction}")

    @property
    def decimation(self) -> int:
        return int(round(self.model_fps / self.style_fps))


@dataclass(frozen=True)
class StyleResult:
    """Offline style stream of a clip at model rate.

    times: (E,) seconds of style events; magnitude: (F,) bin-8 magnitude per STFT frame;
    frame_times: (F,) centre time of each STFT frame; mask: (T,) bool at model rate (the paper's
    repeated binary stream); threshold: the magnitude threshold that was used.
    """

    times: np.ndarray
    magnitude: np.ndarray
    frame_times: np.ndarray
    mask: np.ndarray
    threshold: float


_WINDOW = np.hanning(N_FFT + 1)[:N_FFT]  # periodic Hann: peak (1.0) at index 8, the frame centre


def highest_bin_magnitude(frames: np.ndarray) -> np.ndarray:
    """|STFT| of the highest bin for frames of 16 samples. Shape: (F, 16) -> (F,)."""
    spec = np.fft.rfft(frames * _WINDOW, n=N_FFT, axis=-1)  # (F, 9)
    return np.abs(spec[..., HIGHEST_BIN])


def stft_highest_bin(ko15: np.ndarray, pad_end: bool = True) -> np.ndarray:
    """Bin-8 magnitude of centred frames: frame m is centred on 15 fps sample 4m.

    Shape: (M,) -> (F,), F = floor((M-1)/4) + 1 with ``pad_end``, else only complete frames.
    """
    m = len(ko15)
    if m == 0:
        return np.zeros(0)
    padded = np.concatenate([np.zeros(HALF), ko15, np.zeros(HALF if pad_end else 0)])
    n_frames = (m - 1) // HOP + 1 if pad_end else max(0, (m - HALF) // HOP + 1)
    if n_frames == 0:
        return np.zeros(0)
    idx = np.arange(n_frames)[:, None] * HOP + np.arange(N_FFT)[None, :]  # (F, 16)
    return highest_bin_magnitude(padded[idx])


def _threshold(magnitudes: np.ndarray, config: StyleConfig) -> float:
    """Top-``top_fraction`` quantile, never below the absolute floor or ``min_ratio_to_median`` x median."""
    q = float(np.quantile(magnitudes, 1.0 - config.top_fraction))
    return max(q, config.min_magnitude, config.min_ratio_to_median * float(np.median(magnitudes)))


def _local_max(mag: np.ndarray, i: int) -> bool:
    left = mag[i - 1] if i > 0 else -np.inf
    right = mag[i + 1] if i + 1 < len(mag) else -np.inf
    return bool(mag[i] > left and mag[i] >= right)


def style_from_offsets(ko15: np.ndarray, times: np.ndarray, config: StyleConfig = StyleConfig()) -> StyleResult:
    """The paper's offline style stream from kinematic offsets computed at 15 fps.

    Note the offsets must be computed on the 15 fps keypoints (velocities over 1/15 s); use
    ``extract_style`` unless you already have them.
    Shapes: ko15 (M,), times (M,) at 15 fps -> StyleResult (mask at 15 fps).
    """
    mag = stft_highest_bin(ko15, pad_end=True)
    frame_times = times[np.minimum(np.arange(len(mag)) * HOP, len(times) - 1)] if len(times) else np.zeros(0)
    if len(mag) == 0:
        return StyleResult(np.zeros(0), mag, frame_times, np.zeros(len(times), bool), float("inf"))
    thr = _threshold(mag, config)
    marked = mag >= thr
    events = [i for i in np.flatnonzero(marked) if _local_max(mag, int(i))]
    mask15 = np.zeros(len(times), bool)
    for i in np.flatnonzero(marked):
        c = int(i) * HOP
        mask15[max(0, c - HOP // 2) : c + HOP // 2] = True
    return StyleResult(frame_times[events] if events else np.zeros(0), mag, frame_times, mask15, thr)


def extract_style(keypoints: np.ndarray, confidence: np.ndarray, times: np.ndarray,
                  config: StyleConfig = StyleConfig()) -> StyleResult:
    """Offline style stream of a clip given at the model rate.

    Shapes: keypoints (T, 17, 2) normalised, confidence (T, 17), times (T,) at ``config.model_fps``.
    Returns events in seconds and the binary mask at model rate (T,).
    """
    step = config.decimation
    kp15, conf15, t15 = keypoints[::step], confidence[::step], times[::step]
    ko15 = kinematic_offsets(kp15, conf15, config.n_bins)
    res15 = style_from_offsets(ko15, t15, config)
    mask = np.repeat(res15.mask, step)[: len(times)]
    if len(mask) < len(times):
        mask = np.concatenate([mask, np.zeros(len(times) - len(mask), bool)])
    return StyleResult(res15.times, res15.magnitude, res15.frame_times, mask, res15.threshold)


@dataclass(frozen=True)
class StyleState:
    """Streaming state of the causal style stream (never changed in place)."""

    model_frame: int = 0  # model-rate frames seen
    ko_buffer: tuple[float, ...] = (0.0,) * N_FFT  # last 16 offsets at 15 fps (zeros = front padding)
    n15: int = 0  # 15 fps samples seen
    history: tuple[float, ...] = ()  # recent frame magnitudes, for the running threshold
    last_mags: tuple[float, ...] = ()  # the last three magnitudes, for the local-maximum test
    prev_frame_time: float = float("nan")  # centre time of the previous STFT frame


@dataclass
class StyleStream:
    """Causal style stream at model rate, for live reference use and the online/offline checks.

    ``process_online(kp (N, 17, 2), conf (N, 17), times (N,)) -> event times (E,)`` keeps state across
    calls; ``process_offline`` is the same causal estimator run over a whole clip (it equals the
    online output frame by frame); the paper's whole-clip estimator is ``extract_style``.
    """

    config: StyleConfig = field(default_factory=StyleConfig)

    def __post_init__(self) -> None:
        self._ko = KinematicOffsetStream(self.config.n_bins)
        self._state = StyleState()

    def reset(self) -> None:
        self._ko.reset()
        self._state = StyleState()

    @property
    def max_history(self) -> int:
        return max(1, int(round(self.config.history_s * self.config.style_fps / HOP)))

    def _on_frame(self, s: StyleState, mag: float, frame_time: float) -> tuple[StyleState, float | None]:
        """Add a new frame's magnitude; decide whether the *previous* frame was a style event."""
        history = (s.history + (mag,))[-self.max_history :]
        last = (s.last_mags + (mag,))[-3:]
        event: float | None = None
        if len(last) >= 2 and len(s.history) >= self.config.warmup_frames:
            prev = last[-2]
            before = last[-3] if len(last) == 3 else -np.inf
            thr = _threshold(np.asarray(history), self.config)
            if prev >= thr and prev > before and prev >= mag:
                event = s.prev_frame_time
        return replace(s, history=history, last_mags=last, prev_frame_time=frame_time), event

    def step(self, keypoints: np.ndarray, confidence: np.ndarray, time: float) -> float | None:
        """One model-rate frame: (17, 2), (17,), t -> the time of a style event decided now, or None."""
        s = self._state
        event: float | None = None
        if s.model_frame % self.config.decimation == 0:
            ko = self._ko.step(keypoints, confidence)
            s = replace(s, ko_buffer=(s.ko_buffer + (ko,))[-N_FFT:], n15=s.n15 + 1)
            newest = s.n15 - 1
            # Frame m (centred on sample 4m) is complete when sample 4m + 7 arrives.
            if newest >= HALF - 1 and (newest - (HALF - 1)) % HOP == 0:
                mag = float(highest_bin_magnitude(np.asarray(s.ko_buffer)[None])[0])
                s, event = self._on_frame(s, mag, time - (HALF - 1) / self.config.style_fps)
        self._state = replace(s, model_frame=s.model_frame + 1)
        return event

    def process_online(self, keypoints: np.ndarray, confidence: np.ndarray, times: np.ndarray) -> np.ndarray:
        events = [self.step(k, c, float(t)) for k, c, t in zip(keypoints, confidence, times, strict=True)]
        return np.asarray([e for e in events if e is not None], dtype=np.float64)

    def process_offline(self, keypoints: np.ndarray, confidence: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The causal estimator over a whole clip, from a fresh state (the stream's state is kept)."""
        saved_ko, saved_state = self._ko, self._state
        self._ko, self._state = KinematicOffsetStream(self.config.n_bins), StyleState()
        try:
            return self.process_online(keypoints, confidence, times)
        finally:
            self._ko, self._state = saved_ko, saved_state
