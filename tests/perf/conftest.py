"""Performance tests run with one intra-op thread: on a shared 2-core machine, OpenMP threads spinning
against other processes make tiny models many times slower, and these tests check behaviour, not speed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
