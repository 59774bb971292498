"""The suite's own set-up: Ctrl-C works in the tests however the suite was launched."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_a_suite_started_with_sigint_ignored_gets_pythons_handler():
    """A background job of a non-interactive shell starts with SIGINT ignored (POSIX); the suite's conftest
    gives it Python's KeyboardInterrupt handler back, so the Ctrl-C tests and their children see SIGINT."""
    probe = ("import runpy, signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
             f"runpy.run_path({str(REPO_ROOT / 'tests' / 'conftest.py')!r}); "
             "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
    # and in this very process
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
