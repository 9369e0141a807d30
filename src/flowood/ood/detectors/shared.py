"""The flow pass shared by every statistic-based detector of one evaluation (computed once per set)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from flowood.flows import NormalizingFlow
from flowood.ood.detectors.base import FitContext, Samples
from flowood.ood.detectors.flowstats import FlowStatistics, flow_statistics


@dataclass
class FlowPass:
    """``FlowPass(samples)`` → :class:`FlowStatistics` of the run's flow, cached on the samples."""

    flow: NormalizingFlow
    batch_size: int
    transform: Callable[[Tensor], Tensor] | None

    @classmethod
    def of(cls, context: FitContext) -> FlowPass:
        return cls(context.flow, context.batch_size, getattr(context, "input_transform", None))

    def __call__(self, samples: Samples) -> FlowStatistics:
        key = f"flow_stats/{id(self.flow)}"
        if key not in samples.cache:
            samples.cache[key] = flow_statistics(
                self.flow,
                samples.data,
                kind=samples.kind,
                seed=samples.noise_seed,
                batch_size=self.batch_size,
                transform=self.transform,
            )
        return samples.cache[key]
