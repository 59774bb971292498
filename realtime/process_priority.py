"""Lower the scheduling priority of the live path's background work (pose, video decoding, bar planning).

The frame loop needs a few milliseconds a frame, on time; pose (~20-30 ms a frame), decoding a large video
and planning a bar (a whole bar of time) can yield to it. On Linux the priority is per thread and threads
created afterwards inherit it (a decoder's or an inference library's worker threads); elsewhere the whole
process is lowered.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["BACKGROUND_NICE", "lower_priority"]

#: The nice value added to background work.
BACKGROUND_NICE = 5


def lower_priority(nice: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's (Linux) or process's priority by ``nice``; a no-op where not possible."""
    try:
        if sys.platform.startswith("linux"):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        elif hasattr(os, "nice"):
            os.nice(nice)
    except (OSError, AttributeError):
        pass
