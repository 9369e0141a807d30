"""Where the attention of a patch-token flow looks: the mean attention distance of every Transformer layer.

The paper's diagnosis (Kirichenko et al. 2020, claims 2-3) is that coupling flows with convolutional st-networks
model *local* pixel correlations. TarFlow's and Jet's conditioners are Transformers, which may attend anywhere; this
module measures whether they do. For one layer with attention probabilities ``p_ij`` (query token ``i``, key token
``j``, rows summing to 1) over tokens at patch-grid positions ``g_i = (row, col)``:

    distance = mean_i Σ_j p_ij · ‖g_i − g_j‖₂            (in patches; one patch = ``patch_size`` pixels)

averaged over images, per head (ViT's "mean attention distance", Dosovitskiy et al. 2021, counted in patches
instead of pixels). A layer that attends like a 3×3 convolution scores about 1; one that attends uniformly over the
tokens it may see scores :func:`uniform_distance` (about 3.5 on a 7×7 grid, less for causal layers, whose early
queries see few keys). Both references are computed on the same positions as the layer.

Positions follow each layer's own token order: a TarFlow block that reads the tokens in reverse sees raster
position ``T − 1 − s`` at sequence index ``s``; a Jet spatial coupling's conditioner sees only its conditioning
tokens. Recording uses forward hooks and :meth:`~flowood.flows.transformer.SelfAttention.attention_probs`, so the
flow computes exactly what it computes without them (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from flowood.analysis.style import dataset_color, figure_style, new_figure, save_figure
from flowood.flows.flow import NormalizingFlow
from flowood.flows.jet import JetCoupling
from flowood.flows.tarflow import TarFlowBlock
from flowood.flows.transformer import SelfAttention, TokenFlow


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer of a patch-token flow and where its tokens lie.

    Attributes:
        block: index of the flow block (TarFlow) or coupling (Jet) in the flow.
        layer: index of the Transformer layer inside that block's network.
        attention: the layer's attention module.
        positions: ``(T, 2)`` patch-grid ``(row, col)`` of the tokens, in the order the layer sees them.
        causal: whether the layer attends only to earlier tokens.
    """

    block: int
    layer: int
    attention: SelfAttention
    positions: Tensor
    causal: bool


def grid_positions(rows: int, cols: int) -> Tensor:
    """``(rows·cols, 2)`` float ``(row, col)`` of the tokens of a ``rows × cols`` grid in raster order."""
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack((r.flatten(), c.flatten()), dim=1).to(torch.float64)


