"""Worker processes on this machine for a batch (``rhythmicnet render --jobs N``).

``run_local(tasks, jobs, on_outcome)`` starts ``min(jobs, len(tasks))`` worker processes and hands
each one clip at a time over its own pipe; a worker renders with :func:`~.batch_worker.render_clip`
and keeps its loaded models for its next clip. Workers are forked from multiprocessing's fork server,
a fresh single-threaded interpreter started with :data:`~.batch_worker.THREAD_ENV` in its environment
that imports the pipeline once (:data:`PRELOAD`), so that a worker starts at once instead of importing
torch, OpenCV and mediapipe anew (``spawn`` where there is no fork server). The parent itself is never
forked (it may have threads).

Why not ``concurrent.futures.ProcessPoolExecutor`` or ``multiprocessing.Pool``: when a worker dies
(killed, out of memory), the first breaks every running clip with it and the second waits forever for
the dead one's clip. Here each worker has its own pipe, so the parent knows the one clip a dead worker
held: that clip fails ("worker process died ..."), the temporary files it left are removed, and a new
worker takes the next clip.

Ctrl-C: workers ignore SIGINT (the terminal sends it to the whole process group); the parent, on
KeyboardInterrupt (or SIGTERM, which the CLI raises as one; a Ctrl-C whose KeyboardInterrupt got lost in a
finalizer is remembered and raised again, see ``_remembered_interrupt``), sends each worker SIGTERM, which a worker
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
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from rhythmicnet.offline.batch_worker import THREAD_ENV, remove_partial_files

__all__ = ["STOP_TIMEOUT_S", "run_local"]

#: Seconds a worker has to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 20.0
#: The longest the parent waits for a worker's message before it checks for a remembered Ctrl-C.
WAIT_S = 0.5
#: Modules the fork server imports once for every worker it forks: imports that start no thread (the
#: fork server must stay single-threaded to fork safely; onnxruntime starts one when imported, so each
#: worker imports it on its first clip) and load no model.
PRELOAD = ["rhythmicnet.offline.batch_worker", "rhythmicnet.offline.render", "rhythmicnet.offline.rhythm_report",
           "rhythmicnet.offline.audio_stream", "rhythmicnet.offline.video_mux", "rhythmicnet.models.rhythm2drum",
           "rhythmicnet.models.drum2music", "rhythmicnet.export.onnx_export", "matplotlib.pyplot", "mediapipe"]


def _context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # no effect when this process's fork server already runs
        return ctx
    return mp.get_context("spawn")


_STOPPING = False  # in a worker: the parent has sent SIGTERM


def _raise_interrupt(signum: int, frame: object) -> None:
    global _STOPPING
    _STOPPING = True
    raise KeyboardInterrupt()


def _process_cpu_seconds() -> float:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


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
            if task is None:  # done: say how much CPU this worker used (it is no child of the parent's)
                with contextlib.suppress(BrokenPipeError, OSError):
                    conn.send({"worker_cpu_seconds": _process_cpu_seconds()})
                return
            outcome = render_clip(task)
            if _STOPPING:  # stopped mid-clip, even if the interrupt surfaced as another error (an
                return  # extension module interrupted while it imports raises ImportError)
            try:
                conn.send(outcome)
            except (BrokenPipeError, OSError):
                return
    except KeyboardInterrupt:
        return  # stopped by the parent; render cleaned up on its way out


@contextlib.contextmanager
def _launch_env() -> Iterator[None]:
    """While a new interpreter is launched (the fork server, or a spawned worker): THREAD_ENV in the
    environment it inherits, and SIGINT ignored, which it keeps for life (an ignored signal stays ignored
    across exec, and Python leaves it so), so that a Ctrl-C in the terminal never reaches it: the parent
    stops the workers itself. Only the launch is covered: a Ctrl-C while the parent then waits for the
    fork server's imports interrupts the parent as usual."""
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


@contextlib.contextmanager
def _remembered_interrupt() -> Iterator[list[int]]:
    """While a batch runs in the main thread with Python's default Ctrl-C handling: SIGINT raises
    KeyboardInterrupt as usual, and is also remembered (the list it yields fills), so that the batch loop
    raises it again if it was lost. Python runs a signal's handler at the main thread's next bytecode; after
    a long garbage collection (a large process, as a pytest run) that can be inside some object's
    ``__del__``, where the KeyboardInterrupt is printed as "Exception ignored" and dropped: the batch would
    then render every clip and end with status 0 after a Ctrl-C (the test drops one so)."""
    got: list[int] = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield got
        return

    def on_sigint(signum: int, frame: Any) -> None:
        got.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield got
    finally:
        signal.signal(signal.SIGINT, previous)


def _ensure_fork_server(ctx: Any) -> None:
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        with _launch_env():
            forkserver.ensure_running()  # launches it (if not running) and returns; it imports PRELOAD then


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child,), name="rhythmicnet-render-worker", daemon=True)
        if ctx.get_start_method() == "forkserver":
            self.process.start()  # a fork of the fork server: its environment and ignored SIGINT
        else:
            with _launch_env():
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
              on_outcome: Callable[[dict[str, Any], dict[str, Any]], None]) -> float:
    """Render ``tasks`` on ``jobs`` worker processes; ``on_outcome(task, outcome)`` is called in this
    process as each clip ends (see :func:`~.batch_worker.render_clip` for the outcome). Returns, once
    every worker has exited, the CPU seconds the workers used (with their children, e.g. ffmpeg), as
    each reports it when it stops (a worker that died is not counted)."""
    with _remembered_interrupt() as interrupted:
        return _run_workers(tasks, jobs, on_outcome, interrupted)


def _run_workers(tasks: Sequence[dict[str, Any]], jobs: int,
                 on_outcome: Callable[[dict[str, Any], dict[str, Any]], None], interrupted: list[int]) -> float:
    ctx = _context()
    pending = deque(tasks)
    workers: list[_Worker] = []
    try:
        _ensure_fork_server(ctx)
        for _ in range(min(max(1, jobs), len(pending))):
            w = _Worker(ctx)
            workers.append(w)
            w.give(pending.popleft())
        while any(w.task is not None for w in workers):
            if interrupted:  # a Ctrl-C whose KeyboardInterrupt was lost (see _remembered_interrupt)
                raise KeyboardInterrupt
            busy = [w for w in workers if w.task is not None]
            # a timeout: a SIGINT taken by another thread of this process does not wake this wait
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=WAIT_S))
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
        cpu = 0.0
        for w in workers:
            w.stop()
            with contextlib.suppress(EOFError, OSError):
                if w.conn.poll(STOP_TIMEOUT_S):
                    cpu += float(w.conn.recv().get("worker_cpu_seconds", 0.0))
            w.process.join()
            w.conn.close()
        return cpu
    except BaseException:  # Ctrl-C, SIGTERM, or a failure here: stop every worker cleanly
        _stop_all(workers)
        raise


def _stop_all(workers: list[_Worker]) -> None:
    """SIGTERM to every worker, and its pipe closed (an idle worker then sees the end of it and exits);
    a worker still there after STOP_TIMEOUT_S is killed; then the temporary files of unfinished clips
    are removed."""
    for w in workers:
        if w.process.pid is not None and w.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.process.pid, signal.SIGTERM)
        w.conn.close()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for w in workers:
        if w.process.pid is None:  # its start was interrupted: it sees its pipe closed and exits
            continue
        w.process.join(max(0.0, deadline - time.monotonic()))
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
        if w.task is not None:
            remove_partial_files(w.task["outdir"])
