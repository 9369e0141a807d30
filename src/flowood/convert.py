"""Checkpoints of the original flows_ood training scripts → flowood flows and run directories.

The original code (Kirichenko, Izmailov & Wilson, ``PolinaKirichenko/flows_ood``, package ``flow_ssl``)
saves ``{"net": state_dict, "epoch": N}``, under ``nn.DataParallel`` on CUDA (keys prefixed ``module.``).
A checkpoint holds no architecture, so it is given here in the original script's own flag names
(:class:`OriginalArchitecture`, defaults = ``train_unsup.py``'s); every tensor is then checked against the
flowood flow those flags describe, and the first one that does not fit is named in the error.

How the original's modules map onto flowood's (same function, measured on the golden models in
``../shared/golden/flows_ood``: log-density within 1e-3 nats, latent within 1e-4):

* each parametrised layer ``body.<i>.<j>.module1`` (``body.<i>`` for ``RealNVPTabular``), taken in forward
  order, is the next coupling / ActNorm / 1×1 convolution of the flowood transform in forward order;
* old-style weight norm ``weight_g`` / ``weight_v`` → ``parametrizations.weight.original0`` / ``original1``;
  the ``WNConv2d``/Glow ``Conv2d`` wrapper's ``.conv`` level disappears;
* Glow ActNorm ``bias`` / ``logs`` ``(1, C, 1, 1)`` → ``bias`` / ``log_scale`` ``(C,)`` (marked initialised);
* the tabular st-net's linear layers are matched in order (the original keeps an empty slot for dropout).

Loading never runs code: ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from flowood.errors import CheckpointError, ConfigError
from flowood.flows import NormalizingFlow, build_flow
from flowood.flows.base import FlowSequential
from flowood.flows.coupling import AffineCoupling
from flowood.flows.invconv import InvConv1x1
from flowood.flows.multiscale import FactorOut
from flowood.flows.normalization import ActNorm
from flowood.runs import RunDir

ORIGINAL_FLOWS = ("RealNVP", "Glow", "RealNVPCycleMask", "RealNVPMaskHorizontal", "RealNVPTabular")
ORIGINAL_ST_TYPES = ("resnet", "resnet_ae", "highway")

# The original scripts' dataset names → (flowood dataset, image shape).
_DATASETS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "fashionmnist": ("fashionmnist", (1, 28, 28)),
    "mnist": ("mnist", (1, 28, 28)),
    "cifar10": ("cifar10", (3, 32, 32)),
    "svhn": ("svhn", (3, 32, 32)),
    "celeba": ("celeba", (3, 32, 32)),
}


@dataclass(frozen=True)
class OriginalArchitecture:
    """An original model in ``train_unsup.py``'s flag names (defaults are that script's).

    Attributes:
        flow: ``--flow``: RealNVP, Glow, RealNVPCycleMask, RealNVPMaskHorizontal or RealNVPTabular.
        dataset: ``--dataset`` (FashionMNIST, MNIST, CIFAR10, SVHN, CelebA); gives the image shape.
        img_shape: ``(C, H, W)``, overrides ``dataset`` (for images of other sizes).
        num_scales, num_blocks, num_mid_channels, st_type, latent_dim, num_coupling_layers_per_scale:
            the flags of the same names (``num_blocks`` is Glow's ``num_layers`` and the tabular
            ``num_layers``; ``num_mid_channels`` the tabular ``hidden_dim``).
        no_batchnorm, no_skip, no_multi_scale: the flags of the same names.
        in_dim: RealNVPTabular input dimension (``train_unsup.py`` hard-codes 1792).
        dropout: RealNVPTabular ``--dropout`` (``train_unsup_ood_uci.py``): dropout 0.5 after the first layer.
    """

    flow: str = "RealNVP"
    dataset: str | None = None
    img_shape: tuple[int, ...] | None = None
    num_scales: int = 2
    num_blocks: int = 8
    num_mid_channels: int = 64
    st_type: str = "resnet"
    latent_dim: int = 100
    num_coupling_layers_per_scale: int = 8
    no_batchnorm: bool = False
    no_skip: bool = False
    no_multi_scale: bool = False
    in_dim: int = 1792
    dropout: bool = False

    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the model's input."""
        if self.flow == "RealNVPTabular":
            return (self.in_dim,)
        if self.img_shape is not None:
            if len(self.img_shape) != 3:
                raise ConfigError(f"--img_shape must be C,H,W, got {self.img_shape}")
            return tuple(int(s) for s in self.img_shape)
        if self.dataset is None:
            raise ConfigError(
                f"--flow {self.flow} needs --dataset (FashionMNIST, MNIST, CIFAR10, SVHN, CelebA) or --img_shape"
            )
        key = self.dataset.lower()
        if key not in _DATASETS:
            raise ConfigError(
                f"--dataset {self.dataset}: not one of the original's image datasets "
                "(FashionMNIST, MNIST, CIFAR10, SVHN, CelebA); give --img_shape C,H,W instead"
            )
        return _DATASETS[key][1]

    def flowood_dataset(self) -> str | None:
        """The flowood dataset of the same name, if the original's ``--dataset`` is one."""
        return _DATASETS[self.dataset.lower()][0] if self.dataset and self.dataset.lower() in _DATASETS else None

    def flowood_model(self) -> tuple[str, dict[str, Any]]:
        """``(name, options)`` of the flowood flow computing the same function as this original model."""
        if self.flow not in ORIGINAL_FLOWS:
            raise ConfigError(f"--flow {self.flow}: convert supports {', '.join(ORIGINAL_FLOWS)}")
        if self.flow == "RealNVPTabular":
            return "tabular", {
                "num_couplings": self.num_coupling_layers_per_scale,
                "hidden_dim": self.num_mid_channels,
                "num_layers": self.num_blocks,
                "dropout": 0.5 if self.dropout else 0.0,
                "init_zeros": False,
            }
        if self.st_type not in ORIGINAL_ST_TYPES:
            raise ConfigError(
                f"--st_type {self.st_type}: convert supports {', '.join(ORIGINAL_ST_TYPES)} (the original's "
                "convnet has no activations and autoencoder st-nets have no flowood counterpart)"
            )
        if self.no_skip:
            raise ConfigError("--no_skip: flowood's ResNet st-network always has its skip connections")
        if self.no_multi_scale:
            raise ConfigError("--no_multi_scale: flowood's Glow is always multi-scale")
        if self.st_type == "resnet_ae" and self.num_blocks < 2:
            # The original applies its bottleneck after block num_blocks // 2 - 1, i.e. never for
            # num_blocks < 2 (its bottleneck layers are dead weights); flowood's always applies it.
            raise ConfigError(
                f"--st_type resnet_ae with --num_blocks {self.num_blocks}: the original never applies its "
                "bottleneck then (dead layers) and flowood's bottleneck st-net would; not convertible exactly"
            )
        st: dict[str, Any] = {
            "num_blocks": self.num_blocks,
            "mid_channels": self.num_mid_channels,
            "st_net": {"resnet": "resnet", "resnet_ae": "bottleneck", "highway": "highway"}[self.st_type],
            "use_batch_norm": not self.no_batchnorm,
            "init_zeros": False,
        }
        if self.st_type == "resnet_ae":
            st["bottleneck_dim"] = self.latent_dim
        if self.flow == "RealNVP":
            return "realnvp", {"num_scales": self.num_scales, **st}
        if self.flow == "RealNVPCycleMask":
            return "realnvp-cycle-mask", st
        if self.flow == "RealNVPMaskHorizontal":
            return "realnvp-horizontal-mask", {"num_couplings": 8, **st}
        # Glow: the original's st-net is built without init_zeros (its highway output conv is always zero).
        st.pop("init_zeros")
        return "glow", {
            "num_scales": self.num_scales,
            "num_steps": self.num_coupling_layers_per_scale,
            "lu_decomposed": False,
            **st,
        }


