"""The frame loop's reserved core: background threads move off it, in this process and in spawned ones."""

import os
import subprocess
import sys
import threading

import pytest

from rhythmicnet.realtime.process_priority import lower_priority, release_frame_loop_core, reserve_frame_loop_core

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
