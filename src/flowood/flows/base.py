"""Base classes for invertible transforms.

Every transform maps ``x -> (y, logdet)`` in :meth:`InvertibleModule.forward`, where ``logdet``
has shape ``(B,)`` and holds ``log |det dy/dx|`` per sample (nats), and maps back with
:meth:`InvertibleModule.inverse`. No log-determinant is kept as module state: it flows through
return values only, so transforms compose, compile and parallelise without hidden coupling.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from typing import ClassVar, cast

import torch
from torch import Tensor, nn


class InvertibleModule(nn.Module):
    """A bijection with a tractable log-determinant.

    Subclasses implement ``forward(x) -> (y, logdet)`` and ``inverse(y) -> x``.

    ``backprop`` says how training with ``train.memory: invert`` (:mod:`flowood.flows.invert`) treats the module:
    ``"invert"`` when ``inverse`` is one pass and exact up to rounding, so the backward pass may rebuild the input
    from the output and recompute the forward; ``"free"`` for permutations autograd saves nothing for; ``"store"``
    (the default, so a new module is safe until it declares otherwise) keeps its activations.
    """

    backprop: ClassVar[str] = "store"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


_LOW_PRECISION = (torch.float16, torch.bfloat16)
_AUTOCAST_DEVICES = ("cpu", "cuda")


def full_precision(x: Tensor) -> Tensor:
    """``x`` upcast to float32 if it is fp16/bf16 (float32 and float64 pass unchanged)."""
    return x.float() if x.dtype in _LOW_PRECISION else x


def float32_region(x: Tensor) -> contextlib.AbstractContextManager:
    """A context with autocast switched off on ``x``'s device type.

    Used around every log-determinant, base-density and flow-state computation so that under a
    bf16/fp16 autocast only the st-networks run in low precision: the transform applied to the flow's
    state and its log-determinant are computed in (at least) fp32, which keeps the change of variables
    exact for whatever ``s``/``t`` the st-network produced.
    """
    if x.device.type in _AUTOCAST_DEVICES:
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def zero_logdet(x: Tensor) -> Tensor:
    """A ``(B,)`` tensor of zeros on ``x``'s device, in ``x``'s dtype but at least float32."""
    return x.new_zeros(x.shape[0], dtype=torch.promote_types(x.dtype, torch.float32))


class FlowSequential(InvertibleModule):
    """Composition of invertible modules; log-determinants add up.

    Args:
        modules: transforms applied in order by :meth:`forward`, in reverse by :meth:`inverse`.
    """

    def __init__(self, *modules: InvertibleModule) -> None:
        super().__init__()
        for module in modules:
            if not isinstance(module, InvertibleModule):
                raise TypeError(f"FlowSequential takes InvertibleModule instances, got {type(module).__name__}")
        self.layers = nn.ModuleList(modules)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = zero_logdet(x)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = cast(InvertibleModule, layer).inverse(y)
        return y

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> nn.Module:
        return self.layers[index]

    def append(self, module: InvertibleModule) -> None:
        self.layers.append(module)

    def extend(self, modules: Iterable[InvertibleModule]) -> None:
        for module in modules:
            self.append(module)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Log-density of a standard normal, summed over all but the batch dimension.

    Args:
        z: latent of shape ``(B, *event_shape)``.

    Returns:
        ``(B,)`` log-density in nats.
    """
    with float32_region(z):
        flat = full_precision(z).reshape(z.shape[0], -1)
        return -0.5 * (flat.pow(2).sum(dim=1) + flat.shape[1] * math.log(2 * math.pi))
