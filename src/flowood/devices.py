"""Choosing the torch device from a user's ``--device`` / ``device:`` value (one rule for every command)."""

from __future__ import annotations

import torch

from flowood.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` … as given.

    Raises:
        ConfigError: an unknown device name, or CUDA asked for on a machine without it.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!s} requested but CUDA is not available; use --device cpu")
    return dev
