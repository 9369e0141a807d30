"""Scale-and-translation networks ("st-networks") of coupling layers.

Each network maps the conditioning input of shape ``(B, C_in, H, W)`` (or ``(B, D)`` for ``mlp``) to
raw outputs ``(B, C_out, H, W)`` that the coupling splits into ``s`` and ``t``.

* ``resnet``: the RealNVP ResNet (weight-normalised convolutions, optional batch norm, skip sums);
* ``convnet``: a plain stack of weight-normalised 3×3 convolutions;
* ``highway``: the gated ("highway") convolution stack the original Glow configuration uses;
* ``bottleneck``: a ResNet whose features pass through a dense layer of ``bottleneck_dim`` units halfway,
  with no skip path around it (the paper's "st-network with a bottleneck", Section 6);
* ``mlp``: a fully connected network for vectors.

The last layer is zero-initialised by default (``init_zeros``) so every coupling starts as the
identity, which keeps the first steps of training stable. The original code starts RealNVP st-nets from
random weights (``init_zeros=False``, what its README commands ran; the paper presets do the same); its
Glow highway st-net's output convolution is zero whatever ``init_zeros`` says, as flowood's highway's with
the default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

ST_NETS = ("resnet", "convnet", "highway", "bottleneck", "mlp")


def wn_conv2d(in_ch: int, out_ch: int, kernel_size: int, bias: bool = True, zero: bool = False) -> nn.Module:
    """A weight-normalised convolution with "same" padding; ``zero`` starts it at output 0."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias)
    conv = weight_norm(conv)
    if zero:
        with torch.no_grad():
            conv.parametrizations.weight.original0.zero_()
            if conv.bias is not None:
                conv.bias.zero_()
    return conv


