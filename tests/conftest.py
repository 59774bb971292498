"""Shared pytest fixtures.

``shared_dir``: the project's shared data folder (example clips, reference outputs), which lives
*beside* the repository (``<repo>/../shared``; CI clones the repo with ``shared/`` next to it), or
inside it (``<repo>/shared``), or wherever ``RHYTHMICNET_SHARED_DIR`` points. Tests that need it
are skipped cleanly when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_shared_dir() -> Path | None:
    """The shared data folder, or None when there is none."""
    candidates = []
    env = os.environ.get("RHYTHMICNET_SHARED_DIR")
    if env:
        candidates.append(Path(env))
    candidates += [REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]
    for c in candidates:
        if (c / "data").is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``shared/`` (holds ``data/example_video/...``); skips the test when it is not found."""
    found = find_shared_dir()
    if found is None:
        pytest.skip("shared data folder not found (expected ../shared beside the repo or $RHYTHMICNET_SHARED_DIR)")
    return found


@pytest.fixture(scope="session")
def example_video_dir(shared_dir: Path) -> Path:
    """``shared/data/example_video``; skips the test when it is missing."""
    d = shared_dir / "data" / "example_video"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d
