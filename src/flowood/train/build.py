"""The flow a run config describes: shared by training and by loading a finished run (which must not pull
in the training loop)."""

from __future__ import annotations

from flowood.errors import ConfigError, FieldError
from flowood.flows import NormalizingFlow, build_flow
from flowood.train.config import RunConfig


def build_run_flow(cfg: RunConfig, input_shape: tuple[int, ...]) -> NormalizingFlow:
    """The configured flow for data of ``input_shape`` (e.g. ``(1, 28, 28)`` or ``(D,)``), with config
    errors as :class:`ConfigError`; a bad option value names its key (``model.hidden_dim must be >= 1, got 0``)."""
    try:
        return build_flow(cfg.model.name, input_shape, **cfg.model.options)
    except FieldError as err:
        raise ConfigError(err.template.format(name=f"model.{err.field}")) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model: {err}") from None
