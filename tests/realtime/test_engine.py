"""The live engine on a replayed synthetic dancer, on a simulated clock, into a capture sink."""

from __future__ import annotations

import numpy as np
import pytest

from rhythmicnet.models.beat_model import has_beat_model, load_beat_model
from rhythmicnet.models.drum2music import Drum2Music, has_music_model
from rhythmicnet.models.live_rhythm import LiveRhythm
from rhythmicnet.models.rhythm2drum import Rhythm2Drum
from rhythmicnet.models.rhythm2drum import SamplingConfig as DrumSampling
from rhythmicnet.offline.synthetic_dancer import DancerConfig, generate_clip
from rhythmicnet.realtime.bar_planner import InlinePlanner
from rhythmicnet.realtime.engine import LiveEngine
from rhythmicnet.realtime.midi_clock import PPQN, MidiClock
from rhythmicnet.realtime.midi_out import CaptureSink
from rhythmicnet.realtime.scheduler import Scheduler, SimulatedClock
from rhythmicnet.realtime.simulated_run import play_simulated

pytestmark = pytest.mark.skipif(not (has_beat_model("full_causal") and has_music_model()),
                                reason="shipped weights missing")


def play(seed: int = 0, clip_seed: int = 8):
    # generator 1.x's pose noise: the shipped weights were trained on it (observation model 2 is harder for them)
    full = generate_clip(DancerConfig(observation_model=1, noise_frac=(0.0005, 0.005)), seed=clip_seed)
    n = int(np.searchsorted(full.sequence.times, full.sequence.times[0] + 16.0))  # 16 s keep the test short
    seq = type(full.sequence)(full.sequence.keypoints[:n], full.sequence.confidence[:n], full.sequence.times[:n])
    dance = type(full)(seq, full.beats[full.beats < seq.times[-1]], full.downbeats, full.tempo_bpm, full.metadata)
    clock, sink = SimulatedClock(50.0), CaptureSink()
    sched = Scheduler(sink, clock)
    planner = InlinePlanner(Rhythm2Drum.load().performer(DrumSampling(seed=seed)), Drum2Music.load(instrument="piano"))
    engine = LiveEngine(LiveRhythm(load_beat_model("full_causal")), planner, sched, clock=MidiClock())
    play_simulated(engine, clock, dance.sequence, pose_latency_s=0.04)
    return dance, engine, sink, sched


@pytest.fixture(scope="module")
def played():
    return play()


def test_plays_in_time_order_none_late_and_no_hanging_note(played):
    dance, engine, sink, sched = played
    times = [t for t, _ in sink.messages]
    assert times == sorted(times)
    assert sched.late_events == 0 and engine.stats.skipped == 0
    assert not sink.held
    ons = [(m.channel, m.note) for _, m in sink.messages if m.type == "note_on"]
    offs = [(m.channel, m.note) for _, m in sink.messages if m.type == "note_off"]
    assert len(ons) > 20 and {o for o in ons} <= {o for o in offs}
    assert {c for c, _ in ons} == {9, 0}  # drums and piano
    assert engine.stats.reactions + engine.stats.accents > 0  # the dancer's movement onsets were answered
    assert len(engine.stats.capture_to_send_ms) == engine.stats.reactions
    # warm-up: the first note comes after the tracker decided 4 beats (about 1 s lag + 4 beats)
    assert engine.stats.first_note_time is not None and engine.stats.first_note_time - 50.0 > 2.0


def test_the_sent_beat_grid_follows_the_dancer(played):
    dance, engine, sink, sched = played
    grid = np.array(engine.stats.beat_grid) - 50.0
    true = dance.beats - dance.sequence.times[0]
    err = [np.min(np.abs(true - g)) for g in grid]
    assert len(grid) >= 8 and np.median(err) < 0.06, (np.median(err), len(grid))


def test_same_input_and_seed_give_the_same_midi(played):
    _, _, sink, _ = played
    _, _, again, _ = play()
    assert [(round(t, 9), m.bytes()) for t, m in sink.messages] == [(round(t, 9), m.bytes()) for t, m in again.messages]


def test_midi_clock_starts_with_bar_0_ticks_at_the_grid_tempo_and_stops(played):
    dance, engine, sink, sched = played
    types = [m.type for _, m in sink.messages]
    assert types.count("start") == 1 and types.count("stop") == 1
    start = next(t for t, m in sink.messages if m.type == "start")
    assert 0 <= start - engine.stats.beat_grid[0] <= 0.0011  # Start goes out with bar 0's downbeat (1 ms polls)
    pulses = np.array([t for t, m in sink.messages if m.type == "clock"])
    assert pulses[0] >= start and all(t <= next(t for t, m in sink.messages if m.type == "stop") for t in pulses)
    # over the grid's beats the clock keeps in step: 24 pulses a beat, within one beat
    grid = np.array(engine.stats.beat_grid)  # from bar 0's downbeat (= Start) to the last frame
    counted = pulses[pulses < grid[-1] - 1e-3]
    assert abs(len(counted) / PPQN - (len(grid) - 1)) <= 1.0, (len(counted) / PPQN, len(grid) - 1)
    tempo_from_pulses = 60.0 / (np.median(np.diff(pulses)) * PPQN)
    assert abs(tempo_from_pulses / (60.0 / np.median(np.diff(grid))) - 1) < 0.03


def test_stats_time_every_stage(played):
    _, engine, _, _ = played
    assert set(engine.stats.stage_ms) == {"rhythm", "engine", "plan", "schedule"}
    n = len(engine.stats.stage_ms["rhythm"])  # one per input frame
    assert n >= 15 * 25 and len(engine.stats.stage_ms["engine"]) == n
    # planning and scheduling run on every frame once the warm-up is over
    assert 0 < len(engine.stats.stage_ms["plan"]) == len(engine.stats.stage_ms["schedule"]) < n
    assert all(ms >= 0 for v in engine.stats.stage_ms.values() for ms in v)


def test_a_tempo_change_keeps_the_numbering_of_the_beats_being_played():
    """Re-anchoring matches the new grid at the next beat to be sent, not at bar 0: 100 s into a performance
    a 1 % tempo change moves the next beat to the predicted beat nearest it (10 ms), where matching at the
    origin renumbered the beats (a 1 s jump, two beats)."""
    from rhythmicnet.models.beat_predictor import BeatGrid
    from rhythmicnet.models.live_rhythm import LiveFrame

    engine = LiveEngine(LiveRhythm(load_beat_model("full_causal")),
                        InlinePlanner(Rhythm2Drum.load().performer(DrumSampling(seed=0))),
                        Scheduler(CaptureSink(), SimulatedClock(0.0)))
    engine.origin, engine.period, engine._grid_beat = 10.0, 0.5, 200  # beat 200 due at 110.0
    frame = LiveFrame(109.2, 0.0, 0.0, None, False, BeatGrid(anchor=109.0, period=0.505))  # type: ignore[arg-type]
    engine._reanchor(frame)
    assert engine.period == 0.505
    assert engine.beat_time(200) == pytest.approx(109.0 + 2 * 0.505)
    assert engine.beat_time(199) == pytest.approx(109.0 + 0.505)
