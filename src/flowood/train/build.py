"""The flow a run config describes: shared by training and by loading a finished run (which must not pull
in the training loop)."""

from __future__ import annotations

from flowood.errors import ConfigError
from flowood.flows import NormalizingFlow, build_flow
from flowood.train.config import RunConfig


def build_run_flow(cfg: RunConfig, input_shape: tuple[int, ...]) -> NormalizingFlow:
    """The configured flow for data of ``input_shape`` (e.g. ``(1, 28, 28)`` or ``(D,)``), with config
    errors as :class:`ConfigError`."""
    try:
        return build_flow(cfg.model.name, input_shape, **cfg.model.options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model: {err}") from None
