"""Worker processes on this machine for a batch (``rhythmicnet render --jobs N``).

``run_local(tasks, jobs, on_outcome)`` starts ``min(jobs, len(tasks))`` worker processes (``spawn``:
fresh interpreters, never a fork of a parent that has threads), each with
:data:`~.batch_worker.THREAD_ENV` in its environment, and hands each one clip at a time over its own
pipe; a worker renders with :func:`~.batch_worker.render_clip` and keeps its loaded models for its
next clip.

Why not ``concurrent.futures.ProcessPoolExecutor`` or ``multiprocessing.Pool``: when a worker dies
(killed, out of memory), the first breaks every running clip with it and the second waits forever for
the dead one's clip. Here each worker has its own pipe, so the parent knows the one clip a dead worker
held: that clip fails ("worker process died ..."), the temporary files it left are removed, and a new
worker takes the next clip.

Ctrl-C: workers ignore SIGINT (the terminal sends it to the whole process group); the parent, on
KeyboardInterrupt (or SIGTERM, which the CLI raises as one), sends each worker SIGTERM, which a worker
raises as KeyboardInterrupt, so that render's clean-up runs (ffmpeg children killed, temporary files
removed: outputs are written atomically). A worker that has not exited after ``STOP_TIMEOUT_S`` is
killed and its clip folder's temporary files removed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from rhythmicnet.offline.batch_worker import THREAD_ENV, remove_partial_files

__all__ = ["STOP_TIMEOUT_S", "run_local"]

#: Seconds a worker has to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 20.0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()


def _worker_main(conn: Connection) -> None:
    """A worker: render the clips the parent sends, one at a time, until it sends None or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        import warnings

        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        from rhythmicnet.offline.batch_worker import cap_threads, render_clip

        cap_threads()
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if task is None:
                return
            outcome = render_clip(task)
            try:
                conn.send(outcome)
            except (BrokenPipeError, OSError):
                return
    except KeyboardInterrupt:
        return  # stopped by the parent; render cleaned up on its way out


@contextlib.contextmanager
def _worker_start_env() -> Iterator[None]:
    """While a worker starts: THREAD_ENV in the environment it inherits, and SIGINT ignored so that a
    Ctrl-C during its start-up never reaches it (an ignored signal stays ignored in the new interpreter)."""
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update(THREAD_ENV)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        with _worker_start_env():
            self.process = ctx.Process(target=_worker_main, args=(child,), name="rhythmicnet-render-worker",
                                       daemon=True)
            self.process.start()
        child.close()
        self.task: dict[str, Any] | None = None

    def give(self, task: dict[str, Any]) -> None:
        self.task = task
        self.conn.send(task)

    def death_note(self) -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
            if -code == signal.SIGKILL:
                how += ", perhaps out of memory"
        else:
            how = f"exit status {code}"
        return f"worker process died ({how})"

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)


def run_local(tasks: Sequence[dict[str, Any]], jobs: int,
              on_outcome: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    """Render ``tasks`` on ``jobs`` worker processes; ``on_outcome(task, outcome)`` is called in this
    process as each clip ends (see :func:`~.batch_worker.render_clip` for the outcome). Returns once every
    worker has exited (so their CPU time counts in this process's ``RUSAGE_CHILDREN``)."""
    ctx = mp.get_context("spawn")
    pending = deque(tasks)
    workers: list[_Worker] = []
    try:
        for _ in range(min(max(1, jobs), len(pending))):
            w = _Worker(ctx)
            workers.append(w)
            w.give(pending.popleft())
        while any(w.task is not None for w in workers):
            busy = [w for w in workers if w.task is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for w in busy:
                if w.conn not in ready and w.process.sentinel not in ready:
                    continue
                task = w.task
                assert task is not None
                outcome = None
                with contextlib.suppress(EOFError, OSError):
                    if w.conn.poll():
                        outcome = w.conn.recv()
                w.task = None
                if outcome is None:  # the worker died with this clip: it alone fails, a new worker goes on
                    w.process.join()
                    workers.remove(w)
                    w.conn.close()
                    remove_partial_files(task["outdir"])
                    on_outcome(task, {"status": "failed", "error": f"{task['input']}: {w.death_note()}"})
                    if pending:
                        fresh = _Worker(ctx)
                        workers.append(fresh)
                        fresh.give(pending.popleft())
                    continue
                on_outcome(task, outcome)
                if pending:
                    w.give(pending.popleft())
                else:
                    w.stop()
        for w in workers:
            w.stop()
            w.process.join()
    except BaseException:  # Ctrl-C, SIGTERM, or a failure here: stop every worker cleanly
        _stop_all(workers)
        raise


def _stop_all(workers: list[_Worker]) -> None:
    for w in workers:
        if w.process.is_alive() and w.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.process.pid, signal.SIGTERM)
    for w in workers:
        w.process.join(STOP_TIMEOUT_S)
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
        if w.task is not None:
            remove_partial_files(w.task["outdir"])
        w.conn.close()
