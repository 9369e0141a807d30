"""Transformer pieces of the patch-token flows (:mod:`flowood.flows.tarflow`, :mod:`flowood.flows.jet`).

* :class:`TransformerLayer`: a pre-LayerNorm Transformer layer (self-attention, then a GELU MLP, each added to
  its input), causal or not; a causal layer can also run one token at a time against a :class:`KVCache`,
  which is how TarFlow inverts a block in ``T`` steps of one token each instead of ``T`` full passes.
* :class:`TokenFlow`: the invertible wrapper that turns ``(B, C, H, W)`` images into ``(B, T, D)`` patch
  tokens, runs token transforms on them and puts the result back on the image grid, so the latent of a
  patch-token flow lies where its pixels came from (``flowood visualize`` shows it like any other latent).

These networks only *condition* the flow: they produce shifts and log-scales and never touch the flow's
state, so under bf16 autocast they may run in bf16 while the transforms and log-dets stay fp32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowood.errors import FieldError
from flowood.flows.base import FlowSequential, InvertibleModule
from flowood.flows.reshape import patchify, unpatchify


class KVCache:
    """Keys and values of the tokens a causal attention layer has seen so far, ``(B, heads, t, d)`` each."""

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's keys and values; returns all of them so far."""
        self.keys = k if self.keys is None else torch.cat((self.keys, k), dim=2)
        self.values = v if self.values is None else torch.cat((self.values, v), dim=2)
        return self.keys, self.values


class SelfAttention(nn.Module):
    """Multi-head self-attention over ``(B, T, width)`` tokens.

    Args:
        width: token width (divisible by ``heads``).
        heads: attention heads, each of width ``width / heads``.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"attention width {width} is not divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: Tensor, causal: bool = False, cache: KVCache | None = None) -> Tensor:
        """``(B, T, width) -> (B, T, width)``. With ``cache``, ``h`` holds the *next* tokens of a causal
        sequence: they attend to every cached token and to themselves (one token per call keeps that causal)."""
        b, t, w = h.shape
        q, k, v = self.qkv(h).reshape(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if t != 1:
                raise ValueError(f"a KV-cached step takes one token at a time, got {t}")
            k, v = cache.extend(k, v)
            causal = False  # the one query is the newest token: every cached key is in its past
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.proj(out.transpose(1, 2).reshape(b, t, w))

    @torch.no_grad()
    def attention_probs(self, h: Tensor, causal: bool = False) -> Tensor:
        """``(B, T, width) -> (B, heads, T, T)``: the attention probabilities :meth:`forward` applies to ``h``
        (row ``i``: how query token ``i`` weighs every key token ``j``; causal rows are zero above the diagonal).

        For analysis only (:mod:`flowood.analysis.attention`): :meth:`forward` never calls it and keeps its fused
        kernel, so recording attention cannot change the function a flow computes. Computed in fp32 as
        ``softmax(q kᵀ / √d)``, the definition ``scaled_dot_product_attention`` implements.
        """
        b, t, w = h.shape
        q, k, _ = self.qkv(h).float().reshape(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-2, -1) / math.sqrt(w // self.heads)
        if causal:
            future = torch.ones(t, t, dtype=torch.bool, device=h.device).triu(1)
            logits = logits.masked_fill(future, float("-inf"))
        return logits.softmax(dim=-1)


class TransformerLayer(nn.Module):
    """Pre-LayerNorm Transformer layer: ``h + attn(LN(h))``, then ``h + MLP(LN(h))`` (GELU, ``mlp_ratio``×
    wider hidden layer), as in ViT, TarFlow and Jet.

    Args:
        width: token width.
        heads: attention heads (``width`` must be divisible by it).
        mlp_ratio: hidden width of the MLP over ``width``.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, h: Tensor, causal: bool = False, cache: KVCache | None = None) -> Tensor:
        """``(B, T, width) -> (B, T, width)``; ``causal``/``cache`` as in :meth:`SelfAttention.forward`."""
        h = h + self.attn(self.norm1(h), causal, cache)
        return h + self.mlp(self.norm2(h))


class TokenFlow(InvertibleModule):
    """Token transforms applied to the patch tokens of an image, with the result put back on the image grid.

    ``forward``: ``(B, C, H, W)`` → :func:`~flowood.flows.reshape.patchify` → ``blocks`` (each
    ``(B, T, D) -> ((B, T, D), (B,))``) → :func:`~flowood.flows.reshape.unpatchify`; the reshapes are
    permutations, so the log-det is the blocks'.

    Args:
        shape: per-sample image shape ``(C, H, W)``, ``H`` and ``W`` divisible by ``patch_size``.
        patch_size: side ``p`` of the square patches; tokens have ``D = p²·C`` features.
        blocks: the token transforms, applied in order.
    """

    def __init__(self, shape: Sequence[int], patch_size: int, blocks: Sequence[InvertibleModule]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.patch_size = patch_size
        self.blocks = FlowSequential(*blocks)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, logdet = self.blocks(patchify(x, self.patch_size))
        return unpatchify(y, self.patch_size, self.shape), logdet

    def inverse(self, y: Tensor) -> Tensor:
        return unpatchify(self.blocks.inverse(patchify(y, self.patch_size)), self.patch_size, self.shape)


def check_heads(width: int, heads: int) -> None:
    """:class:`FieldError` on ``heads`` unless it divides ``width`` (each head gets ``width / heads`` channels)."""
    if width % heads:
        raise FieldError("heads", f"{{name}} must divide width={width}, got {heads}")


def token_grid(shape: Sequence[int], patch_size: int, name: str) -> tuple[int, int, int]:
    """``(tokens per row, tokens per column, features per token)`` of ``shape = (C, H, W)`` cut into
    ``patch_size``-sized patches, or a :class:`ValueError` naming architecture ``name``."""
    c, h, w = shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"{name} with patch_size={patch_size} needs H and W divisible by it, got {h}x{w}")
    return h // patch_size, w // patch_size, patch_size * patch_size * c
