"""The dancer leaves for 5 s and comes back: the whole engine (causal rhythm stage, drummer, scheduler, MIDI
clock) on the simulated clock. The groove plays on, fades out with a velocity ramp, and resumes on a
downbeat once the dancer is back; the MIDI clock never stops."""

from __future__ import annotations

import numpy as np
import pytest

from rhythmicnet.export.backends import graph_factory
from rhythmicnet.models.beat_model import has_beat_model, load_beat_model
from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.models.live_rhythm import LiveRhythm
from rhythmicnet.models.rhythm2drum import Rhythm2Drum
from rhythmicnet.models.rhythm2drum import SamplingConfig as DrumSampling
from rhythmicnet.offline.synthetic_dancer import generate_clip
from rhythmicnet.realtime.bar_planner import InlinePlanner
from rhythmicnet.realtime.engine import LiveEngine
from rhythmicnet.realtime.midi_clock import MidiClock
from rhythmicnet.realtime.midi_out import CaptureSink
from rhythmicnet.realtime.scheduler import Scheduler, SimulatedClock
from rhythmicnet.realtime.simulated_run import play_simulated

pytestmark = pytest.mark.skipif(not has_beat_model("full_causal"), reason="shipped causal beat model missing")

START = 50.0
GAP = (10.0, 15.0)  # seconds from the first frame: nobody in the picture (the camera keeps delivering frames)
END = 20.0


def test_a_5_s_gap_plays_on_fades_and_resumes():
    dance = generate_clip(seed=10)  # ~129 BPM, 24 fps
    s = dance.sequence
    keep = s.times < END
    conf = s.confidence[keep].copy()
    times = s.times[keep] - s.times[0]
    conf[(times >= GAP[0]) & (times < GAP[1])] = 0.0
    kp = s.keypoints[keep] * (conf[..., None] > 0)
    seq = KeypointSequence(kp, conf, times, s.image_size)
    clock, sink = SimulatedClock(START), CaptureSink()
    graphs = graph_factory("onnx")  # 4x faster than torch eager here (the graphs setup.sh exports)
    engine = LiveEngine(LiveRhythm(load_beat_model("full_causal"), graphs=graphs),
                        InlinePlanner(Rhythm2Drum.load(graphs=graphs).performer(DrumSampling(seed=0))),
                        Scheduler(sink, clock), clock=MidiClock())
    play_simulated(engine, clock, seq, pose_latency_s=0.04, tail_s=1.0)

    gate, grid = engine.gate, np.array(engine.stats.beat_grid) - START
    assert engine.stats.departures == 1 and gate.returns == 1
    assert engine.scheduler.late_events == 0 and not sink.held
    notes = [(t - START, m.velocity) for t, m in sink.messages if m.type == "note_on"]
    t_notes = np.array([t for t, _ in notes])
    vel = np.array([v for _, v in notes], float)
    assert gate.fade_from is not None and gate.fade_to is not None and gate.resume_from is not None
    fade_from, resume = grid[int(gate.fade_from)], grid[int(gate.resume_from)]
    fade_to = grid[int(gate.fade_to)] if gate.fade_to < len(grid) else np.inf
    assert GAP[0] + 0.5 < fade_from < GAP[0] + 0.5 + 2.0  # faded from the next downbeat after leaving

    before = vel[(t_notes > GAP[0] - 4.0) & (t_notes < GAP[0])]
    plays_on = vel[(t_notes > GAP[0] + 0.5) & (t_notes < fade_from - 0.01)]
    ramp = (t_notes >= fade_from) & (t_notes < min(fade_to, resume) - 0.01)
    assert len(before) > 5 and len(plays_on) > 0  # the groove keeps time after the dancer left
    # the velocity ramp: the fade's notes sound softer the later they come, all below the notes before
    r_t, r_v = t_notes[ramp], vel[ramp]
    assert len(r_v) >= 4
    assert np.corrcoef(r_t, r_v)[0, 1] < -0.5
    assert r_v[r_t > (fade_from + min(fade_to, resume)) / 2].mean() < 0.6 * before.mean()
    if fade_to < resume:  # faded out before the dancer came back: silence
        assert not np.any((t_notes >= fade_to) & (t_notes < resume - 0.01))

    # back at 15 s: resumed at full velocity on the next downbeat
    assert gate.resume_from % 4 == 0 and GAP[1] + 0.3 <= resume < GAP[1] + 0.3 + 60.0 / 129 * 4 + 0.2
    after = vel[(t_notes >= resume - 0.01) & (t_notes < resume + 3.0)]
    assert gate.gain(gate.resume_from) == 1.0 and gate.gain(gate.resume_from + 8) == 1.0
    assert len(after) > 5 and after.mean() > 0.6 * before.mean()
    # the MIDI clock ran on through the gap (no pulse gap longer than a few of its 24 a beat)
    pulses = np.array([t for t, m in sink.messages if m.type == "clock"]) - START
    in_gap = pulses[(pulses > GAP[0]) & (pulses < GAP[1])]
    assert len(in_gap) > 4.5 * 129 / 60 * 24 and np.max(np.diff(in_gap)) < 0.05
