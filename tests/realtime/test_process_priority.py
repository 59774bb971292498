"""The frame loop's reserved core (background threads move off it, in this process and in spawned ones) and its
real-time priority."""

import os
import subprocess
import sys
import threading

import pytest

from rhythmicnet.realtime.process_priority import (
    FRAME_LOOP_RT_PRIORITY,
    lower_frame_loop_priority,
    lower_priority,
    raise_frame_loop_priority,
    release_frame_loop_core,
    reserve_frame_loop_core,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                                reason="needs Linux and 2+ cores")


def test_reserved_core_is_the_frame_loops_alone():
    before = os.sched_getaffinity(0)
    seen = {}

    def frame_loop():
        core = reserve_frame_loop_core()
        seen["core"], seen["loop"] = core, os.sched_getaffinity(0)

        def background():
            lower_priority(0)  # nice 0: only the affinity is under test here
            seen["background"] = os.sched_getaffinity(0)

        t = threading.Thread(target=background)
        t.start()
        t.join()
        # a process started from the frame loop (as spawn starts the pose and planner workers) inherits its
        # core and the environment; lower_priority moves it off
        code = ("import os; from rhythmicnet.realtime.process_priority import lower_priority; lower_priority(0); "
                "print(','.join(map(str, sorted(os.sched_getaffinity(0)))))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        seen["child"] = {int(c) for c in out.stdout.strip().split(",")}
        release_frame_loop_core()
        seen["released"] = os.sched_getaffinity(0)

    t = threading.Thread(target=frame_loop)
    t.start()
    t.join()
    core = seen["core"]
    assert core == max(before) and seen["loop"] == {core}
    assert seen["background"] == before - {core} and seen["child"] == before - {core}
    assert seen["released"] == before and os.sched_getaffinity(0) == before  # the test's own thread untouched
    assert "RHYTHMICNET_FRAME_LOOP_CORE" not in os.environ


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="needs Linux's scheduler API")
def test_real_time_frame_loop_leaves_its_threads_and_children_at_normal_priority():
    """Where permitted, the frame loop runs under SCHED_FIFO; a thread and a process it starts afterwards
    (pose, planning, executor threads) run under the normal policy (SCHED_RESET_ON_FORK), and lowering it
    again restores the normal policy. Where not permitted, nothing changes."""
    seen: dict[str, object] = {}

    def frame_loop():
        seen["before"] = os.sched_getscheduler(0)
        seen["policy"] = raise_frame_loop_priority()
        seen["loop"] = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK
        t = threading.Thread(target=lambda: seen.__setitem__("thread", os.sched_getscheduler(0)))
        t.start()
        t.join()
        out = subprocess.run([sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
                             capture_output=True, text=True, timeout=60, check=True)
        seen["child"] = int(out.stdout)
        lower_frame_loop_priority()
        seen["after"] = os.sched_getscheduler(0)

    t = threading.Thread(target=frame_loop)
    t.start()
    t.join()
    assert seen["before"] == os.SCHED_OTHER and seen["after"] == os.SCHED_OTHER
    assert seen["thread"] == os.SCHED_OTHER and seen["child"] == os.SCHED_OTHER
    if seen["policy"] is None:  # no permission here (no root, CAP_SYS_NICE or rtprio limit)
        assert seen["loop"] == os.SCHED_OTHER
    else:
        assert seen["policy"] == f"SCHED_FIFO {FRAME_LOOP_RT_PRIORITY}" and seen["loop"] == os.SCHED_FIFO
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the test's own thread untouched
