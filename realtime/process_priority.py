"""Keep the live frame loop on time: background work (pose, video decoding, bar planning) yields to it.

The frame loop needs a few milliseconds a frame, on time; pose (~20-30 ms a frame), decoding a large video
and planning a bar (a whole bar of time) can wait. Two tools:

* :func:`lower_priority`: a background thread (or process) runs at nice +5. On Linux the priority is per
  thread and threads created afterwards inherit it (a decoder's or an inference library's worker
  threads); elsewhere the whole process is lowered.
* :func:`reserve_frame_loop_core`: on a machine with two or more cores, the frame loop's thread gets one
  core to itself and every thread that calls :func:`lower_priority` afterwards (in this process or in a
  process it spawns: the choice travels in the environment) moves to the other cores. A lower nice value
  alone still lets a waking frame wait behind a running pose step for part of a scheduler slice; with its
  own core it only shares with the little it spawned itself (the MIDI poller, the pose pipe's waiting
  thread). Linux only (``os.sched_setaffinity``); elsewhere a no-op. Opt-in (``live --reserve-core``):
  measured side by side on this 2-core machine (``bench live --seconds 60``, twice each, alternating), the
  frame loop's p99 after pose was 5.95 / 6.22 ms reserved against 6.15 / 6.63 ms sharing, while pose on
  one core slowed from 19 to 32 ms a frame and dropped 282-305 of 1766 frames instead of 13-20.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["BACKGROUND_NICE", "FRAME_LOOP_RT_PRIORITY", "lower_frame_loop_priority", "lower_priority",
           "raise_frame_loop_priority", "release_frame_loop_core", "reserve_frame_loop_core"]

#: The nice value added to background work.
BACKGROUND_NICE = 5
#: Environment variables that carry the reservation to spawned processes: the frame loop's core and the
#: cores the process could use before it.
_CORE_ENV, _CPUS_ENV = "RHYTHMICNET_FRAME_LOOP_CORE", "RHYTHMICNET_CPUS"


def reserve_frame_loop_core() -> int | None:
    """Pin the calling thread (the frame loop) to one core and leave the others to background work; returns
    the core, or None where there is no second core or no affinity API (nothing changes then)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return None
        core = cpus[-1]  # not CPU 0, which usually takes more of the machine's interrupts
        os.sched_setaffinity(threading.get_native_id(), {core})
    except OSError:
        return None
    os.environ[_CORE_ENV] = str(core)
    os.environ[_CPUS_ENV] = ",".join(map(str, cpus))
    return core


#: The frame loop's real-time priority (SCHED_FIFO, 1-99): low, below JACK's own threads (usually 70-95)
FRAME_LOOP_RT_PRIORITY = 10


def raise_frame_loop_priority(priority: int = FRAME_LOOP_RT_PRIORITY) -> str | None:
    """Run the calling thread (the frame loop) under SCHED_FIFO at ``priority``, with SCHED_RESET_ON_FORK so
    that the threads and processes it starts afterwards (pose, decoding, planning, executor threads) run
    under the normal policy. Returns the policy's name, or None where it is not possible (no permission:
    root, CAP_SYS_NICE or an rtprio limit as audio setups give the audio group; or not Linux): nothing
    changes then. A waking frame then takes a core from pose or planning at once instead of waiting for a
    scheduler slice; it needs a few ms of each 33 ms frame, and the kernel's RT throttling keeps 5 % of
    every second for the rest whatever happens."""
    if not (sys.platform.startswith("linux") and hasattr(os, "sched_setscheduler")):
        return None
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except (OSError, AttributeError):
        return None
    return f"SCHED_FIFO {priority}"


def lower_frame_loop_priority() -> None:
    """Undo :func:`raise_frame_loop_priority` for the calling thread (the normal policy again)."""
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


def release_frame_loop_core() -> None:
    """Undo :func:`reserve_frame_loop_core` for the calling thread (it may use every core again)."""
    cpus = os.environ.pop(_CPUS_ENV, None)
    os.environ.pop(_CORE_ENV, None)
    if cpus and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(threading.get_native_id(), {int(c) for c in cpus.split(",")})
        except OSError:
            pass


def lower_priority(nice: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's (Linux) or process's priority by ``nice`` and, when the frame loop has
    reserved a core, move the thread off it; a no-op where not possible."""
    try:
        if sys.platform.startswith("linux"):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        elif hasattr(os, "nice"):
            os.nice(nice)
    except (OSError, AttributeError):
        pass
    core, cpus = os.environ.get(_CORE_ENV), os.environ.get(_CPUS_ENV)
    if core is not None and cpus and hasattr(os, "sched_setaffinity"):
        others = {int(c) for c in cpus.split(",")} - {int(core)}
        try:
            if others:
                os.sched_setaffinity(threading.get_native_id(), others)
        except (OSError, ValueError):
            pass