def load_original_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], int | None]:
    """``(state_dict, epoch)`` of an original checkpoint, loaded without running code (keys as saved).

    Accepts ``{"net": state_dict, "epoch": N}`` (the training scripts' format) or a bare state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        raise CheckpointError(
            f"{path} is a weights file of a flowood run, which needs no conversion: give its run directory "
            f"({path.parent}) to `flowood evaluate` / `visualize` / `report` directly"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # a pickle that asks for code
        raise CheckpointError(
            f"{path} holds Python objects other than tensors ({str(err).splitlines()[-1][:160]}); convert only "
            "loads weights, never code"
        ) from None
    except Exception as err:
        text = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        if _is_zip(path):
            raise CheckpointError(
                f"{path} is truncated or corrupt ({text}); copy the checkpoint again (compare its size with the "
                "original)"
            ) from None
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {text}); give the .pt file the original "
            "training script saved"
        ) from None
    if isinstance(obj, dict) and {"model", "optimizer", "global_step"} <= obj.keys():
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        raise CheckpointError(
            f"{path} is a flowood training checkpoint, which needs no conversion: give its run directory ({run}) "
            "to `flowood evaluate` / `visualize` / `report`, or continue it with `flowood train --resume`"
        )
    epoch = None
    if isinstance(obj, dict) and "net" in obj:
        epoch = obj.get("epoch")
        obj = obj["net"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected {{'net': state_dict, 'epoch': N}} or a state dict of tensors")
    return {str(k): v for k, v in obj.items()}, int(epoch) if isinstance(epoch, int | float) else None


def _is_zip(path: Path) -> bool:
    """A file that starts as a zip (torch.save's format since 1.6), e.g. one cut short by a copy."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def check_finite_weights(state: dict[str, Tensor], source: Path | str) -> None:
    """Refuse weights holding NaN/Inf: a run converted from them scores NaN for every sample.

    Raises:
        CheckpointError: naming how many tensors are affected and the first of them.
    """
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{source}: {len(bad)} of {len(state)} tensors hold NaN/Inf (first: {bad[0]}); the checkpoint comes "
            "from a training that diverged or a corrupt copy: convert an earlier checkpoint"
        )


