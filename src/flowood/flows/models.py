"""Deprecated alias of :mod:`flowood.flows.architectures` (renamed in 0.2; this path goes in the next release)."""

import warnings

from flowood.flows.architectures import FlowSpec, available_flows, build_flow, flow_options

warnings.warn(
    "flowood.flows.models was renamed to flowood.flows.architectures; the old path will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["FlowSpec", "available_flows", "build_flow", "flow_options"]
