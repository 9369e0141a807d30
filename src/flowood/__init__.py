"""flowood: normalizing flows and likelihood-based out-of-distribution detection.

The package root is the public API: the flows (imported eagerly: ``flowood.build_flow``) and a trained run
(``flowood.load_run``, imported on first use, so ``import flowood`` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowood.flows import NormalizingFlow, available_flows, build_flow, flow_options
from flowood.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports them on first use
    from flowood.experiments.runs import Run, load_run

_LAZY = ("Run", "load_run")


def __getattr__(name: str) -> Any:
    """``flowood.load_run`` / ``flowood.Run``: a trained run loaded from its directory (flowood.experiments.runs),
    imported when first asked for."""
    if name in _LAZY:
        from flowood.experiments import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'flowood' has no attribute {name!r}")


__all__ = ["NormalizingFlow", "Run", "__version__", "available_flows", "build_flow", "flow_options", "load_run"]
