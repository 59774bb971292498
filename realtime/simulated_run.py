"""Drive the live engine on a :class:`~.scheduler.SimulatedClock`: the deterministic form of ``rhythmicnet live
--keypoints`` that the engine tests and ``rhythmicnet bench live --beats`` use.

Frames arrive at their capture time plus the pose latency (:meth:`~.inputs.KeypointReplay.frames`); between
arrivals the clock moves in 1 ms steps and the scheduler is polled at each, as the live loop's poller does.
"""

from __future__ import annotations

from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.realtime.engine import LiveEngine
from rhythmicnet.realtime.inputs import KeypointReplay
from rhythmicnet.realtime.scheduler import SimulatedClock

__all__ = ["play_simulated"]

POLL_S = 0.001


def play_simulated(engine: LiveEngine, clock: SimulatedClock, sequence: KeypointSequence, *,
                   pose_latency_s: float = 0.040, tail_s: float = 3.0) -> None:
    """Replay ``sequence`` from the clock's current time into ``engine`` (whose scheduler must run on
    ``clock``), then let ``tail_s`` of planned notes play out and stop the engine (all notes off)."""
    for f in KeypointReplay(sequence, pose_latency_s=pose_latency_s).frames(start=clock.now()):
        while clock.now() < f.arrival_time:
            clock.advance(POLL_S)
            engine.poll()
        engine.on_frame(f.capture_time, f.keypoints, f.confidence, clock.now())
    for _ in range(int(round(tail_s / POLL_S))):  # the input has ended: what is planned plays out
        clock.advance(POLL_S)
        engine.poll(keep_going=False)
    engine.stop()