def attention_layers(flow: NormalizingFlow | nn.Module) -> list[AttentionLayer]:
    """Every attention layer of the flow's :class:`~flowood.flows.transformer.TokenFlow` (TarFlow, Jet), in order.

    Raises:
        ValueError: the flow has no patch-token part (RealNVP, Glow), or a block of a kind not known here.
    """
    token_flows = [m for m in flow.modules() if isinstance(m, TokenFlow)]
    if not token_flows:
        raise ValueError(f"{getattr(flow, 'name', type(flow).__name__)} has no Transformer: no attention to record")
    found: list[AttentionLayer] = []
    for tf in token_flows:
        _, h, w = tf.shape
        grid = grid_positions(h // tf.patch_size, w // tf.patch_size)
        for b, block in enumerate(tf.blocks):
            if isinstance(block, TarFlowBlock):
                layers, positions, causal = block.layers, grid.flip(0) if block.reverse else grid, True
            elif isinstance(block, JetCoupling):
                cond = block.cond_index.cpu()
                layers, positions, causal = block.net.layers, grid if block.spatial is None else grid[cond], False
            else:
                raise ValueError(f"attention_layers: unknown patch-token block {type(block).__name__}")
            for k, layer in enumerate(layers):
                assert isinstance(layer.attn, SelfAttention)
                found.append(AttentionLayer(b, k, layer.attn, positions, causal))
    return found


def mean_attention_distance(probs: Tensor, positions: Tensor) -> Tensor:
    """Mean over queries of the attention-weighted distance to the keys.

    Args:
        probs: ``(..., T, T)`` attention probabilities, each row summing to 1.
        positions: ``(T, 2)`` patch-grid positions of the tokens in the same order.

    Returns:
        ``(...)`` distances in patches (float64).
    """
    pos = positions.to(torch.float64)
    dist = torch.cdist(pos, pos)  # (T, T) Euclidean distance between patch positions
    return (probs.to(torch.float64) * dist).sum(-1).mean(-1)


def uniform_attention(num_tokens: int, causal: bool) -> Tensor:
    """``(T, T)`` attention spread evenly over every key a query may see (all, or the query and earlier ones)."""
    allowed = torch.ones(num_tokens, num_tokens, dtype=torch.float64)
    if causal:
        allowed = allowed.tril()
    return allowed / allowed.sum(-1, keepdim=True)


def uniform_distance(positions: Tensor, causal: bool) -> float:
    """:func:`mean_attention_distance` of :func:`uniform_attention` on ``positions``: the *global* reference."""
    return float(mean_attention_distance(uniform_attention(len(positions), causal), positions))


@contextmanager
def recorded_attention(layers: Sequence[AttentionLayer]) -> Iterator[list[list[Tensor]]]:
    """Within the block, every forward pass of the given layers appends its ``(B, heads, T, T)`` attention
    probabilities (fp32, on the CPU) to ``records[i]`` for layer ``i``; the hooks are removed on exit."""
    records: list[list[Tensor]] = [[] for _ in layers]

    def hook(i: int) -> Callable[[SelfAttention, tuple[Any, ...], dict[str, Any], Tensor], None]:
        def record(module: SelfAttention, args: tuple[Any, ...], kwargs: dict[str, Any], output: Tensor) -> None:
            causal = bool(args[1]) if len(args) > 1 else bool(kwargs.get("causal", False))
            records[i].append(module.attention_probs(args[0], causal).cpu())

        return record

    handles = [lay.attention.register_forward_hook(hook(i), with_kwargs=True) for i, lay in enumerate(layers)]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class AttentionDistances:
    """Mean attention distances of every layer of a flow on one set of images.

    Attributes:
        blocks: ``(L,)`` block index of each layer.
        layers: ``(L,)`` layer index inside its block.
        per_head: ``(L, heads)`` distance in patches, averaged over queries and images.
        uniform: ``(L,)`` the distance of uniform attention on the same tokens (the global reference).
        causal: ``(L,)`` whether each layer is causal.
    """

    blocks: np.ndarray
    layers: np.ndarray
    per_head: np.ndarray
    uniform: np.ndarray
    causal: np.ndarray

    def per_block(self) -> dict[int, dict[str, float]]:
        """Block → ``{"distance", "uniform", "ratio"}``: heads and layers averaged; ratio = distance / uniform."""
        out: dict[int, dict[str, float]] = {}
        for b in np.unique(self.blocks):
            sel = self.blocks == b
            d, u = float(self.per_head[sel].mean()), float(self.uniform[sel].mean())
            out[int(b)] = {"distance": d, "uniform": u, "ratio": d / u if u > 0 else float("nan")}
        return out


@torch.no_grad()
def attention_distances(
    flow: NormalizingFlow, images: Tensor, batch_size: int = 64, seed: int = 0
) -> AttentionDistances:
    """Run ``images`` (``(N, C, H, W)`` in ``[0, 1]``) through the flow's forward pass and measure each attention
    layer (:func:`mean_attention_distance`, averaged over the images). The dequantisation noise is drawn once for
    all images from ``seed``, so the result depends on neither the batching nor the global random state.

    Raises:
        ValueError: the flow has no Transformer (:func:`attention_layers`).
    """
    layers = attention_layers(flow)
    device = next(flow.parameters()).device
    sums: list[Tensor] = [torch.zeros(0)] * len(layers)
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed))
    with recorded_attention(layers) as records:
        for start in range(0, len(images), batch_size):
            part = slice(start, start + batch_size)
            x, _ = flow.preprocess_images(images[part].to(device, torch.float32), noise[part].to(device))
            flow(x)
            for i, rec in enumerate(records):
                # (heads,) per image, summed here: holding every (B, heads, T, T) map would cost memory.
                d = mean_attention_distance(torch.cat(rec), layers[i].positions).sum(0)
                sums[i] = d if sums[i].numel() == 0 else sums[i] + d
                rec.clear()
    per_head = torch.stack(sums).numpy() / len(images)
    return AttentionDistances(
        blocks=np.array([lay.block for lay in layers]),
        layers=np.array([lay.layer for lay in layers]),
        per_head=per_head,
        uniform=np.array([uniform_distance(lay.positions, lay.causal) for lay in layers]),
        causal=np.array([lay.causal for lay in layers]),
    )


def plot_attention_distance(by_set: dict[str, AttentionDistances], path: str | Path, title: str) -> Path:
    """Figure: mean attention distance (patches) per block, one line per dataset (heads and layers averaged, each
    layer's heads as faint points), against uniform (global) attention and a one-patch (convolution-like) line."""
    if not by_set:
        raise ValueError("plot_attention_distance needs at least one set of distances")
    with figure_style():
        fig = new_figure(6.4, 3.8)
        ax = fig.subplots()
        first = next(iter(by_set.values()))
        blocks = sorted(first.per_block())
        ax.plot(blocks, [first.per_block()[b]["uniform"] for b in blocks], "k--", lw=1.2, label="uniform (global)")
        ax.axhline(1.0, color="0.5", lw=1.0, ls=":", label="1 patch (local)")
        for name, dist in by_set.items():
            color = dataset_color(name)
            summary = dist.per_block()
            ax.plot(blocks, [summary[b]["distance"] for b in blocks], "o-", color=color, label=name)
            for lay in range(len(dist.blocks)):
                heads = dist.per_head[lay]
                ax.scatter(np.full(heads.shape, dist.blocks[lay]), heads, s=8, color=color, alpha=0.3, lw=0)
        ax.set_xticks(blocks)
        ax.set_xlabel("block")
        ax.set_ylabel("mean attention distance (patches)")
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=11)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        return save_figure(fig, path)
