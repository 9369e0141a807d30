"""ActNorm: per-channel affine normalisation with data-dependent initialisation (Glow)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from flowood.flows.base import InvertibleModule, float32_region, full_precision


class ActNorm(InvertibleModule):
    """``y = (x + bias) · exp(log_scale)`` per channel.

    On the first forward pass in training mode the parameters are set so that the batch has zero
    mean and unit variance per channel (Kingma & Dhariwal 2018). The "initialised" flag is a buffer
    so it survives checkpoints; a Python mirror avoids a device→host sync on every call.

    Args:
        num_channels: channels ``C`` of inputs shaped ``(B, C, *spatial)``.
        scale: target standard deviation after initialisation.
    """

    initialized: Tensor
    backprop = "invert"  # one-pass exact inverse: recomputed from its output (flowood.flows.invert)

    def __init__(self, num_channels: int, scale: float = 1.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.scale = scale
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.log_scale = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("initialized", torch.tensor(False))
        self._initialized = False

    def _view(self, p: Tensor, x: Tensor) -> Tensor:
        return p.view(1, -1, *([1] * (x.dim() - 2)))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dim=dims)
        std = x.std(dim=dims, unbiased=False)
        self.bias.copy_(-mean)
        self.log_scale.copy_(torch.log(self.scale / (std + self.eps)))
        self.initialized.fill_(True)
        self._initialized = True

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        key = prefix + "initialized"
        if key in state_dict:
            self._initialized = bool(state_dict[key])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with float32_region(x):
            x = full_precision(x)
            if self.training and not self._initialized:
                self._initialize(x)
            y = (x + self._view(self.bias, x)) * self._view(self.log_scale, x).exp()
            spatial = x[0, 0].numel()
            logdet = (self.log_scale.sum() * spatial).expand(x.shape[0])
            return y, logdet

    def inverse(self, y: Tensor) -> Tensor:
        with float32_region(y):
            y = full_precision(y)
            return y * self._view(-self.log_scale, y).exp() - self._view(self.bias, y)
