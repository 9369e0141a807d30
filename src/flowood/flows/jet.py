"""Jet (Kolesnikov et al., "Jet: A Modern Transformer-Based Normalizing Flow", TMLR 2025; big_vision
``proj/jet``).

The image is cut into ``p × p`` patches, each a token of ``D = p²·C`` features (``T = HW/p²`` tokens), and
``num_couplings`` affine coupling layers follow on one scale (no multi-scale, no squeeze, no 1×1 convolution).
Coupling ``k`` (:class:`JetCoupling`) permutes the ``D`` features of every token by its own fixed random
permutation and splits them into ``x₁`` (the first ``⌊D/2⌋``) and ``x₂``; a ViT conditioner reads ``x₁`` of
all tokens (non-causal self-attention) and predicts a shift ``b`` and a raw scale ``r`` for each entry of
``x₂``:

    y₂ = (x₂ + b) · s,   s = scale_factor · sigmoid(r),   log |det| = Σ log s = Σ (log σ(r) + log scale_factor),

``y₁ = x₁``, and the features are permuted back. With ``spatial_every = n > 0`` every ``n``-th coupling splits
*tokens* instead of features (the paper's ImageNet configuration uses ``n = 5``): half the tokens condition the
other half, by a checkerboard, then column-stripe, then row-stripe pattern over the token grid, each followed by
its complement (``checkerboard``, ``checkerboard-inv``, ``vstripes``, ``vstripes-inv``, ``hstripes``,
``hstripes-inv`` in turn).

**As in the paper:** patchify; a fixed random feature permutation per channel coupling (not learned: the
paper freezes it); the bounded scale ``2·sigmoid(r)``; the conditioner is a linear input projection, a learned
positional embedding (N(0, 1/width)), ``num_layers`` pre-LayerNorm ViT blocks (Xavier-uniform linear layers,
GELU MLP ``mlp_ratio`` = 4 times wider), a final LayerNorm and a zero-initialised output projection, so every
coupling starts as the identity. **Differences:** a spatial coupling's conditioner reads the ``T/2``
conditioning tokens whole (the paper reshapes them into ``T`` half-tokens so that one scanned layer serves both
kinds); the permutations are drawn from a generator seeded by the coupling's index, so they are a function of
the configuration (the paper draws them from the model's init key); no activation recomputation (the paper
rematerialises each coupling). Likelihoods: the paper, like flowood, uniformly dequantises 8-bit images and
reports the discrete likelihood; its inputs are on the [−1, 1] scale, flowood's are logits
(:func:`flowood.flows.flow.image_preprocess`), the change of variables accounts for either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowood.flows.base import InvertibleModule, float32_region, full_precision
from flowood.flows.reshape import image_shape
from flowood.flows.transformer import TokenFlow, TransformerLayer, check_heads, token_grid
from flowood.settings import check, setting

SPATIAL_PATTERNS = ("checkerboard", "checkerboard-inv", "vstripes", "vstripes-inv", "hstripes", "hstripes-inv")
"""Token splits of spatial couplings, used in turn (the paper's ImageNet configuration)."""

_PERMUTATION_SEED = 0x9E7  # base seed of the channel permutations; coupling k uses _PERMUTATION_SEED + k


@dataclass(frozen=True)
class JetOptions:
    """Jet's options. Defaults: the paper's 32-coupling ImageNet 64×64 model (patch 4, 2 ViT layers of width 512
    with 8 heads per coupling) with channel couplings only (the paper's configuration adds a spatial coupling
    every 5th: ``spatial_every=5``)."""

    patch_size: int = setting(4, ge=1, doc="side p of the square patches; a token holds p*p*C values")
    num_couplings: int = setting(32, ge=1, doc="affine coupling layers")
    num_layers: int = setting(2, ge=1, doc="ViT layers in each coupling's conditioner")
    width: int = setting(512, ge=1, doc="ViT width")
    heads: int = setting(8, ge=1, doc="attention heads; width must be divisible by it")
    mlp_ratio: int = setting(4, ge=1, doc="MLP hidden width over the ViT width")
    scale_factor: float = setting(2.0, gt=0.0, doc="largest scale: s = scale_factor * sigmoid(r)")
    spatial_every: int = setting(0, ge=0, doc="every n-th coupling splits tokens, not features (0: never)")

    def __post_init__(self) -> None:
        check(self)
        check_heads(self.width, self.heads)


class ViTConditioner(nn.Module):
    """``(B, T, d_in) -> (shift, raw scale)``, each ``(B, T, d_out)``: Jet's ViT conditioner.

    Args:
        num_tokens: ``T`` (for the positional embedding).
        d_in, d_out: features read and predicted per token.
        width, num_layers, heads, mlp_ratio: the ViT.
    """

    def __init__(
        self, num_tokens: int, d_in: int, d_out: int, *, width: int, num_layers: int, heads: int, mlp_ratio: int
    ) -> None:
        super().__init__()
        self.proj_in = nn.Linear(d_in, width)
        self.pos = nn.Parameter(torch.randn(num_tokens, width) / math.sqrt(width))
        self.layers = nn.ModuleList(TransformerLayer(width, heads, mlp_ratio) for _ in range(num_layers))
        for layer in self.layers:
            for m in layer.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        self.norm = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, 2 * d_out)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.proj_in(x) + self.pos
        for layer in self.layers:
            h = layer(h)
        shift, raw_scale = self.proj_out(self.norm(h)).chunk(2, dim=-1)
        return shift, raw_scale


