"""A batch as Ray tasks (``rhythmicnet render --ray [ADDRESS]``): one task per clip, on a Ray cluster.

Ray is an optional extra (``pip install 'rhythmicnet[ray]'``) and is imported only here, only for
``--ray``. :func:`connect` joins an existing cluster (``auto``, ``host:port``, or ``ray://host:10001``
through Ray Client, which needs ``ray[client]``), or starts a local instance when no address is given
(or reuses the one this process already started with ``ray.init``). Inputs and outputs are paths:
every node must see them at the same place (shared storage), and have rhythmicnet installed.

Each task runs :func:`~.batch_worker.render_clip` with one CPU and :data:`~.batch_worker.THREAD_ENV`
in its environment; Ray keeps its worker processes between tasks, so a worker loads the models once.
A task never retries: a clip that fails is recorded, and a worker that dies (killed, out of memory)
fails only the clip it ran. Ctrl-C cancels the tasks (a running one gets KeyboardInterrupt, so render
cleans up) and waits for them before it returns.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from rhythmicnet.errors import InputError, RhythmicNetError
from rhythmicnet.offline.batch_worker import THREAD_ENV, one_line, remove_partial_files, render_clip

__all__ = ["RayCluster", "connect", "is_address", "run_ray"]

#: Seconds cancelled tasks get to end after Ctrl-C.
CANCEL_TIMEOUT_S = 20.0


def is_address(text: str) -> bool:
    """True for what ``--ray`` takes as a cluster address: ``auto``, ``ray://...``, ``host:port``."""
    return text == "auto" or text.startswith("ray://") or re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", text) is not None


class RayCluster:
    """The Ray connection a batch uses: ``ray`` (the module), ``address`` (None: a local instance),
    ``started`` (this batch started it, and shuts it down), ``cpus`` (the cluster's CPUs)."""

    def __init__(self, ray: Any, address: str | None, started: bool) -> None:
        self.ray, self.address, self.started = ray, address, started
        self.cpus = int(ray.cluster_resources().get("CPU", 0)) or 1

    def close(self) -> None:
        if self.started:
            with contextlib.suppress(Exception):
                self.ray.shutdown()


def connect(address: str | None, num_cpus: int | None = None) -> RayCluster:
    """Connect to ``address`` or start a local Ray instance (``num_cpus``: its CPUs; None: all). One-line
    errors: Ray not installed, the cluster not reachable."""
    try:
        import ray
    except ImportError as e:
        raise InputError("--ray needs Ray: pip install 'rhythmicnet[ray]'") from e
    if ray.is_initialized():
        return RayCluster(ray, address, started=False)
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    except ImportError as e:  # ray:// without the client extra
        raise InputError(f"--ray {address}: Ray Client is not installed: pip install 'ray[client]' "
                         f"({one_line(str(e), 120)})") from e
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ...: the cluster is not there
        where = address or "(a local instance)"
        raise RhythmicNetError(f"--ray {where}: cannot connect to Ray ({one_line(str(e), 200)})") from e
    return RayCluster(ray, address, started=True)


def _failed(task: dict[str, Any], error: BaseException) -> dict[str, Any]:
    name = type(error).__name__
    if name in ("WorkerCrashedError", "OutOfMemoryError", "NodeDiedError", "ActorDiedError"):
        note = f"Ray worker died ({name})"
    else:
        note = f"{name}: {one_line(str(error), 200)}"
    return {"status": "failed", "error": f"{task['input']}: {note}"}


def run_ray(cluster: RayCluster, tasks: Sequence[dict[str, Any]],
            on_outcome: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    """Run ``tasks`` as Ray tasks; ``on_outcome(task, outcome)`` as each clip ends (as ``run_local``)."""
    ray = cluster.ray
    remote = ray.remote(render_clip).options(num_cpus=1, max_retries=0, retry_exceptions=False,
                                             runtime_env={"env_vars": dict(THREAD_ENV)})
    refs = {remote.remote(t): t for t in tasks}
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task = refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a dead worker or a task error fails this clip only
                    remove_partial_files(task["outdir"])
                    outcome = _failed(task, e)
                on_outcome(task, outcome)
    except BaseException:  # Ctrl-C: cancel what runs (render cleans up), wait for it, then go
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        deadline = time.monotonic() + CANCEL_TIMEOUT_S
        left = list(refs)
        with contextlib.suppress(Exception):
            while left and time.monotonic() < deadline:
                _, left = ray.wait(left, num_returns=len(left), timeout=max(0.1, deadline - time.monotonic()))
        for task in refs.values():
            remove_partial_files(task["outdir"])
        raise
