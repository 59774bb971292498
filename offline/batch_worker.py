"""One clip of a batch, rendered in a worker process (a local worker of :mod:`.batch_pool` or a Ray task).

:func:`render_clip` is the whole job of a worker for one clip: it renders it with the networks this
process already loaded (:class:`~.loaded_models.LoadedModels`, one per process, so models load once per
worker, not once per clip) and returns a small, picklable outcome: ``done`` with the clip's figures, or
``failed`` with a one-line error. A clip's failure never escapes as an exception: the batch goes on.

Threads: N workers on N cores must not each start a pool of threads per library. :data:`THREAD_ENV`
caps OpenMP/BLAS pools (set in the worker's environment before it starts, as they are read at import);
:func:`cap_threads` caps torch (intra- and inter-op) and OpenCV in code. ONNX Runtime sessions already
run on one thread (``export.runtime.session_options``).

This module imports nothing heavy at the top: a spawned worker reads :data:`THREAD_ENV` before numpy,
torch or OpenCV load.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from pathlib import Path
from typing import Any

__all__ = ["THREAD_ENV", "cap_threads", "clip_figures", "remove_partial_files", "render_clip"]

#: Environment of a worker: one thread for every OpenMP / BLAS / numexpr pool.
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                 "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}

_MODELS: Any = None  # this process's LoadedModels, made on the first clip
_CAPPED = False


def cap_threads() -> None:
    """One thread for torch (intra- and inter-op), OpenCV and (for later imports and child processes)
    OpenMP/BLAS. Idempotent; the first call in a process should come before any parallel work."""
    global _CAPPED
    if _CAPPED:
        return
    os.environ.update(THREAD_ENV)
    import cv2
    import torch

    from rhythmicnet.export.backends import configure_threads

    configure_threads(1)
    with contextlib.suppress(RuntimeError):  # only settable before the first inter-op work
        torch.set_num_interop_threads(1)
    cv2.setNumThreads(1)
    _CAPPED = True


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (ffmpeg) so far."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def clip_figures(record: dict[str, Any]) -> dict[str, Any]:
    """What the batch summary keeps of a clip's ``report.json``."""
    return {k: record.get(k) for k in ("duration_s", "tempo_bpm", "beat_count", "bars", "notes", "stage_seconds")}


def remove_partial_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files a writer killed mid-write (SIGKILL, out of memory) left in ``folder``
    (``fileio.atomic_path`` and render's skeleton video name them ``.<name>.<random>.part<suffix>``).
    Every finished output is renamed into place whole, so nothing else there is ever half-written."""
    removed = []
    with contextlib.suppress(OSError):
        for f in Path(folder).iterdir():
            if f.name.startswith(".") and ".part" in f.name and f.is_file():
                with contextlib.suppress(OSError):
                    f.unlink()
                    removed.append(f)
    return removed


def render_clip(task: dict[str, Any]) -> dict[str, Any]:
    """Render one clip; ``task``: ``input``, ``outdir``, ``input_sha256`` and ``config`` (a ``RenderConfig``
    as a dict). Returns ``status`` (done | failed), ``error`` (one line or None), the clip's figures
    (:func:`clip_figures`), ``seconds`` (wall) and ``cpu_seconds`` (this process and its children)."""
    global _MODELS
    cap_threads()
    from rhythmicnet.errors import RhythmicNetError
    from rhythmicnet.offline.loaded_models import LoadedModels
    from rhythmicnet.offline.render import RenderConfig, render

    if _MODELS is None:
        _MODELS = LoadedModels()
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    out: dict[str, Any] = {"status": "failed", "error": None}
    outdir = Path(task["outdir"])
    existed = outdir.is_dir()
    try:
        settings = dict(task["config"])
        settings["tempo_range"] = tuple(settings["tempo_range"])
        result = render(task["input"], outdir, RenderConfig(**settings), progress=False, models=_MODELS,
                        input_sha256=task["input_sha256"])
        out = {"status": "done", "error": None, **clip_figures(result.record)}
    except RhythmicNetError as e:
        out["error"] = one_line(str(e))
    except Exception as e:  # noqa: BLE001 - a bug on one clip is recorded, and the batch goes on
        out["error"] = one_line(f"{Path(task['input'])}: {type(e).__name__}: {e}")
    if out["status"] == "failed" and not existed:
        with contextlib.suppress(OSError):  # the folder render made for a clip that gave nothing
            outdir.rmdir()
    out["seconds"] = round(time.perf_counter() - t0, 4)
    out["cpu_seconds"] = round(_cpu_seconds() - cpu0, 4)
    return out
