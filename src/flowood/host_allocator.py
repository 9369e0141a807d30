"""Host (CPU) memory allocator settings for flowood's own processes (the CLI and the benchmarks).

PyTorch's CPU tensors come straight from the C library's ``malloc``. glibc serves a block above its mmap
threshold (adaptive, at most 32 MiB by default) with a fresh ``mmap`` and unmaps it on ``free``, and it
trims the top of its heap as soon as 128 KiB are free there. A flow's activations are far larger than that
(64 channels × 28 × 28 × 512 images × 4 B = 103 MB per tensor at scoring batch 512), so each layer of each
batch faults in new zero-filled pages from the kernel. On 2 CPU cores that made about 40 % of scoring time
system time: `flowood evaluate` scored a small RealNVP at 119 images/s, and at 201 once freed blocks were
kept for reuse (benchmarks/RESULTS.md, 2026-11-29).

:func:`tune_host_allocator` raises the mmap threshold to 1 GiB and the trim threshold to 2 GiB with
``mallopt``, so freed activations stay in the heap and the next batch reuses them. The cost is memory the
process keeps after a peak (0.46 GB more peak RSS in that measurement). It changes process-wide
state, so the library never calls it on import: only ``flowood``'s command-line entry point and the
benchmark scripts do. ``FLOWOOD_HOST_ALLOCATOR=default`` turns it off. Only glibc on Linux is affected;
elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

ENV_VAR = "FLOWOOD_HOST_ALLOCATOR"
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int
_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3

_state = "default"


def tune_host_allocator() -> bool:
    """Keep large freed CPU blocks in glibc's heap for reuse; ``True`` if the settings were applied.

    Returns ``False`` (and changes nothing) when ``FLOWOOD_HOST_ALLOCATOR`` is ``default``/``0``/``off``,
    on a C library other than glibc, or when ``mallopt`` refuses a value.
    """
    global _state
    if os.environ.get(ENV_VAR, "").strip().lower() in ("default", "0", "off", "false"):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Trim first: a refused mmap threshold then leaves glibc's own (adaptive) mmap behaviour in place.
    if mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1 or mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return False
    _state = "tuned"
    return True


def host_allocator_state() -> str:
    """``"tuned"`` after a successful :func:`tune_host_allocator` in this process, else ``"default"``."""
    return _state
