"""flowood: normalizing flows and likelihood-based out-of-distribution detection."""

from flowood.flows import NormalizingFlow, available_flows, build_flow, flow_options

__version__ = "0.1.0"

__all__ = ["NormalizingFlow", "__version__", "available_flows", "build_flow", "flow_options"]
