"""Fixtures shared by the model tests."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Models of many small ops: on a busy 2-core machine two OpenMP threads made a module 10x slower
    (threads waiting for a descheduled partner), so these tests run on one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