def _zero(param: Tensor | None) -> None:
    if param is not None:
        nn.init.zeros_(param)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, use_batch_norm: bool) -> None:
        super().__init__()
        self.in_norm = nn.BatchNorm2d(channels) if use_batch_norm else nn.Identity()
        self.in_conv = wn_conv2d(channels, channels, 3, bias=False)
        self.out_norm = nn.BatchNorm2d(channels) if use_batch_norm else nn.Identity()
        self.out_conv = wn_conv2d(channels, channels, 3, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        h = self.in_conv(F.relu(self.in_norm(x)))
        h = self.out_conv(F.relu(self.out_norm(h)))
        return x + h


class ResNetST(nn.Module):
    """RealNVP st-network (Dinh et al. 2017, as in the original OOD code).

    Input is batch-normalised, optionally doubled (checkerboard inputs are half zeros), concatenated with
    its negation and passed through ``num_blocks`` residual blocks whose outputs are summed through 1×1
    "skip" convolutions. With ``bottleneck_dim`` set, the skip path is dropped and the features after
    ``num_blocks // 2`` blocks are squeezed through a dense layer of that width.

    Against the original (``ResNetAE``, ``st_type=resnet_ae``): the same function for ``num_blocks >= 2``.
    With ``num_blocks = 1`` the original never applies its bottleneck (it tests ``i == num_blocks // 2 - 1``,
    i.e. ``i == -1``): its dense layers are dead weights and its st-net is a skip-less ResNet; flowood applies
    the bottleneck after the single block (and with no blocks, right after the input convolution).
    ``flowood convert`` refuses such checkpoints rather than compute another function.
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        num_blocks: int,
        *,
        double_after_norm: bool = False,
        use_batch_norm: bool = True,
        init_zeros: bool = True,
        bottleneck_dim: int | None = None,
        spatial_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.double_after_norm = double_after_norm
        self.in_norm = nn.BatchNorm2d(in_channels) if use_batch_norm else nn.Identity()
        self.in_conv = wn_conv2d(2 * in_channels, mid_channels, 3)
        self.blocks = nn.ModuleList(_ResidualBlock(mid_channels, use_batch_norm) for _ in range(num_blocks))
        self.bottleneck: nn.Module | None = None
        self.use_skips = bottleneck_dim is None
        if bottleneck_dim is not None:
            if spatial_shape is None:
                raise ValueError("a bottleneck st-network needs the spatial shape (H, W) of its input")
            h, w = spatial_shape
            features = mid_channels * h * w
            self.bottleneck_at = max(num_blocks // 2 - 1, 0)
            self.feature_shape = (mid_channels, h, w)
            self.bottleneck = nn.Sequential(nn.Linear(features, bottleneck_dim), nn.Linear(bottleneck_dim, features))
        else:
            self.in_skip = wn_conv2d(mid_channels, mid_channels, 1)
            self.skips = nn.ModuleList(wn_conv2d(mid_channels, mid_channels, 1) for _ in range(num_blocks))
        self.out_norm = nn.BatchNorm2d(mid_channels) if use_batch_norm else nn.Identity()
        self.out_conv = wn_conv2d(mid_channels, out_channels, 1, zero=init_zeros)

    def forward(self, x: Tensor) -> Tensor:
        x = self.in_norm(x)
        if self.double_after_norm:
            x = 2.0 * x
        x = F.relu(torch.cat((x, -x), dim=1))
        x = self.in_conv(x)
        if self.use_skips:
            acc = self.in_skip(x)
            for block, skip in zip(self.blocks, self.skips, strict=False):
                x = block(x)
                acc = acc + skip(x)
            x = acc
        else:
            assert self.bottleneck is not None
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i == self.bottleneck_at:
                    x = self.bottleneck(x.flatten(1)).view(-1, *self.feature_shape)
            if len(self.blocks) == 0:
                x = self.bottleneck(x.flatten(1)).view(-1, *self.feature_shape)
        return self.out_conv(F.relu(self.out_norm(x)))


class ConvNetST(nn.Module):
    """Plain stack: 3×3 conv → ReLU, ``num_blocks`` × (3×3 conv → ReLU), 3×3 output conv."""

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, num_blocks: int, *, init_zeros: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [wn_conv2d(in_channels, mid_channels, 3), nn.ReLU()]
        for _ in range(num_blocks):
            layers += [wn_conv2d(mid_channels, mid_channels, 3), nn.ReLU()]
        layers.append(wn_conv2d(mid_channels, out_channels, 3, zero=init_zeros))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _HighwayLayer(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_h = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_t = nn.Conv2d(channels, channels, 3, padding=1)
        for conv in (self.conv_h, self.conv_t):
            nn.init.normal_(conv.weight, std=0.05)
            _zero(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.conv_t(x))
        return self.conv_h(x) * gate + x * (1.0 - gate)


class HighwayST(nn.Module):
    """Gated convolution stack (the original code's Glow st-network): 3×3 in, ``num_blocks``
    highway layers, zero-initialised 1×1 out."""

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, num_blocks: int, *, init_zeros: bool = True
    ) -> None:
        super().__init__()
        self.in_conv = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        nn.init.normal_(self.in_conv.weight, std=0.05)
        _zero(self.in_conv.bias)
        self.layers = nn.Sequential(*(_HighwayLayer(mid_channels) for _ in range(num_blocks)))
        self.out_conv = nn.Conv2d(mid_channels, out_channels, 1)
        if init_zeros:
            nn.init.zeros_(self.out_conv.weight)
            _zero(self.out_conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_conv(self.layers(self.in_conv(x)))


class MLPST(nn.Module):
    """Fully connected st-network for vectors: ``D → hidden`` then ``num_layers`` hidden layers, ReLU."""

    def __init__(
        self,
        in_features: int,
        hidden_dim: int,
        out_features: int,
        num_layers: int,
        *,
        init_zeros: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, hidden_dim), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        for _ in range(num_layers):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
        out = nn.Linear(hidden_dim, out_features)
        if init_zeros:
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
        layers.append(out)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def build_st_net(
    kind: str,
    in_channels: int,
    out_channels: int,
    *,
    mid_channels: int,
    num_blocks: int,
    spatial_shape: Sequence[int] | None = None,
    double_after_norm: bool = False,
    use_batch_norm: bool = True,
    bottleneck_dim: int | None = None,
    init_zeros: bool = True,
    dropout: float = 0.0,
) -> nn.Module:
    """Build an st-network by name (see module docstring); ``mid_channels`` is the hidden width."""
    if kind in ("resnet", "bottleneck"):
        bottleneck = kind == "bottleneck"
        if bottleneck and (bottleneck_dim is None or bottleneck_dim < 1):
            raise ValueError("st_net='bottleneck' needs a positive bottleneck_dim (the paper uses e.g. 50 or 100)")
        return ResNetST(
            in_channels,
            mid_channels,
            out_channels,
            num_blocks,
            double_after_norm=double_after_norm,
            use_batch_norm=use_batch_norm,
            init_zeros=init_zeros,
            bottleneck_dim=bottleneck_dim if bottleneck else None,
            spatial_shape=spatial_shape if bottleneck else None,
        )
    if kind == "convnet":
        return ConvNetST(in_channels, mid_channels, out_channels, num_blocks, init_zeros=init_zeros)
    if kind == "highway":
        return HighwayST(in_channels, mid_channels, out_channels, num_blocks, init_zeros=init_zeros)
    if kind == "mlp":
        return MLPST(in_channels, mid_channels, out_channels, num_blocks, init_zeros=init_zeros, dropout=dropout)
    raise ValueError(f"unknown st_net {kind!r}; choose from {', '.join(ST_NETS)}")
