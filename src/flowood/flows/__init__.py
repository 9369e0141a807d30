"""Invertible transforms and named flow architectures."""

from flowood.flows.architectures import available_flows, build_flow, flow_options
from flowood.flows.autoregressive import MADE, MaskedAutoregressiveTransform, MaskedLinear
from flowood.flows.base import FlowSequential, InvertibleModule, standard_normal_log_prob
from flowood.flows.coupling import AffineCoupling, CouplingInternals
from flowood.flows.flow import NormalizingFlow, image_preprocess
from flowood.flows.invconv import InvConv1x1, InvConv1x1LU
from flowood.flows.jet import JetCoupling, JetOptions
from flowood.flows.masks import MASK_TYPES, build_mask
from flowood.flows.multiscale import FactorOut, split_latent_scales
from flowood.flows.normalization import ActNorm
from flowood.flows.options import CouplingOptions
from flowood.flows.preprocess import Dequantize, LogitTransform, bits_per_dim
from flowood.flows.reshape import Squeeze, Unsqueeze, squeeze2d, unsqueeze2d
from flowood.flows.splines import SplineCoupling, rational_quadratic_spline
from flowood.flows.stnets import ST_NETS, build_st_net
from flowood.flows.tarflow import TarFlowBlock, TarFlowOptions
from flowood.flows.transformer import TokenFlow, TransformerLayer

__all__ = [
    "MADE",
    "MASK_TYPES",
    "ST_NETS",
    "ActNorm",
    "AffineCoupling",
    "CouplingInternals",
    "CouplingOptions",
    "Dequantize",
    "FactorOut",
    "FlowSequential",
    "InvConv1x1",
    "InvConv1x1LU",
    "InvertibleModule",
    "JetCoupling",
    "JetOptions",
    "LogitTransform",
    "MaskedAutoregressiveTransform",
    "MaskedLinear",
    "NormalizingFlow",
    "SplineCoupling",
    "Squeeze",
    "TarFlowBlock",
    "TarFlowOptions",
    "TokenFlow",
    "TransformerLayer",
    "Unsqueeze",
    "available_flows",
    "bits_per_dim",
    "build_flow",
    "build_mask",
    "build_st_net",
    "flow_options",
    "image_preprocess",
    "rational_quadratic_spline",
    "split_latent_scales",
    "squeeze2d",
    "standard_normal_log_prob",
    "unsqueeze2d",
]
