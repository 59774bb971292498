"""The accompaniment planner of live play: Drum2Music's next bar from a planned drum bar.

Two forms with one interface (``submit(drum_bar) -> Future[list[BarNote]]``, ``program``, ``close()``):

* :class:`MusicProcess`: Drum2Music in its own process (``spawn``), one thread for torch and for ONNX
  Runtime there, so a bar of accompaniment (a few hundred ms; p99 656 ms in the issue's figures, a bar
  lasts ~2 s) never takes the frame loop's core or its GIL. Bars are planned in order by the one worker,
  so the Transformer-XL memory (kept in that process) sees them in order. This is what ``rhythmicnet live``
  uses.
* :class:`InlineMusic`: the same call on the caller's thread, returning a finished future: the
  deterministic engine tests on a simulated clock.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from rhythmicnet.models.drum2music import Drum2Music
from rhythmicnet.models.remi import BarNote, DrumBar

__all__ = ["InlineMusic", "MusicOptions", "MusicPlanner", "MusicProcess"]


class MusicPlanner(Protocol):
    program: int

    def submit(self, drum_bar: DrumBar) -> Future[list[BarNote]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class MusicOptions:
    """What the worker process needs to build its Drum2Music (everything picklable)."""

    instrument: str = "piano"
    temperature: float = 1.2
    seed: int = 0
    backend: str = "onnx"


def _build(opts: MusicOptions) -> Drum2Music:
    from rhythmicnet.export.backends import configure_threads, graph_factory
    from rhythmicnet.models.music_transformer import SamplingConfig

    configure_threads(1)
    return Drum2Music.load(instrument=opts.instrument,
                           sampling=SamplingConfig(temperature=opts.temperature, seed=opts.seed),
                           graphs=graph_factory(opts.backend))


_WORKER: Drum2Music | None = None  # the worker process's Drum2Music (one per process)


def _init_worker(opts: MusicOptions) -> None:
    global _WORKER
    import os

    # capped threads: the worker shares the machine's cores with the frame loop and the pose estimator
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    _WORKER = _build(opts)


def _next_bar(drum_bar: DrumBar) -> list[BarNote]:
    assert _WORKER is not None, "the music worker was not initialised"
    return _WORKER.next_bar(drum_bar)


def _program(_: int = 0) -> int:
    assert _WORKER is not None
    return _WORKER.program


class MusicProcess:
    """Drum2Music in a worker process (see the module docstring). Construction starts the process and
    waits until its model is loaded (a corrupt checkpoint fails here, not mid-performance)."""

    def __init__(self, opts: MusicOptions) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(opts,))
        self.program = int(self._pool.submit(_program).result())

    def submit(self, drum_bar: DrumBar) -> Future[list[BarNote]]:
        return self._pool.submit(_next_bar, drum_bar)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class InlineMusic:
    """Drum2Music on the caller's thread (deterministic tests)."""

    def __init__(self, music: Drum2Music) -> None:
        self.music, self.program = music, music.program

    def submit(self, drum_bar: DrumBar) -> Future[list[BarNote]]:
        done: Future[list[BarNote]] = Future()
        done.set_result(self.music.next_bar(drum_bar))
        return done

    def close(self) -> None:
        pass
