"""What coupling layers compute (paper claim 3): pictures and a measurement.

An affine coupling maps ``y = (x + t)·exp(s)`` on the *transformed* entries, with ``(s, t)`` predicted by the
st-network from the *conditioning* entries. Kirichenko et al. show that for checkerboard couplings ``−t`` is a
"smart interpolation" of the hidden pixels from their neighbours, so ``x + t`` is a small residual; this works for
any locally smooth image, which is why likelihood rises on OOD images too.

The measurement here is the Pearson correlation between ``−t`` and the transformed entries of the layer's input,
per image, averaged over images: near 1 means the st-network predicts the hidden values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowood.analysis.display import (
    HIDDEN_COLOUR,
    UNCHANGED_COLOUR,
    UNSEEN_COLOUR,
    add_signed_colourbar,
    show_panel,
)
from flowood.analysis.style import (
    dataset_color,
    figure_style,
    figure_title,
    grid_figsize,
    layout_panel_grid,
    new_figure,
    save_figure,
)
from flowood.flows.coupling import AffineCoupling
from flowood.flows.flow import NormalizingFlow

COUPLING_COLUMNS = ("input x", "masked input (st-net sees)", "s (log-scale)", "t (shift)", "output y")
SPATIAL_MASKS = ("checkerboard", "quadrant", "horizontal", "vertical")


class _StopForwardError(Exception):
    """Raised from a hook to end a forward pass once every requested layer input is captured."""


def coupling_layers(flow: NormalizingFlow) -> list[AffineCoupling]:
    """All coupling layers in ``flow.modules()`` order (= the order the forward pass applies them)."""
    return [m for m in flow.modules() if isinstance(m, AffineCoupling)]


def default_layer_indices(flow: NormalizingFlow, count: int = 3) -> list[int]:
    """The first ``count`` checkerboard couplings; else the first spatially masked ones; else the first ones.

    Glow has only channel couplings and the cycle-mask model only quadrant ones, hence the fallbacks.
    """
    layers = coupling_layers(flow)
    for wanted in (("checkerboard",), SPATIAL_MASKS):
        idx = [i for i, layer in enumerate(layers) if layer.mask_type in wanted]
        if idx:
            return idx[:count]
    return list(range(min(count, len(layers))))


def check_layer_indices(flow: NormalizingFlow, indices: Sequence[int]) -> list[int]:
    """Validate indices into :func:`coupling_layers` (``ValueError`` naming the valid range)."""
    n = len(coupling_layers(flow))
    bad = [i for i in indices if not 0 <= int(i) < n]
    if bad:
        raise ValueError(
            f"coupling layer index {bad[0]} out of range: {flow.name} has {n} coupling layers (0..{n - 1})"
        )
    return [int(i) for i in indices]


@torch.no_grad()
def coupling_inputs(flow: NormalizingFlow, x: Tensor, indices: Sequence[int]) -> dict[int, Tensor]:
    """Run ``flow(x)`` and capture the input of the chosen coupling layers.

    Args:
        x: flow input ``(B, *input_shape)`` (logit space for image flows).
        indices: positions in :func:`coupling_layers`.

    Returns:
        index → the layer's input ``(B, C_k, H_k, W_k)`` (squeezed shape at coarser scales).
    """
    layers = coupling_layers(flow)
    wanted = check_layer_indices(flow, indices)
    captured: dict[int, Tensor] = {}
    handles = []
    for i in wanted:

        def hook(_module: torch.nn.Module, args: tuple[Any, ...], i: int = i) -> None:
            # Keep only the first call: a layer is applied once per forward pass.
            captured.setdefault(i, args[0].detach().clone())
            if len(captured) == len(set(wanted)):
                # Nothing after the last wanted layer matters: skip the rest of the (possibly large) flow.
                raise _StopForwardError

        handles.append(layers[i].register_forward_pre_hook(hook))
    try:
        flow(x)
    except _StopForwardError:
        pass
    finally:
        for h in handles:
            h.remove()
    return captured


def _buffer_mask(buf: Tensor, shape: tuple[int, ...]) -> Tensor:
    m = buf.detach().cpu() > 0.5
    # The buffers carry a leading batch dimension of 1; drop it so the mask is per-sample.
    m = m.reshape(m.shape[-len(shape) :]) if m.dim() > len(shape) else m
    return torch.broadcast_to(m, shape).clone()


def cond_mask(layer: AffineCoupling, shape: Sequence[int]) -> Tensor:
    """Boolean ``(C, H, W)`` (or ``(D,)``) mask of the entries the layer's st-network sees."""
    shape = tuple(int(s) for s in shape)
    if layer.mask_type == "channel":
        return ~change_mask(layer, shape)
    return _buffer_mask(layer.cond, shape)


