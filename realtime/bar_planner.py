"""The bar planner of live play: a bar's rhythm in, its drums (Rhythm2Drum) and accompaniment (Drum2Music) out.

Planning a bar costs a drum bar (the hits transformer's 32 steps and the U-Net, ~17 ms) and, with an
instrument, a Transformer-XL bar (a few hundred ms; p99 656 ms in the issue's figures). The engine asks
for bar i+1 when bar i starts, so a whole bar (~2 s) is there to plan it; none of it may hold up a frame
(processing after pose: <= 5 ms p99). Two forms with one interface (``submit(rhythm, tempo_bpm) ->
Future[BarPlan]``, ``program``, ``close()``):

* :class:`ProcessPlanner`: Rhythm2Drum and Drum2Music in their own process (``spawn``), one thread for
  torch and for ONNX Runtime there, so planning never takes the frame loop's core or its GIL. Bars are
  planned in order by the one worker, so the drummer's state and the Transformer-XL memory (kept in
  that process) see them in order. This is what ``rhythmicnet live`` uses.
* :class:`InlinePlanner`: the same calls on the caller's thread, returning a finished future: the
  deterministic engine tests on a simulated clock.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rhythmicnet.models.drum2music import Drum2Music
from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.remi import BarNote, DrumBar
from rhythmicnet.models.rhythm2drum import DrumPerformer

__all__ = ["BarPlan", "BarPlanner", "InlinePlanner", "PlannerOptions", "ProcessPlanner"]


@dataclass(frozen=True)
class BarPlan:
    """One planned bar: the drums (9, 16) with velocities and micro-offsets, and the accompaniment's notes
    (empty without an instrument)."""

    drums: DrumGrid
    music: list[BarNote]


class BarPlanner(Protocol):
    program: int | None

    def submit(self, rhythm: np.ndarray, tempo_bpm: float) -> Future[BarPlan]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PlannerOptions:
    """What the worker process needs to build its models (everything picklable). ``instrument``: piano,
    guitar or none (drums only)."""

    instrument: str = "piano"
    temperature: float = 1.2
    seed: int = 0
    backend: str = "onnx"


def _plan(performer: DrumPerformer, music: Drum2Music | None, rhythm: np.ndarray, tempo_bpm: float) -> BarPlan:
    grid = performer.next_bar(rhythm)
    notes = [] if music is None else music.next_bar(DrumBar(grid.hits, grid.velocities, tempo_bpm))
    return BarPlan(grid, notes)


class InlinePlanner:
    """Planning on the caller's thread (deterministic tests)."""

    def __init__(self, performer: DrumPerformer, music: Drum2Music | None = None) -> None:
        self.performer, self.music = performer, music
        self.program = None if music is None else music.program

    def submit(self, rhythm: np.ndarray, tempo_bpm: float) -> Future[BarPlan]:
        done: Future[BarPlan] = Future()
        done.set_result(_plan(self.performer, self.music, rhythm, tempo_bpm))
        return done

    def close(self) -> None:
        pass


_WORKER: InlinePlanner | None = None  # the worker process's models (one planner per process)


def _init_worker(opts: PlannerOptions) -> None:
    global _WORKER
    import os

    # capped threads and a lower priority: the worker shares the machine's cores with the frame loop and
    # the pose estimator, and has a whole bar for each plan while a frame has a few milliseconds
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    from rhythmicnet.realtime.process_priority import lower_priority

    lower_priority()
    from rhythmicnet.export.backends import configure_threads, graph_factory
    from rhythmicnet.models.music_transformer import SamplingConfig as MusicSampling
    from rhythmicnet.models.rhythm2drum import Rhythm2Drum
    from rhythmicnet.models.rhythm2drum import SamplingConfig as DrumSampling

    configure_threads(1)
    graphs = graph_factory(opts.backend)
    performer = Rhythm2Drum.load(graphs=graphs).performer(DrumSampling(seed=opts.seed))
    music = None if opts.instrument == "none" else Drum2Music.load(
        instrument=opts.instrument, sampling=MusicSampling(temperature=opts.temperature, seed=opts.seed),
        graphs=graphs)
    _WORKER = InlinePlanner(performer, music)


def _worker_plan(rhythm: np.ndarray, tempo_bpm: float) -> BarPlan:
    assert _WORKER is not None, "the planner worker was not initialised"
    return _plan(_WORKER.performer, _WORKER.music, rhythm, tempo_bpm)


def _worker_program() -> int | None:
    assert _WORKER is not None, "the planner worker was not initialised"
    return _WORKER.program


class ProcessPlanner:
    """Planning in a worker process (see the module docstring). Construction starts the process and waits
    until its models are loaded (a corrupt checkpoint fails here, with ``BrokenProcessPool``, not
    mid-performance)."""

    def __init__(self, opts: PlannerOptions) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(opts,))
        self.program = self._pool.submit(_worker_program).result()

    def submit(self, rhythm: np.ndarray, tempo_bpm: float) -> Future[BarPlan]:
        return self._pool.submit(_worker_plan, np.asarray(rhythm, bool), float(tempo_bpm))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