def _flowood_units(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Parametrised layers of a flowood transform in forward order, with their state-dict prefixes."""
    if isinstance(module, FlowSequential):
        units = []
        for i, layer in enumerate(module):
            units += _flowood_units(layer, f"{prefix}layers.{i}.")
        return units
    if isinstance(module, FactorOut):
        return _flowood_units(module.inner, f"{prefix}inner.")
    if isinstance(module, AffineCoupling | ActNorm | InvConv1x1):
        return [(prefix, module)]
    if any(True for _ in module.parameters()):
        raise ConfigError(f"convert: no original counterpart for flowood layer {type(module).__name__}")
    return []


_IMAGE_UNIT = re.compile(r"^body\.(\d+)\.(\d+)\.module1\.(.+)$")
_TABULAR_UNIT = re.compile(r"^body\.(\d+)\.(.+)$")


def _original_units(state: dict[str, Tensor], tabular: bool) -> list[tuple[str, dict[str, Tensor]]]:
    """The original's parametrised layers in forward order: ``(prefix, {local key: tensor})``."""
    pattern = _TABULAR_UNIT if tabular else _IMAGE_UNIT
    units: dict[tuple[int, ...], tuple[str, dict[str, Tensor]]] = {}
    for key, value in state.items():
        # DataParallel's prefix is kept in the prefix so that errors name tensors as the file has them.
        m = pattern.match(key.removeprefix("module."))
        if m is None:
            raise CheckpointError(
                f"checkpoint tensor {key!r} is not a layer of an original "
                f"{'RealNVPTabular' if tabular else 'image flow'} (expected body.<i>."
                + ("<key>)" if tabular else "<j>.module1.<key>); check --flow")
            )
        *index, local = m.groups()
        idx = tuple(int(i) for i in index)
        prefix = key[: len(key) - len(local)]
        units.setdefault(idx, (prefix, {}))[1][local] = value
    return [units[k] for k in sorted(units)]


def _local_name(local: str) -> str:
    local = re.sub(r"\.conv\.(weight_g|weight_v|weight|bias)$", r".\1", local)
    local = re.sub(r"(^|\.)weight_g$", r"\1parametrizations.weight.original0", local)
    return re.sub(r"(^|\.)weight_v$", r"\1parametrizations.weight.original1", local)


def _map_unit(local: dict[str, Tensor], module: nn.Module) -> list[tuple[str, str, Tensor]]:
    """``(original local key, flowood local key, tensor)`` for one layer (shapes are checked by the caller)."""
    if isinstance(module, ActNorm):
        names = {"bias": "bias", "logs": "log_scale"}
        out = [(k, names.get(k, k), v.reshape(-1) if k in names else v) for k, v in local.items()]
        return [*out, ("initialized", "initialized", torch.tensor(True))]
    out = [(k, _local_name(k), v) for k, v in local.items()]
    if isinstance(module, AffineCoupling) and module.mask_type == "tabular":
        # Original st_net: Linear, ReLU, Dropout-or-empty, (Linear, ReLU)*, Linear; flowood's has no empty slot,
        # so the linear layers are matched in order.
        ours = sorted({int(k.split(".")[2]) for k in module.state_dict() if k.startswith("st_net.net.")})
        theirs = sorted({int(k.split(".")[1]) for _, k, _ in out if re.match(r"^st_net\.\d+\.", k)})
        renumber = dict(zip(theirs, ours, strict=False)) if len(theirs) == len(ours) else {}
        mapped = []
        for orig, k, v in out:
            m = re.match(r"^st_net\.(\d+)\.(.+)$", k)
            if m and int(m.group(1)) in renumber:
                k = f"st_net.net.{renumber[int(m.group(1))]}.{m.group(2)}"
            mapped.append((orig, k, v))
        out = mapped
    return out


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


def map_original_state_dict(state: dict[str, Tensor], flow: NormalizingFlow) -> dict[str, Tensor]:
    """Rename and reshape an original state dict (with or without ``module.``) for ``flow.load_state_dict``.

    Raises:
        CheckpointError: naming the first original tensor (in forward order) that has no place in
            ``flow`` or the wrong shape, or the first flowood tensor the checkpoint lacks.
    """
    tabular = flow.preprocess is None
    ours = _flowood_units(flow.transform, "transform.")
    theirs = _original_units(state, tabular)
    expected = flow.state_dict()
    # Layer kinds, then counts: with a layer too many or too few every later layer would be misaligned.
    for n, ((orig_prefix, local), (prefix, module)) in enumerate(zip(theirs, ours, strict=False)):
        kind, want = _original_kind(local), _kind(module)
        if kind != want:
            raise CheckpointError(
                f"checkpoint layer {orig_prefix.rstrip('.')} is {kind} where the flags put {want} "
                f"({prefix.rstrip('.')}, layer {n + 1}); check --flow"
            )
    if len(theirs) > len(ours):
        orig_prefix, local = theirs[len(ours)]
        raise CheckpointError(
            f"checkpoint tensor {orig_prefix + next(iter(local))} belongs to layer {len(ours) + 1} of "
            f"{len(theirs)} but the flags build {len(ours)} layers with weights; "
            "check --num_scales / --num_coupling_layers_per_scale"
        )
    if len(theirs) < len(ours):
        prefix, module = ours[len(theirs)]
        raise CheckpointError(
            f"the checkpoint has {len(theirs)} layers with weights but the flags build {len(ours)}: nothing for "
            f"{prefix.rstrip('.')} (a {_describe(module)}); check --num_scales / --num_coupling_layers_per_scale"
        )
    mapped: dict[str, Tensor] = {}
    for n, (orig_prefix, local) in enumerate(theirs):
        prefix, module = ours[n]
        for orig_local, local_key, value in _map_unit(local, module):
            key, orig_key = prefix + local_key, orig_prefix + orig_local
            if key not in expected:
                raise CheckpointError(
                    f"checkpoint tensor {orig_key} {_shape(value)} has no counterpart in the flow the flags describe "
                    f"(layer {n + 1} is a flowood {_describe(module)}); check --flow / --st_type / --num_blocks"
                )
            if tuple(expected[key].shape) != tuple(value.shape):
                raise CheckpointError(
                    f"checkpoint tensor {orig_key} has shape {_shape(value)} but the flags give {key} shape "
                    f"{_shape(expected[key])}; check --num_mid_channels / --num_blocks / --latent_dim / the image shape"
                )
            mapped[key] = value.to(expected[key].dtype)
        for key in (prefix + k for k in module.state_dict()):
            if key not in mapped:
                raise CheckpointError(
                    f"the flags expect a tensor for {key} {_shape(expected[key])} (layer {n + 1}, a "
                    f"{_describe(module)}) but checkpoint layer {orig_prefix.rstrip('.')} has none; "
                    "check --num_blocks / --st_type"
                )
    missing = [k for k in expected if k not in mapped]
    if missing:
        raise CheckpointError(f"no checkpoint tensor for {missing[0]}; check the architecture flags")
    return mapped


def _original_kind(local: dict[str, Tensor]) -> str:
    if "logs" in local:
        return "an ActNorm"
    if any(k.startswith("st_net.") for k in local):
        return "a coupling layer"
    if set(local) == {"weight"} and local["weight"].dim() == 2:
        return "a 1x1 convolution"
    return "an unknown layer (" + ", ".join(sorted(local)) + ")"


def _kind(module: nn.Module) -> str:
    if isinstance(module, ActNorm):
        return "an ActNorm"
    if isinstance(module, AffineCoupling):
        return "a coupling layer"
    return "a 1x1 convolution"


def _describe(module: nn.Module) -> str:
    if isinstance(module, AffineCoupling):
        return f"{module.mask_type} coupling on {tuple(module.shape)}"
    return type(module).__name__


def from_flows_ood(
    checkpoint: str | Path | dict[str, Tensor], arch: OriginalArchitecture
) -> tuple[NormalizingFlow, int | None]:
    """Build the flowood flow for ``arch`` and load an original checkpoint into it (eval mode).

    Args:
        checkpoint: path of a file saved by the original scripts, or an already loaded state dict.
        arch: the original model's flags.

    Returns:
        ``(flow, epoch)``; ``epoch`` is the checkpoint's ``epoch`` entry (``None`` for a bare state dict).
    """
    name, options = arch.flowood_model()
    if isinstance(checkpoint, dict):
        state, epoch = dict(checkpoint), None
    else:
        state, epoch = load_original_checkpoint(checkpoint)
    check_finite_weights(state, checkpoint if not isinstance(checkpoint, dict) else "the state dict")
    try:
        flow = build_flow(name, arch.input_shape(), **options)
    except ValueError as err:
        raise ConfigError(f"--flow {arch.flow}: {err}") from None
    flow.load_state_dict(map_original_state_dict(state, flow))
    return flow.eval(), epoch


def write_run(
    flow: NormalizingFlow,
    out: str | Path,
    *,
    dataset: str | None,
    ood: list[str] | None = None,
    train: dict[str, Any] | None = None,
    provenance: dict[str, str] | None = None,
) -> Path:
    """Write ``flow`` as a flowood run directory: ``config.yaml`` and ``model.safetensors``.

    ``evaluate``, ``visualize``, ``report`` and ``benchmark`` read such a directory like one written by
    ``flowood train``; it has no ``checkpoints/`` (no optimiser state), so it cannot be resumed.
    """
    from flowood.train.checkpoint import save_weights
    from flowood.train.config import config_from_dict

    out = Path(out)
    if out.is_file():
        raise ConfigError(f"--out {out} is a file; give a new directory for the run")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new --out directory")
    raw: dict[str, Any] = {
        "model": {"name": flow.name, **flow.config},
        "data": {"dataset": dataset or "fashionmnist", "ood": list(ood or [])},
        "train": dict(train or {}),
    }
    cfg = config_from_dict(raw)
    files = RunDir(out)
    created = not out.exists()
    files.claim(new=True)  # the lock: a second convert into the same new directory is refused
    try:
        if files.has_run_files():  # another process wrote a run here before the lock was taken
            raise ConfigError(f"{out} exists and is not empty; choose a new --out directory")
        cfg.save(files.config)
        meta = {"config": str(cfg.to_dict()), "input_shape": ",".join(map(str, flow.input_shape))}
        meta.update(provenance or {})
        save_weights(files.model, flow.state_dict(), meta)
    except BaseException:
        # A run without weights would be taken for a converted run: leave the directory as it was (empty).
        for path in (files.config, files.model):
            path.unlink(missing_ok=True)
        files.release()
        files.lock_file.unlink(missing_ok=True)
        if created:
            out.rmdir()
        raise
    files.release()
    files.lock_file.unlink(missing_ok=True)
    return out
