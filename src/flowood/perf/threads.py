"""CPU thread count for demos on a shared (possibly overloaded) machine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """Temporarily set torch's intra-op threads (``None``: 1 on an overloaded CPU, else unchanged).

    Yields the thread count in force inside the context; the previous count is restored on exit, errors
    included. On a CPU whose 1-minute load average already reaches its core count, two OpenMP threads per
    process were measured 5-27x slower than one (threads spin waiting for each other), so demos step down
    to one.
    """
    before = torch.get_num_threads()
    if threads is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - not available on every platform
            load = 0.0
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = 1 if load >= cores else before
    torch.set_num_threads(max(1, threads))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