def spatial_split(rows: int, cols: int, pattern: str) -> tuple[Tensor, Tensor]:
    """``(conditioning, changed)`` token indices (``T/2`` each, ascending) of a spatial coupling's ``pattern``
    on a ``rows × cols`` token grid in raster order; ``-inv`` swaps the halves."""
    # On the CPU explicitly: nonzero() needs real values even when the flow is built on the meta device.
    r = torch.arange(rows, device="cpu").unsqueeze(1).expand(rows, cols)
    c = torch.arange(cols, device="cpu").unsqueeze(0).expand(rows, cols)
    kind = pattern.removesuffix("-inv")
    parity = {"checkerboard": r + c, "vstripes": c, "hstripes": r}[kind].flatten() % 2
    first, second = (parity == 0).nonzero().flatten(), (parity == 1).nonzero().flatten()
    return (second, first) if pattern.endswith("-inv") else (first, second)


class JetCoupling(InvertibleModule):
    """One Jet coupling on ``(B, T, D)`` tokens (see the module docstring).

    Args:
        num_tokens, token_dim: ``T`` and ``D``.
        index: the coupling's position in the stack (seeds its permutation).
        grid: ``(rows, cols)`` of the token grid (spatial couplings).
        spatial: a spatial pattern of :data:`SPATIAL_PATTERNS`, or ``None`` for a channel coupling.
        scale_factor: ``s = scale_factor · sigmoid(r)``.
        width, num_layers, heads, mlp_ratio: the conditioner.
    """

    cond_index: Tensor
    change_index: Tensor
    backprop = "invert"  # one-pass exact inverse: recomputed from its output (flowood.flows.invert)

    def __init__(
        self,
        num_tokens: int,
        token_dim: int,
        *,
        index: int,
        grid: tuple[int, int],
        spatial: str | None,
        scale_factor: float,
        width: int,
        num_layers: int,
        heads: int,
        mlp_ratio: int,
    ) -> None:
        super().__init__()
        self.spatial = spatial
        self.log_scale_factor = math.log(scale_factor)
        self.scale_factor = scale_factor
        if spatial is None:
            # A permutation's first half conditions, its second half changes (explicitly on the CPU: a flow built
            # on the meta device for counting parameters still gets real indices).
            gen = torch.Generator().manual_seed(_PERMUTATION_SEED + index)
            perm = torch.randperm(token_dim, generator=gen, device="cpu")
            cond, change = perm[: token_dim // 2].sort().values, perm[token_dim // 2 :].sort().values
            tokens_in, d_in, d_out = num_tokens, len(cond), len(change)
        else:
            cond, change = spatial_split(*grid, spatial)
            tokens_in, d_in, d_out = len(cond), token_dim, token_dim
        # Indices are non-persistent buffers: they follow .to(device) but are no state (they are a function of
        # the configuration), and EMA / DDP never average or broadcast integers.
        self.register_buffer("cond_index", cond, persistent=False)
        self.register_buffer("change_index", change, persistent=False)
        self.net = ViTConditioner(
            tokens_in, d_in, d_out, width=width, num_layers=num_layers, heads=heads, mlp_ratio=mlp_ratio
        )

    @property
    def _dim(self) -> int:
        return 1 if self.spatial is not None else 2

    def _scale_shift(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(log s, s, b)`` in fp32 for the changed half of ``x``, from its conditioning half."""
        shift, raw = self.net(x.index_select(self._dim, self.cond_index))
        with float32_region(x):
            log_s = F.logsigmoid(full_precision(raw)) + self.log_scale_factor
            return log_s, torch.exp(log_s), full_precision(shift)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_s, s, b = self._scale_shift(x)
        with float32_region(x):
            xf = full_precision(x)
            y2 = (xf.index_select(self._dim, self.change_index) + b) * s
            return xf.index_copy(self._dim, self.change_index, y2), log_s.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        _, s, b = self._scale_shift(y)
        with float32_region(y):
            yf = full_precision(y)
            x2 = yf.index_select(self._dim, self.change_index) / s - b
            return yf.index_copy(self._dim, self.change_index, x2)


def build_jet(
    input_shape: Sequence[int], options: JetOptions, coupling: None = None
) -> tuple[InvertibleModule, list[int]]:
    """Jet on images of ``input_shape = (C, H, W)``: patchify, ``options.num_couplings`` :class:`JetCoupling` s,
    one scale (``latent_keeps = []``).

    Raises:
        ValueError: ``H`` or ``W`` not divisible by ``options.patch_size``; fewer than 2 features per token (no
            channel split); an odd token count with spatial couplings.
    """
    shape = image_shape(input_shape, "jet")
    rows, cols, dim = token_grid(shape, options.patch_size, "jet")
    if dim < 2:
        raise ValueError(f"jet needs at least 2 values per token to split, got patch_size={options.patch_size}, C=1")
    every = options.spatial_every
    if every and (rows * cols) % 2:
        raise ValueError(f"jet with spatial_every={every} needs an even token count, got {rows}x{cols} tokens")
    couplings = []
    for k in range(options.num_couplings):
        spatial = SPATIAL_PATTERNS[(k // every) % len(SPATIAL_PATTERNS)] if every and (k + 1) % every == 0 else None
        couplings.append(
            JetCoupling(
                rows * cols,
                dim,
                index=k,
                grid=(rows, cols),
                spatial=spatial,
                scale_factor=options.scale_factor,
                width=options.width,
                num_layers=options.num_layers,
                heads=options.heads,
                mlp_ratio=options.mlp_ratio,
            )
        )
    return TokenFlow(shape, options.patch_size, couplings), []