def change_mask(layer: AffineCoupling, shape: Sequence[int]) -> Tensor:
    """Boolean ``(C, H, W)`` (or ``(D,)``) mask of the entries the layer transforms."""
    shape = tuple(int(s) for s in shape)
    if layer.mask_type == "channel":
        half = shape[0] // 2
        m = torch.zeros(shape, dtype=torch.bool)
        # _split_channels: parity 0 transforms the first half, parity 1 the second.
        if layer.parity == 0:
            m[:half] = True
        else:
            m[half:] = True
        return m
    return _buffer_mask(layer.change, shape)


def pearson_rows(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation of ``a[i]`` and ``b[i]`` for each row ``i``, over the entries where ``mask`` holds.

    Args:
        a, b: ``(N, ...)`` arrays of the same shape.
        mask: boolean, broadcastable to one row's shape ``a.shape[1:]``; all entries if ``None``.

    Returns:
        ``(N,)`` float64; NaN for rows where either side is constant (correlation undefined).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pearson_rows needs equal shapes, got {a.shape} and {b.shape}")
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, dtype=bool), a.shape[1:]).reshape(-1)
        a, b = a.reshape(len(a), -1)[:, m], b.reshape(len(b), -1)[:, m]
    else:
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    # Magnitudes before centring: a row whose spread is only rounding noise relative to them is "constant".
    scale_a = np.abs(a).max(axis=1, initial=0.0)
    scale_b = np.abs(b).max(axis=1, initial=0.0)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.sqrt((a * a).sum(axis=1))
    nb = np.sqrt((b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / (na * nb)
    n = max(a.shape[1], 1)
    constant = (na <= 1e-9 * scale_a * np.sqrt(n)) | (nb <= 1e-9 * scale_b * np.sqrt(n)) | (na == 0) | (nb == 0)
    r[constant | ~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _nanmean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _nanstd(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.std()) if v.size else float("nan")


@torch.no_grad()
def layer_statistics(layer: AffineCoupling, x: Tensor) -> dict[str, Any]:
    """How well one coupling's st-network predicts the entries it transforms, for inputs ``x`` ``(B, ...)``.

    Returns a dict of plain floats (NaN where undefined):
        ``corr_neg_t_x``: Pearson r between ``−t`` and ``x`` over the transformed entries, mean over images;
        ``corr_neg_t_x_std``: its standard deviation over images;
        ``residual_std_ratio``: std(x + t) / std(x) over transformed entries, mean over images (< 1: the shift
        removes predictable signal, the paper's "interpolation");
        ``mean_abs_s``, ``mean_abs_t``: mean |s| and |t| over transformed entries (s in nats per entry);
        ``n_images``: images used (those with a defined correlation for the mean).
    """
    internals = layer.internals(x)
    mask = change_mask(layer, x.shape[1:]).numpy()
    xn = x.detach().cpu().double().numpy()
    tn = internals.t.detach().cpu().double().numpy()
    sn = internals.s.detach().cpu().double().numpy()
    r = pearson_rows(-tn, xn, mask)
    flat = mask.reshape(-1)
    xc = xn.reshape(len(xn), -1)[:, flat]
    tc = tn.reshape(len(tn), -1)[:, flat]
    sc = sn.reshape(len(sn), -1)[:, flat]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (xc + tc).std(axis=1) / xc.std(axis=1)
    return {
        "corr_neg_t_x": _nanmean(r),
        "corr_neg_t_x_std": _nanstd(r),
        "residual_std_ratio": _nanmean(ratio),
        "mean_abs_s": float(np.abs(sc).mean()) if sc.size else float("nan"),
        "mean_abs_t": float(np.abs(tc).mean()) if tc.size else float("nan"),
        "n_images": int(np.isfinite(r).sum()),
    }


@torch.no_grad()
def coupling_statistics(
    flow: NormalizingFlow,
    datasets: dict[str, Tensor],
    layers: Sequence[int] | None = None,
    *,
    batch_size: int = 128,
) -> list[dict[str, Any]]:
    """The claim-3 measurement for each (layer, dataset).

    Args:
        flow: image flow in eval mode.
        datasets: name → images ``(N, C, H, W)`` in ``[0, 1]`` (all are used, in batches).
        layers: indices into :func:`coupling_layers`; default :func:`default_layer_indices`.

    Returns:
        One dict per (layer, dataset): ``layer``, ``mask_type``, ``parity``, ``layer_input_shape``, ``dataset``
        and the numbers of :func:`layer_statistics`, aggregated over batches (means weighted by images).
    """
    indices = check_layer_indices(flow, layers) if layers is not None else default_layer_indices(flow)
    all_layers = coupling_layers(flow)
    out: list[dict[str, Any]] = []
    for name, images in datasets.items():
        per_layer: dict[int, list[tuple[int, dict[str, Any]]]] = {i: [] for i in indices}
        shapes: dict[int, list[int]] = {}
        for start in range(0, images.shape[0], batch_size):
            x, _ = flow.preprocess_images(images[start : start + batch_size].to(torch.float32))
            inputs = coupling_inputs(flow, x, indices)
            for i in indices:
                shapes[i] = list(inputs[i].shape[1:])
                per_layer[i].append((inputs[i].shape[0], layer_statistics(all_layers[i], inputs[i])))
        for i in indices:
            row: dict[str, Any] = {
                "layer": i,
                "mask_type": all_layers[i].mask_type,
                "parity": int(all_layers[i].parity),
                "layer_input_shape": shapes.get(i, []),
                "dataset": name,
            }
            row.update(_combine(per_layer[i]))
            out.append(row)
    return out


def _combine(parts: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Image-weighted means of per-batch statistics (std: pooled within-batch, a close approximation)."""
    if not parts:
        return {"corr_neg_t_x": float("nan"), "n_images": 0}
    keys = [k for k in parts[0][1] if k != "n_images"]
    res: dict[str, Any] = {}
    for k in keys:
        vals = np.array([p[1][k] for p in parts], dtype=np.float64)
        w = np.array([p[1]["n_images"] if k.startswith("corr") else p[0] for p in parts], dtype=np.float64)
        ok = np.isfinite(vals) & (w > 0)
        res[k] = float((vals[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
    res["n_images"] = int(sum(p[1]["n_images"] for p in parts))
    return res


def coupling_figsize(num_rows: int) -> tuple[float, float]:
    """Inches ``(width, height)`` of a coupling figure with ``num_rows`` image rows."""
    return grid_figsize(num_rows, len(COUPLING_COLUMNS), panel_in=1.7)


@torch.no_grad()
def plot_coupling(
    flow: NormalizingFlow,
    datasets: dict[str, Tensor],
    layer_index: int,
    path: str | Path,
    *,
    num_examples: int = 2,
) -> Path:
    """Figure for one coupling layer: rows = images (grouped by dataset), columns = :data:`COUPLING_COLUMNS`.

    Args:
        datasets: name → images ``(N, C, H, W)`` in ``[0, 1]``; the first ``num_examples`` of each are used.
        layer_index: index into :func:`coupling_layers`.

    The layer's tensors are shown on the image grid (squeezes undone where possible); entries the st-network
    does not see are painted red in the masked-input panel; s and t use a diverging map centred on 0 (blue < 0 <
    red) and grey where the layer leaves entries unchanged. Every panel is normalised on its own.
    """
    (layer_index,) = check_layer_indices(flow, [layer_index])
    layer = coupling_layers(flow)[layer_index]
    c = flow.input_shape[0]
    rows: list[tuple[str, int, Tensor, Any, Tensor, Tensor]] = []
    stats: dict[str, dict[str, Any]] = {}
    for name, images in datasets.items():
        x, _ = flow.preprocess_images(images[:num_examples].to(torch.float32))
        inp = coupling_inputs(flow, x, [layer_index])[layer_index]
        internals = layer.internals(inp)
        hidden = change_mask(layer, inp.shape[1:])
        seen = cond_mask(layer, inp.shape[1:])
        stats[name] = layer_statistics(layer, inp)
        for i in range(inp.shape[0]):
            rows.append((name, i, inp[i], [t[i] for t in internals], hidden, seen))
    if not rows:
        raise ValueError("plot_coupling needs at least one image")
    with figure_style():
        fig = new_figure(*coupling_figsize(len(rows)))
        axes = fig.subplots(len(rows), len(COUPLING_COLUMNS), squeeze=False)
        for r, (name, i, inp, (cond, s, t, y), hidden, seen) in enumerate(rows):
            show_panel(axes[r][0], inp, c)
            show_panel(axes[r][1], cond, c, overlays=[(~seen, UNSEEN_COLOUR), (hidden, HIDDEN_COLOUR)])
            # s and t carry their own colourbars: each panel is normalised on its own, so the scale differs.
            add_signed_colourbar(
                axes[r][2], show_panel(axes[r][2], s, c, signed=True, overlays=[(~hidden, UNCHANGED_COLOUR)])
            )
            add_signed_colourbar(
                axes[r][3], show_panel(axes[r][3], t, c, signed=True, overlays=[(~hidden, UNCHANGED_COLOUR)])
            )
            show_panel(axes[r][4], y, c)
            label = f"{name}\n#{i}"
            if i == 0:
                label += f"\nr(−t,x)={stats[name]['corr_neg_t_x']:.2f}"
            axes[r][0].set_ylabel(label, color=dataset_color(name), rotation=0, ha="right", va="center", fontsize=10)
        for col, title in enumerate(COUPLING_COLUMNS):
            axes[0][col].set_title(title, fontsize=10)
        shape = "×".join(str(s) for s in layer.shape)
        figure_title(
            fig,
            f"{flow.name}: coupling layer {layer_index} ({layer.mask_type}, parity {layer.parity}, "
            f"on {shape})\ny = (x + t)·exp(s); red: transformed (hidden from the st-net); grey: not seen / unchanged",
            fontsize=11,
        )
        layout_panel_grid(fig)
        fig.subplots_adjust(wspace=0.3)  # room for the s and t colourbars' tick labels
        return save_figure(fig, path)
