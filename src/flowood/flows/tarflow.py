"""TarFlow (Zhai et al., "Normalizing Flows are Capable Generative Models", ICML 2025; apple/ml-tarflow).

The image is cut into ``p × p`` patches, each a token of ``D = p²·C`` features, ``T = HW/p²`` tokens in raster
order. ``num_blocks`` blocks follow, each a masked autoregressive flow over the tokens (:class:`TarFlowBlock`):
a causal Transformer reads tokens ``x_1 … x_{t-1}`` and predicts the shift ``μ_t`` and log-scale ``α_t`` of
token ``t`` (``D`` numbers each), and the block maps

    z_t = (x_t − μ_t) · exp(−α_t),        log |det ∂z/∂x| = −Σ_t Σ_d α_{t,d}.

The first token has nothing before it and passes unchanged (``μ_1 = α_1 = 0``, as in the paper). The Jacobian
of a block is block-triangular in token order with diagonal blocks ``diag(exp(−α_t))``, so the log-det above is
exact. Every other block reads the tokens in reversed order (the paper's identity / flip permutations), so each
token is conditioned on the tokens on both sides of it across the stack.

The inverse decodes token by token: ``x_1 = z_1``, then ``x_t = z_t · exp(α_t) + μ_t`` once ``x_{<t}`` is known,
``T − 1`` steps per block, each one token through the Transformer against a key/value cache
(:class:`~flowood.flows.transformer.KVCache`), so a block's inverse costs about one forward pass.

**As in the paper:** patchify; per block a linear input projection, a learned positional embedding (drawn
from N(0, 0.01²)), pre-LayerNorm Transformer layers (attention with ``width / heads`` channels per head, a
GELU MLP ``mlp_ratio`` = 4 times wider), no final LayerNorm, a linear output projection to ``(α, μ)``
whose weight starts at zero; the unbounded log-scale ``α`` (no ``tanh``); token order flipped every other
block. **Differences:** the output projection's bias starts at zero too (the paper's keeps PyTorch's default
uniform init), so every block starts as the exact identity; the positional embedding is indexed in the
block's reading order (the paper permutes it with the tokens; the same family of functions); heads are an
option (the paper fixes 64 channels per head); no class conditioning, no guidance, no learned prior variance
(the paper's non-``nvp`` variant).

**Noise and likelihoods.** TarFlow's generation runs train on images with *Gaussian* noise of standard
deviation σ = 0.05–0.15 (on the [−1, 1] scale) under bf16 autocast, and denoise samples afterwards with one
gradient step on the model's own log-likelihood (score-based "self-denoising"); the likelihood of such a model
is the density of the *noised* images, a continuous density that is not a probability of the 8-bit images and
not comparable across noise levels. Its bits/dim runs instead use uniform dequantisation, ``(x_int + u) / 256``,
and fp32. flowood always does the latter, with every flow: each 8-bit image is uniformly dequantised and
logit-transformed (:func:`flowood.flows.flow.image_preprocess`, with the transform's log-det and the
``−D·log 256`` term), so ``log_likelihood_8bit`` and ``bits_per_dim`` of a TarFlow are the same exact
discrete 8-bit likelihood (a lower bound in expectation over the noise) as RealNVP's or Glow's, and OOD scores
compare the same quantity across architectures. flowood does not add Gaussian noise and does not denoise: the
noise would change the quantity being scored, and the denoising step only sharpens samples. (The paper's
inputs are on the [−1, 1] scale, flowood's are logits; the change of variables accounts for either.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flowood.flows.base import InvertibleModule, float32_region, full_precision
from flowood.flows.reshape import image_shape
from flowood.flows.transformer import KVCache, TokenFlow, TransformerLayer, check_heads, token_grid
from flowood.settings import check, setting


@dataclass(frozen=True)
class TarFlowOptions:
    """TarFlow's options. Defaults: the paper's ImageNet 64×64 likelihood configuration (patch 2, 8 blocks of
    8 layers, width 768, 12 heads of 64 channels)."""

    patch_size: int = setting(2, ge=1, doc="side p of the square patches; a token holds p*p*C values")
    num_blocks: int = setting(8, ge=1, doc="autoregressive flow blocks; token order reversed every other one")
    num_layers: int = setting(8, ge=1, doc="Transformer layers in each block")
    width: int = setting(768, ge=1, doc="Transformer width (channels per token inside a block)")
    heads: int = setting(12, ge=1, doc="attention heads; width must be divisible by it")
    mlp_ratio: int = setting(4, ge=1, doc="MLP hidden width over the Transformer width")

    def __post_init__(self) -> None:
        check(self)
        check_heads(self.width, self.heads)


class TarFlowBlock(InvertibleModule):
    """One autoregressive flow block on ``(B, T, D)`` tokens (see the module docstring for the transform).

    Args:
        num_tokens: ``T``.
        token_dim: ``D``.
        width, num_layers, heads, mlp_ratio: the causal Transformer.
        reverse: read the tokens last to first (every other block).
    """

    def __init__(
        self, num_tokens: int, token_dim: int, *, width: int, num_layers: int, heads: int, mlp_ratio: int, reverse: bool
    ) -> None:
        super().__init__()
        self.reverse = reverse
        self.proj_in = nn.Linear(token_dim, width)
        self.pos = nn.Parameter(0.01 * torch.randn(num_tokens, width))
        self.layers = nn.ModuleList(TransformerLayer(width, heads, mlp_ratio) for _ in range(num_layers))
        self.proj_out = nn.Linear(width, 2 * token_dim)
        # Zero output projection: α = μ = 0, every block starts as the identity.
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def _order(self, x: Tensor) -> Tensor:
        """Tokens in this block's reading order (its own inverse)."""
        return x.flip(1) if self.reverse else x

    def _next_token_params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Transformer outputs ``(B, t, width)`` → ``(α, μ)`` of the token *after* each, fp32, ``(B, t, D)`` each."""
        out = self.proj_out(h)
        with float32_region(out):
            log_scale, shift = full_precision(out).chunk(2, dim=-1)
        return log_scale, shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        seq = self._order(x)
        h = self.proj_in(seq) + self.pos
        for layer in self.layers:
            h = layer(h, causal=True)
        log_scale, shift = self._next_token_params(h)
        with float32_region(x):
            # Token t's parameters come from the output at t - 1; the first token gets none (identity).
            pad = log_scale.new_zeros(log_scale.shape[0], 1, log_scale.shape[2])
            log_scale = torch.cat((pad, log_scale[:, :-1]), dim=1)
            shift = torch.cat((pad, shift[:, :-1]), dim=1)
            z = (full_precision(seq) - shift) * torch.exp(-log_scale)
            logdet = -log_scale.flatten(1).sum(1)
        return self._order(z), logdet

    def inverse(self, y: Tensor) -> Tensor:
        z = full_precision(self._order(y))
        caches = [KVCache() for _ in self.layers]
        tokens = [z[:, :1]]
        for t in range(z.shape[1] - 1):
            # Feed token t (now known) through the Transformer once; its output gives token t + 1's parameters.
            h = self.proj_in(tokens[-1].to(y.dtype)) + self.pos[t : t + 1]
            for layer, cache in zip(self.layers, caches, strict=True):
                h = layer(h, cache=cache)
            log_scale, shift = self._next_token_params(h)
            with float32_region(z):
                tokens.append(z[:, t + 1 : t + 2] * torch.exp(log_scale) + shift)
        return self._order(torch.cat(tokens, dim=1))


def build_tarflow(
    input_shape: Sequence[int], options: TarFlowOptions, coupling: None = None
) -> tuple[InvertibleModule, list[int]]:
    """TarFlow on images of ``input_shape = (C, H, W)``: patchify, ``options.num_blocks`` :class:`TarFlowBlock`
    s alternating token order, one scale (``latent_keeps = []``).

    Raises:
        ValueError: ``H`` or ``W`` not divisible by ``options.patch_size``.
    """
    shape = image_shape(input_shape, "tarflow")
    rows, cols, dim = token_grid(shape, options.patch_size, "tarflow")
    blocks = [
        TarFlowBlock(
            rows * cols,
            dim,
            width=options.width,
            num_layers=options.num_layers,
            heads=options.heads,
            mlp_ratio=options.mlp_ratio,
            reverse=k % 2 == 1,
        )
        for k in range(options.num_blocks)
    ]
    return TokenFlow(shape, options.patch_size, blocks), []
