"""The flow a run config describes: shared by training and by loading a finished run (which must not pull
in the training loop)."""

from __future__ import annotations

import os

import torch

from flowood.errors import ConfigError, FieldError
from flowood.flows import NormalizingFlow, build_flow
from flowood.train.config import RunConfig


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (``None`` where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _size_settings(cfg: RunConfig) -> str:
    """The model's integer settings, which decide its size (``model.mid_channels=64, model.num_blocks=8``)."""
    ints = {k: v for k, v in cfg.model.options.items() if isinstance(v, int) and not isinstance(v, bool)}
    return ", ".join(f"model.{k}={v}" for k, v in sorted(ints.items(), key=lambda kv: -kv[1]))


def _too_large(cfg: RunConfig, need: int | None, memory: int | None) -> ConfigError:
    needs = f"needs {need / 2**30:,.0f} GiB for its parameters alone" if need else "cannot be allocated"
    has = f" ({memory / 2**30:,.0f} GiB here)" if memory else ""
    return ConfigError(
        f"model: {cfg.model.name} with {_size_settings(cfg)} {needs}, more than this machine's memory{has}; "
        "choose smaller values of those settings"
    )


def _check_fits(cfg: RunConfig, input_shape: tuple[int, ...]) -> None:
    """Refuse a model whose parameters alone exceed the machine's memory, before allocating it: built on the
    ``meta`` device (shapes only, no memory), so ``--set model.mid_channels=100000`` is one line naming the
    setting, not an allocator traceback or a machine swapping for minutes."""
    memory = physical_memory()
    if memory is None:
        return
    try:
        with torch.device("meta"):
            shapes = build_flow(cfg.model.name, input_shape, **cfg.model.options)
    except Exception:
        return  # a bad option, or a module that cannot be built on "meta": the real build below decides
    need = sum(t.numel() * t.element_size() for t in [*shapes.parameters(), *shapes.buffers()])
    if need > memory:
        raise _too_large(cfg, need, memory)


def build_run_flow(cfg: RunConfig, input_shape: tuple[int, ...]) -> NormalizingFlow:
    """The configured flow for data of ``input_shape`` (e.g. ``(1, 28, 28)`` or ``(D,)``), with config
    errors (an unknown option, a model larger than the machine's memory) as :class:`ConfigError`; a bad option
    value names its key (``model.hidden_dim must be >= 1, got 0``)."""
    _check_fits(cfg, input_shape)
    try:
        return build_flow(cfg.model.name, input_shape, **cfg.model.options)
    except FieldError as err:
        raise ConfigError(err.template.format(name=f"model.{err.field}")) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model: {err}") from None
    except (RuntimeError, MemoryError) as err:
        if isinstance(err, MemoryError) or "allocate" in str(err) or "out of memory" in str(err):
            raise _too_large(cfg, None, physical_memory()) from None
        raise
