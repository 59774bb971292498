"""``rhythmicnet render``: a recorded clip in, its soundtrack out (MIDI, WAV, the scored video, report).

Stages (each timed into ``report.json`` and shown with a progress bar):

1. **keypoints** — mediapipe on the video (cached in OUTDIR) or a keypoint file;
2. **rhythm** — Video2Rhythm with the offline beat model, DBN Viterbi and the paper's style stream;
   ``--tempo`` pins the beat tracker to one tempo (±2 %), the phase still comes from the movement;
   ``--rhythm random|shuffle`` replaces the rhythm by the paper's perceptual-study controls;
3. **drums** — Rhythm2Drum bar after bar over the whole clip (the same ``DrumPerformer`` as live);
4. **accompaniment** — Drum2Music bar after bar with its memory (``--instrument none`` skips it);
5. **midi / audio / video** — the tempo-mapped MIDI files (:mod:`.soundtrack_midi`), FluidSynth
   stems and their mastered mix (:mod:`.audio_render`), the input video with the mix muxed in
   (:mod:`.video_mux`; for keypoint input a skeleton video with beat flashes).

Drum micro-timing: the offsets of the groove are kept, except on the dancer's beats, where a hit may
move at most 10 ms (``BEAT_LOCK_S``) so the beats stay locked to the movement.

Bars: bar 1 starts at the first downbeat of the rhythm grid. When steps come before it, generation
starts whole bars earlier (the first bars then begin before the clip, and what falls before the first
frame is dropped), so the drums and the accompaniment already play during the pickup. Every note is
timed on the beat-following grid: a 16th step's time is the grid's (each inter-beat interval split
into 4), a drum's offset moves it by a fraction of its own step, and the grid is extended past the
clip's end with its last step for notes that ring on. The pickup and note-timing arithmetic lives in
:mod:`rhythmicnet.models.note_timing` (``bar_onsets``, ``timed_notes``, ``BEAT_LOCK_S``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import rhythmicnet
from rhythmicnet.errors import InputError
from rhythmicnet.export.backends import backend_record, configure_threads, graph_factory
from rhythmicnet.fileio import ensure_output_dir, write_text_atomic
from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.graphs import GraphFactory
from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.models.midi_messages import DRUM_CHANNEL, INSTRUMENT_CHANNEL  # the channels, defined once
from rhythmicnet.models.note_timing import NoteEvent, bar_onsets, timed_notes
from rhythmicnet.models.remi import BarNote, DrumBar
from rhythmicnet.models.weights import WEIGHTS_DIR
from rhythmicnet.offline.batch_inputs import input_sha256 as content_sha256
from rhythmicnet.offline.loaded_models import LoadedModels
from rhythmicnet.offline.pose_estimation import load_input_keypoints
from rhythmicnet.offline.soundtrack_midi import TempoMap, part_track, soundtrack_file, write_midi
from rhythmicnet.offline.video2rhythm import RhythmAnalysis, Video2RhythmConfig, analyse
from rhythmicnet.offline.video_mux import VideoInfo

log = logging.getLogger(__name__)

__all__ = ["RenderConfig", "RenderResult", "render", "render_request", "control_rhythm"]

SAMPLE_RATE = 48000


@dataclass(frozen=True)
class RenderConfig:
    instrument: str = "piano"  # piano | guitar | none
    program: int | None = None
    seed: int = 0
    temperature: float = 1.2  # Drum2Music sampling (the reference implementation's defaults)
    top_k: int | None = 5
    tempo_range: tuple[float, float] = (60.0, 180.0)
    tempo: float | None = None
    rhythm: str = "real"  # real | random | shuffle
    beat_model: str | None = None  # net | onset; default net when its weights are installed
    soundfont: str | None = None
    video_codec: str = "auto"  # auto | copy | h264
    keep_audio: bool = False
    use_cache: bool = True
    weights_dir: str = str(WEIGHTS_DIR)
    backend: str = "onnx"  # onnx | torch: what runs the networks (export/backends.py)
    device: str = "auto"  # auto | cpu | cuda (ONNX Runtime's provider)

    def __post_init__(self) -> None:
        if self.backend not in ("onnx", "torch") or self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"--backend is onnx or torch and --device auto, cpu or cuda; got {self.backend!r}, "
                             f"{self.device!r}")
        if self.instrument not in ("piano", "guitar", "none"):
            raise InputError(f"--instrument is piano, guitar or none; got {self.instrument!r}")
        if self.rhythm not in ("real", "random", "shuffle"):
            raise InputError(f"--rhythm is real, random or shuffle; got {self.rhythm!r}")
        if self.temperature <= 0 or (self.top_k is not None and self.top_k < 1):
            raise InputError("--temperature must be > 0 and --top-k >= 1")
        if self.tempo is not None and not 30.0 <= self.tempo <= 300.0:
            raise InputError(f"--tempo must lie in 30..300 BPM, got {self.tempo:g}")
        if self.program is not None and not 0 <= self.program <= 127:
            raise InputError(f"--program must lie in 0..127, got {self.program}")


@dataclass
class RenderResult:
    record: dict[str, Any]
    outputs: dict[str, Path] = field(default_factory=dict)


# --- rhythm controls -------------------------------------------------------------------------------

def control_rhythm(onsets: np.ndarray, mode: str, seed: int) -> np.ndarray:
    """The paper's perceptual-study controls: 'random' (each step on with p = 0.5) or 'shuffle' (the
    real onsets permuted in time); 'real' returns the onsets. (N,) bool -> (N,) bool."""
    onsets = np.asarray(onsets, dtype=bool)
    rng = np.random.default_rng([seed, 7])
    if mode == "random":
        return rng.random(len(onsets)) < 0.5
    if mode == "shuffle":
        return onsets[rng.permutation(len(onsets))]
    return onsets.copy()


# --- the pipeline -----------------------------------------------------------------------------------

def render_request(config: RenderConfig, input_sha256: str) -> dict[str, Any]:
    """What decides a clip's outputs, as ``report.json`` records it under ``request``: the input's content
    (SHA-256) and the settings (``--no-cache`` left out: it changes no output). A batch re-run skips a clip
    whose report has the same request and whose outputs are all there (see :mod:`.batch`)."""
    settings = asdict(config)
    settings.pop("use_cache")
    # through JSON, so that a request read back from report.json compares equal (tuples become lists)
    return json.loads(json.dumps({"input_sha256": input_sha256, "settings": settings}))  # type: ignore[no-any-return]


def _analyse(seq: KeypointSequence, config: RenderConfig, source: str, graphs: GraphFactory,
             models: LoadedModels | None) -> RhythmAnalysis:
    lo, hi = config.tempo_range
    if config.tempo is not None:
        lo, hi = 0.98 * config.tempo, 1.02 * config.tempo
    # beat_model None: Video2RhythmConfig's default (net when its weights are in weights_dir, else onset)
    v2r = Video2RhythmConfig(beat_model=config.beat_model, min_bpm=lo, max_bpm=hi,
                             weights_dir=Path(config.weights_dir))
    beat_net = models.beat_net(config.weights_dir, graphs) if models is not None and v2r.beat_model == "net" else None
    return analyse(seq, v2r, source=source, graphs=graphs, beat_net=beat_net)


def render(input_path: str | Path, outdir: str | Path, config: RenderConfig = RenderConfig(), *,
           progress: bool = True, models: LoadedModels | None = None,
           input_sha256: str | None = None) -> RenderResult:
    """Run the whole pipeline on one clip and write every output into ``outdir`` (atomically).

    ``models``: networks already loaded in this process (a batch worker's, reused for all its clips; the
    result is the same as with fresh loads). ``input_sha256``: the input's content hash when the caller
    has it already (:func:`.batch_inputs.input_sha256`); it goes into ``report.json``'s ``request``."""
    from rhythmicnet.models.drum2music import Drum2Music, music_model_name
    from rhythmicnet.models.music_transformer import SamplingConfig as MusicSampling
    from rhythmicnet.models.rhythm2drum import Rhythm2Drum
    from rhythmicnet.models.rhythm2drum import SamplingConfig as DrumSampling
    from rhythmicnet.offline import audio_render, audio_stream, video_mux
    from rhythmicnet.offline.rhythm_report import plot_rhythm, rhythm_record

    path = Path(input_path)
    if not path.exists():  # before the output folder is created
        raise InputError(f"{path}: file not found")
    sha = input_sha256 or content_sha256(path)
    out = ensure_output_dir(outdir)
    configure_threads()
    graphs = graph_factory(config.backend, config.device)
    stages: dict[str, float] = {}
    outputs: dict[str, Path] = {}
    weights: dict[str, Any] = {}

    t0 = time.perf_counter()
    seq, is_video = load_input_keypoints(path, out, use_cache=config.use_cache, progress=progress)
    stages["keypoints"] = time.perf_counter() - t0
    video_info = video_mux.probe(path) if is_video else None
    if video_info is not None:
        check_decoded_length(path, seq, video_info)

    t0 = time.perf_counter()
    analysis = _analyse(seq, config, str(path), graphs, models)
    rhythm = analysis.rhythm
    onsets = control_rhythm(rhythm.onsets, config.rhythm, config.seed)
    stages["rhythm"] = time.perf_counter() - t0
    end_time = float(video_info.duration_s) if video_info else float(analysis.sequence.duration)

    # Whole bars from bar 1's downbeat; earlier steps are a pickup of whole bars that start before
    # the clip (pad_steps empty steps in front).
    onset_bars, pad_steps = bar_onsets(onsets, rhythm.first_downbeat_step)
    n_bars = len(onset_bars)

    t0 = time.perf_counter()
    r2d = (models.rhythm2drum(config.weights_dir, graphs) if models is not None
           else Rhythm2Drum.load(config.weights_dir, graphs=graphs))
    weights["rhythm2drum"] = _weights_id(r2d.manifest, "rhythm2drum")
    perf = r2d.performer(DrumSampling(seed=config.seed))
    drum_bars = []
    for i in tqdm(range(n_bars), desc="drums", unit="bar", disable=not progress, leave=False):
        drum_bars.append(perf.next_bar(onset_bars[i]))
    drums = DrumGrid.concat(drum_bars).with_bpm(analysis.tempo_bpm)
    stages["drums"] = time.perf_counter() - t0

    bars: list[list[BarNote]] | None = None
    program = None
    t0 = time.perf_counter()
    if config.instrument != "none":
        if music_model_name(config.weights_dir, config.instrument) is None:
            from rhythmicnet.errors import WeightsError

            raise WeightsError(f"{config.weights_dir}: no Drum2Music weights for {config.instrument} "
                               "(drum2music.json + drum2music.pt); use --instrument none for drums only")
        music_sampling = MusicSampling(temperature=config.temperature, top_k=config.top_k, seed=config.seed)
        d2m = (models.drum2music(config.weights_dir, config.instrument, config.program, music_sampling, graphs)
               if models is not None else Drum2Music.load(config.weights_dir, config.instrument,
                                                          program=config.program, sampling=music_sampling,
                                                          graphs=graphs))
        weights["drum2music"] = _weights_id(d2m.manifest, d2m.name)
        program = d2m.program
        d2m.reset()
        bars = []
        for g in tqdm(drum_bars, desc=config.instrument, unit="bar", disable=not progress, leave=False):
            bars.append(d2m.next_bar(DrumBar(g.hits, g.velocities, analysis.tempo_bpm)))
    stages["accompaniment"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    drum_notes, inst_notes = timed_notes(drums, bars, rhythm, pad_steps, end_time)
    tm = TempoMap(rhythm.step_times, rhythm.first_downbeat_step)
    drum_track = part_track(drum_notes, tm, name="drums", program=None, channel=DRUM_CHANNEL)
    parts = {"drums": soundtrack_file(tm, [drum_track], end_time)}
    tracks = [drum_track]
    if bars is not None:
        inst_track = part_track(inst_notes, tm, name=config.instrument, program=program, channel=INSTRUMENT_CHANNEL)
        parts[config.instrument] = soundtrack_file(tm, [inst_track], end_time)
        tracks.append(inst_track)
    for name, mid in parts.items():
        outputs[f"{name}_midi"] = write_midi(out / f"{name}.mid", mid)
    soundtrack = soundtrack_file(tm, tracks, end_time)
    outputs["soundtrack_midi"] = write_midi(out / "soundtrack.mid", soundtrack)
    stages["midi"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    soundfont = Path(config.soundfont) if config.soundfont else audio_render.default_soundfont()
    # in blocks through temporary files: memory stays flat however long the clip (audio_stream.py)
    outputs.update(audio_stream.render_wavs(parts, soundfont, out, sample_rate=SAMPLE_RATE, duration_s=end_time))
    stages["synthesis"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scored = out / f"{path.stem}_scored.mp4"
    if is_video:
        video_mux.mux(path, outputs["soundtrack_wav"], scored, video_codec=config.video_codec,
                      keep_audio=config.keep_audio)
    else:
        # a unique temp name (as fileio's atomic writes): two runs in one folder never share it
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}_skeleton.", suffix=".part.mp4", dir=out)
        os.close(fd)
        skeleton = Path(tmp_name)
        try:
            video_mux.skeleton_video(analysis.sequence.keypoints, analysis.sequence.confidence,
                                     analysis.sequence.times, analysis.beats, skeleton,
                                     image_size=seq.image_size or (640, 480))
            video_mux.mux(skeleton, outputs["soundtrack_wav"], scored, video_codec="copy")
        finally:
            skeleton.unlink(missing_ok=True)
    outputs["video"] = scored
    stages["video"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    outputs["rhythm_png"] = plot_rhythm(out / "rhythm.png", analysis, title=path.name)
    stages["plot"] = time.perf_counter() - t0

    record = _report(path, analysis, config, stages, outputs, weights, seq, is_video, end_time, n_bars,
                     pad_steps, program, soundfont, drum_notes, inst_notes, rhythm_record(analysis, str(path),
                                                                                          seq.fps))
    record["backend"] = backend_record(graphs)
    record["request"] = render_request(config, sha)
    record["outputs"]["report"] = "report.json"
    outputs["report"] = write_text_atomic(out / "report.json", json.dumps(record, indent=1) + "\n")
    return RenderResult(record, outputs)


#: A video whose frames decode to less than its container's duration minus this share of it (and at
#: least 0.5 s) is refused as truncated: its picture would end before the soundtrack.
TRUNCATED_SHARE = 0.05


def check_decoded_length(path: Path, seq: KeypointSequence, info: VideoInfo) -> None:
    """InputError when the decoded frames cover well under the container's video duration (a truncated
    or damaged file): the MP4 and report.json would otherwise mix the two lengths."""
    period = 1.0 / info.fps if info.fps > 0 else 1.0 / seq.fps
    decoded = float(seq.times[-1] - seq.times[0]) + period
    if info.duration_s - decoded > max(0.5, TRUNCATED_SHARE * info.duration_s):
        raise InputError(f"{path}: only {decoded:.2f} s of its {info.duration_s:.2f} s of video decode "
                         f"({seq.num_frames} frames): a truncated or damaged file; repair or re-encode it")


def _weights_id(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return {"name": name, "version": manifest.get("version"), "code_commit": manifest.get("code_commit"),
            "trained": {k: manifest.get("training", {}).get(k) for k in ("seconds", "device", "steps_run", "steps")},
            "note": manifest.get("note")}


def _report(path: Path, analysis: RhythmAnalysis, config: RenderConfig, stages: dict[str, float],
            outputs: dict[str, Path], weights: dict[str, Any], seq: KeypointSequence, is_video: bool,
            end_time: float, n_bars: int, pad_steps: int, program: int | None, soundfont: Path,
            drum_notes: list[NoteEvent], inst_notes: list[NoteEvent], rhythm_rec: dict[str, Any]) -> dict[str, Any]:
    import torch

    r = analysis.rhythm
    return {
        "input": str(path),
        "input_kind": "video" if is_video else "keypoints",
        "duration_s": round(end_time, 4),
        "tempo_bpm": rhythm_rec["tempo_bpm"],
        "beats": rhythm_rec["beats"],
        "beat_count": len(analysis.beats),
        "first_downbeat_s": round(float(r.step_times[r.first_downbeat_step]), 4),
        "style_events": rhythm_rec["style_times"],
        "rhythm_density": round(float(r.density()), 4),
        "bars": n_bars,
        "pickup_steps": int(r.first_downbeat_step),
        "notes": {"drums": len(drum_notes), config.instrument: len(inst_notes)} if config.instrument != "none"
        else {"drums": len(drum_notes)},
        "settings": {**asdict(config), "program": program, "soundfont": str(soundfont),
                     "beat_model": analysis.config.beat_model,
                     "tempo_range_used": [analysis.config.min_bpm, analysis.config.max_bpm],
                     "sample_rate": SAMPLE_RATE, "pad_steps": pad_steps},
        "outputs": {k: v.name for k, v in outputs.items()},
        "stage_seconds": {k: round(v, 4) for k, v in stages.items()},
        "weights": weights,
        "versions": {**rhythm_rec.get("versions", {}), "rhythmicnet": rhythmicnet.__version__,
                     "torch": torch.__version__, "python": platform.python_version()},
        "rhythm": rhythm_rec,
    }
