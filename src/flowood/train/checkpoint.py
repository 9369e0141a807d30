"""Atomic, resumable checkpoints that never run code from the file.

A checkpoint is written to a temporary file in the same directory, flushed to disk and then renamed
over the previous one with :func:`os.replace`, which is atomic on POSIX: a crash, a kill or a full disk
during the write leaves the previous checkpoint intact. The file gets the usual permissions (``0666``
minus the umask), not ``mkstemp``'s private ``0600``.

Checkpoints are read with ``torch.load(weights_only=True)``: only tensors, numbers, strings and plain
containers are accepted, so a crafted ``last.pt`` (run directories are shared) cannot execute anything.
Training state is stored in those types only (see :func:`flowood.train.resume.rng_state`).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from flowood.atomic import atomic_write, describe_write_error

__all__ = ["atomic_write", "describe_write_error"]  # re-exported: their home is flowood.atomic
from flowood.errors import CheckpointError, RunWriteError

# Checkpoints written by flowood 0.1 held numpy's RNG state as an ndarray. These three globals only
# rebuild plain numeric arrays; allowing them (and nothing else) keeps such runs resumable.
_LEGACY_NUMPY_GLOBALS = {
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.dtypes.UInt32DType",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray._reconstruct",
}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a training state dict (tensors, numbers, strings, lists, dicts only)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _unsafe_globals(path: Path) -> set[str] | None:
    lister = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch >= 2.5
    if lister is None:
        return None
    try:
        return set(lister(str(path)))
    except Exception:
        return None


def _load_legacy(path: Path, map_location: str | torch.device) -> dict[str, Any] | None:
    """Load a flowood 0.1 checkpoint (numpy RNG state) allowing only numpy's array rebuilders, else None."""
    found = _unsafe_globals(path)
    if not found or not found <= _LEGACY_NUMPY_GLOBALS or not hasattr(torch.serialization, "safe_globals"):
        return None
    import numpy as np

    allowed: list[Any] = [np.ndarray, np.dtype, type(np.dtype("uint32"))]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            allowed.append(__import__(module, fromlist=["_reconstruct"])._reconstruct)
        except (ImportError, AttributeError):
            continue
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location=map_location, weights_only=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint without executing code from it; unreadable or unsafe files raise
    :class:`CheckpointError` naming the file. ``mmap``: map the tensors instead of reading them (for a look at
    the counters: a paper-sized model's optimiser state is not read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; was the run started with `flowood train --out ...`?")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        legacy = None
        try:
            legacy = _load_legacy(path, map_location)
        except Exception:
            legacy = None
        if legacy is not None:
            return legacy
        what = "; ".join(sorted(_unsafe_globals(path) or ())) or str(err).splitlines()[-1][:200]
        raise CheckpointError(
            f"checkpoint {path} holds Python objects other than tensors and numbers ({what}); flowood refuses "
            "to unpickle them (that could run code). It was not written by flowood: delete it, or resume from "
            "a copy you trust"
        ) from None
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
            "delete it to restart, or resume from a copy"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not a flowood training state; delete it or resume from a copy")
    return state


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write model weights as safetensors (contiguous CPU copies)."""
    from safetensors.torch import save_file  # imported where used, like yaml in flowood.train.config

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


@contextmanager
def write_errors(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` (disk full, read-only, permissions) raised while writing ``path`` into a
    one-line :class:`RunWriteError` naming it."""
    try:
        yield
    except OSError as err:
        raise RunWriteError(f"cannot write {path}: {describe_write_error(err)}") from None
