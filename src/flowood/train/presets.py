"""Named configurations: the paper's four training commands, its vector protocols and small CPU-sized variants.

Each preset is a frozen :class:`Preset`; its ``model`` (arguments of :func:`flowood.build_flow`), ``data`` and
``train`` sections are the overrides of :class:`flowood.train.config.RunConfig`'s defaults, and
:func:`get_preset` hands them out as the plain nested dict that :func:`flowood.train.config.config_from_dict`
validates (``flowood train --preset NAME``). Presets that share settings share them through the bases below
(functions and dicts composed with ``**``) or :meth:`Preset.variant`; no block is copied.
Numbers follow the original code's README (see ``../shared/REFERENCE.md`` section 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from flowood.data import dataset_info
from flowood.errors import ConfigError
from flowood.flows import build_flow


def _freeze(value: Any) -> Any:
    """Read-only view of a nested config value: mappings -> MappingProxyType, lists -> tuples."""
    if isinstance(value, MappingProxyType):  # already frozen here: shared, not copied, by variants
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """A fresh plain copy (dicts and lists, what YAML's safe_dump writes) of a frozen value."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


_DIFFERENCES_LEAD = "Remaining differences from the original's runs:"


@dataclass(frozen=True)
class Preset:
    """One named run configuration.

    Attributes:
        name: the name ``flowood train --preset`` takes.
        description: what it trains and on what, one or two sentences (``flowood presets``).
        model: arguments of :func:`flowood.build_flow`, ``name`` included.
        data: overrides of :class:`flowood.train.config.DataConfig`.
        train: overrides of :class:`flowood.train.config.TrainConfig`.
        paper: a configuration of the paper (listed by ``flowood presets --paper``).
        reference: where the configuration comes from (paper section, the original's README command).
        differences: what still differs from the original's runs of it ("" when nothing is known to).
        input_shape: the shape of one sample when neither the dataset nor ``data.pca_dim`` gives it (vectors
            from a user file).
    """

    name: str
    description: str
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    train: Mapping[str, Any]
    paper: bool = False
    reference: str = ""
    differences: str = ""
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        # Frozen all the way down: a preset is shared by its variants, so nobody may edit one in place.
        for section in ("model", "data", "train"):
            object.__setattr__(self, section, _freeze(getattr(self, section)))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))

    def variant(self, name: str, description: str, **changes: Any) -> Preset:
        """This preset under another name with some fields replaced (the others are shared, not copied)."""
        return dataclasses.replace(self, name=name, description=description, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A fresh nested dict in the run-config layout (the form :func:`get_preset` returns)."""
        text = f"{self.description} {_DIFFERENCES_LEAD} {self.differences}" if self.differences else self.description
        out: dict[str, Any] = {"description": text, "paper": self.paper}
        if self.input_shape is not None:
            out["input_shape"] = list(self.input_shape)
        out.update(model=_thaw(self.model), data=_thaw(self.data), train=_thaw(self.train))
        return out


PRESETS: dict[str, Preset] = {}


def _register(*presets: Preset) -> None:
    for p in presets:
        if p.name in PRESETS:
            raise ValueError(f"preset {p.name!r} registered twice")
        PRESETS[p.name] = p


# ------------------------------------------------------------------------------------------ paper image presets

# How the original's train_unsup.py trained, for every paper preset: the loss is the mean NLL in nats per
# image, gradients are clipped at 100 per optimizer group (weight-norm gains their own group for RealNVP),
# --weight_decay defaults to 5e-5 (RealNVP: gains only; Glow: RMSprop's decay on all parameters), st-nets
# start from random weights (init_zeros=False; the Glow highway's output conv is zero either way).
_ORIGINAL_RUNS = (
    "its epoch loop runs num_epochs + 1 epochs; its data order and dequantisation noise come from other random "
    "streams (same distributions); its reported bits/dim carry a stray +log2(256/255) = 0.0056 per dimension, "
    "flowood's are exact."
)
_PAPER_FASHION = {"dataset": "fashionmnist", "ood": ["mnist", "notmnist"]}
_PAPER_CELEBA = {"dataset": "celeba", "ood": ["svhn", "cifar10"]}


def _paper_train(optimizer: str, lr: float, epochs: int) -> dict[str, Any]:
    """The original's train_unsup.py settings; weight decay on the gains (RealNVP/Adam) or on all (Glow/RMSprop)."""
    return {
        "optimizer": optimizer,
        "lr": lr,
        "batch_size": 32,
        "epochs": epochs,
        "grad_clip": 100.0,
        "loss_scale": "nats",
        "grad_clip_scope": "per_group",
        "weight_decay": 5e-5,
        "weight_decay_scope": "gains" if optimizer == "adam" else "all",
    }


def _paper_realnvp(num_scales: int, num_blocks: int) -> dict[str, Any]:
    return {
        "name": "realnvp",
        "num_scales": num_scales,
        "num_blocks": num_blocks,
        "mid_channels": 64,
        "st_net": "resnet",
        "init_zeros": False,
    }


def _paper_glow(num_scales: int, num_steps: int, mid_channels: int) -> dict[str, Any]:
    return {
        "name": "glow",
        "num_scales": num_scales,
        "num_steps": num_steps,
        "mid_channels": mid_channels,
        "num_blocks": 3,
        "st_net": "highway",
        "lu_decomposed": False,
    }


def _paper_image(
    name: str,
    description: str,
    command: str,
    *,
    model: Mapping[str, Any],
    data: Mapping[str, Any],
    train: Mapping[str, Any],
) -> Preset:
    """A preset of one of the original README's four image commands (what still differs: ``_ORIGINAL_RUNS``)."""
    return Preset(
        name=name,
        description=description,
        model=model,
        data=data,
        train=train,
        paper=True,
        reference=f"the original README's {command} command; the paper's likelihood-failure experiment",
        differences=_ORIGINAL_RUNS,
    )


_register(
    _paper_image(
        "realnvp-fashionmnist",
        "Paper: RealNVP on FashionMNIST (2 scales, 6 blocks, 64 channels, Adam 5e-5, batch 32, 81 "
        "epochs; wd 5e-5 on weight-norm gains, the script's default that the command keeps; nats loss, per-group "
        "clipping at 100; random st-net init).",
        "RealNVP FashionMNIST",
        model=_paper_realnvp(num_scales=2, num_blocks=6),
        data=_PAPER_FASHION,
        train=_paper_train("adam", lr=5e-5, epochs=81),
    ),
    _paper_image(
        "realnvp-celeba",
        "Paper: RealNVP on CelebA/CIFAR-10/SVHN (3 scales, 8 blocks, 64 channels, Adam 1e-4, batch 32, "
        "101 epochs; wd 5e-5 on weight-norm gains; nats loss, per-group clipping at 100; random st-net init). "
        "CelebA is read by flowood's loader (the original's own CelebA transform is not reproduced).",
        "RealNVP CelebA",
        model=_paper_realnvp(num_scales=3, num_blocks=8),
        data=_PAPER_CELEBA,
        train=_paper_train("adam", lr=1e-4, epochs=101),
    ),
    _paper_image(
        "glow-fashionmnist",
        "Paper: Glow on FashionMNIST (2 scales x 16 steps, 200 channels, 3 blocks, plain 1x1 "
        "convolutions, RMSprop 5e-5, batch 32, 151 epochs; RMSprop's wd 5e-5 on all parameters, the script's "
        "default; nats loss, clipping at 100 over its one group).",
        "Glow FashionMNIST",
        model=_paper_glow(num_scales=2, num_steps=16, mid_channels=200),
        data=_PAPER_FASHION,
        train=_paper_train("rmsprop", lr=5e-5, epochs=151),
    ),
    _paper_image(
        "glow-celeba",
        "Paper: Glow on CelebA/CIFAR-10/SVHN (3 scales x 8 steps, 400 channels, 3 blocks, plain 1x1 "
        "convolutions, RMSprop 1e-5, batch 32, 161 epochs; RMSprop's wd 5e-5 on all parameters; nats loss, "
        "clipping at 100 over its one group).",
        "Glow CelebA",
        model=_paper_glow(num_scales=3, num_steps=8, mid_channels=400),
        data=_PAPER_CELEBA,
        train=_paper_train("rmsprop", lr=1e-5, epochs=161),
    ),
)

# ------------------------------------------------------------------------ small presets (2 CPU cores, minutes)

# Flowood's own training settings: mean bits/dim loss, one global clip at 100 (TrainConfig's defaults).
_SMALL_TRAIN = {"optimizer": "adam", "lr": 5e-4, "batch_size": 64, "epochs": 5, "grad_clip": 100.0, "warmup_steps": 50}
_MINI_DATA = {"dataset": "fashionmnist-mini", "ood": ["mnist-mini", "glyphs"]}


def _small_realnvp(mid_channels: int) -> dict[str, Any]:
    return {"name": "realnvp", "num_scales": 2, "num_blocks": 2, "mid_channels": mid_channels, "st_net": "resnet"}


_register(
    Preset(
        name="demo",
        description="CPU demo: small RealNVP on embedded FashionMNIST, one epoch (about 2 min on 2 idle cores, "
        "capped at 4)",
        model=_small_realnvp(mid_channels=16),
        data={**_MINI_DATA, "test_limit": 1000},
        train={**_SMALL_TRAIN, "lr": 1e-3, "epochs": 1, "warmup_steps": 10, "max_minutes": 4.0, "num_samples": 36},
    ),
    Preset(
        name="realnvp-fashionmnist-small",
        description="CPU-sized RealNVP on the embedded FashionMNIST bundle",
        model=_small_realnvp(mid_channels=32),
        data=_MINI_DATA,
        train=_SMALL_TRAIN,
    ),
    Preset(
        name="glow-fashionmnist-small",
        description="CPU-sized Glow on the embedded FashionMNIST bundle",
        model={
            "name": "glow",
            "num_scales": 2,
            "num_steps": 4,
            "mid_channels": 32,
            "num_blocks": 1,
            "st_net": "highway",
        },
        data=_MINI_DATA,
        train={**_SMALL_TRAIN, "optimizer": "rmsprop"},
    ),
    Preset(
        name="cycle-mask-fashionmnist-small",
        description="CPU-sized cycle-mask RealNVP (paper sec. 6) on the embedded FashionMNIST bundle",
        model={"name": "realnvp-cycle-mask", "num_blocks": 2, "mid_channels": 16, "st_net": "resnet"},
        data=_MINI_DATA,
        train=_SMALL_TRAIN,
        reference="paper sec. 6 (cycle-mask coupling)",
    ),
)

# ------------------------------------------------------------------- transformer flows (issue 24): TarFlow, Jet

# Full FashionMNIST (Debian package dataset-fashion-mnist), scored against the embedded MNIST digits and glyphs.
_CPU_FASHION = {"dataset": "fashionmnist", "ood": ["mnist-mini", "glyphs"]}
# TarFlow's and Jet's optimiser: AdamW with beta2 = 0.95 and decoupled weight decay on every parameter (neither has
# weight-norm gains). Neither paper's cosine decay is available here (warmup, then a constant rate).
_TRANSFORMER_TRAIN = {
    "optimizer": "adamw",
    "betas": [0.9, 0.95],
    "weight_decay_scope": "all",
    "sample_every": 1,
}


def _transformer_train(lr: float, batch_size: int, epochs: int, warmup_steps: int, **extra: Any) -> dict[str, Any]:
    return {
        **_TRANSFORMER_TRAIN,
        "lr": lr,
        "batch_size": batch_size,
        "epochs": epochs,
        "warmup_steps": warmup_steps,
        **extra,
    }


def _tarflow(patch_size: int, width: int, num_blocks: int, num_layers: int, heads: int) -> dict[str, Any]:
    return {
        "name": "tarflow",
        "patch_size": patch_size,
        "num_blocks": num_blocks,
        "num_layers": num_layers,
        "width": width,
        "heads": heads,
    }


def _jet(
    patch_size: int, num_couplings: int, num_layers: int, width: int, heads: int, spatial_every: int
) -> dict[str, Any]:
    return {
        "name": "jet",
        "patch_size": patch_size,
        "num_couplings": num_couplings,
        "num_layers": num_layers,
        "width": width,
        "heads": heads,
        "spatial_every": spatial_every,
    }


# TarFlow's README: unconditional ImageNet 64x64 density modelling, fp32, uniform noise, AdamW(0.9, 0.95) with weight
# decay 1e-4, lr 1e-4 with one warm-up epoch then cosine to 1e-6, batch 256, 100 epochs, no gradient clipping.
_TARFLOW_DIFFERENCES = (
    "no cosine decay (constant after warm-up); inputs are logits of the dequantised image, not its [-1, 1] scaling "
    "(the likelihood is the same 8-bit likelihood); the loss is bits/dim, TarFlow's is nats per dimension (a factor "
    "ln 2, which Adam's update ignores); 12 heads of 64 channels as TarFlow; the output projection's bias starts at "
    "zero."
)
# Jet's big_vision config proj/jet/imagenet64: 32 couplings of 2 ViT blocks (width 512, 8 heads), patch 4, every 5th
# coupling spatial; Adam(b2 = 0.95) with decoupled weight decay 1e-5, lr 3e-4 with 10 % warm-up then cosine, batch
# 1024, 200 epochs, gradient clipping at norm 1 of the bits/dim loss.
_JET_DIFFERENCES = (
    "no cosine decay (constant after warm-up); inputs are logits of the dequantised image, not its [-1, 1] scaling "
    "(the likelihood is the same 8-bit likelihood); fp32 Adam moments (big_vision keeps the first in bf16); a spatial "
    "coupling's conditioner reads its T/2 conditioning tokens whole (big_vision reshapes them into T half-tokens); "
    "no activation recomputation."
)


def _cpu_transformer(name: str, description: str, model: dict[str, Any], weight_decay: float, paper: str) -> Preset:
    """A transformer flow on full FashionMNIST for one CPU core: AdamW 2e-3 (chosen on TarFlow's test bits/dim per
    CPU-minute), batch 64, 100 warm-up steps, 3 epochs (about 10 CPU-minutes), capped at 15 wall-clock minutes."""
    return Preset(
        name=name,
        description=description,
        model=model,
        data=_CPU_FASHION,
        train=_transformer_train(
            lr=2e-3, batch_size=64, epochs=3, warmup_steps=100, weight_decay=weight_decay, max_minutes=15.0
        ),
        reference=f"{paper}, sized for a CPU",
    )


_TARFLOW_IN64 = Preset(
    name="tarflow-imagenet64",
    description="GPU: TarFlow's unconditional ImageNet 64x64 likelihood configuration (patch 2, width 768, 8 blocks "
    "x 8 layers, 12 heads; AdamW 1e-4, batch 256, 100 epochs): 2.99 bits/dim in the paper. Parameters: 460,142,784, "
    "the count of TarFlow's code for these layers (the paper states none).",
    model=_tarflow(patch_size=2, width=768, num_blocks=8, num_layers=8, heads=12),
    data={"dataset": "imagenet64", "ood": []},
    train=_transformer_train(lr=1e-4, batch_size=256, epochs=100, warmup_steps=5000, weight_decay=1e-4, grad_clip=None),
    reference="TarFlow README, 'Unconditional ImageNet64 density modelling'",
    differences=_TARFLOW_DIFFERENCES,
)
_JET_IN64 = Preset(
    name="jet-imagenet64",
    description="GPU: Jet's ImageNet 64x64 configuration (patch 4, 32 couplings of 2 ViT layers, width 512, 8 heads, "
    "every 5th coupling spatial; Adam(b2 0.95) 3e-4, batch 1024, 200 epochs): 3.72 bits/dim in the paper. "
    "Parameters: 207,005,472; big_vision's layers give 207,177,216 trainable (+2,170,880 frozen permutation "
    "matrices), the gap being the 6 spatial couplings' conditioner input; the paper states no count.",
    model=_jet(patch_size=4, num_couplings=32, num_layers=2, width=512, heads=8, spatial_every=5),
    data={"dataset": "imagenet64", "ood": []},
    train=_transformer_train(
        lr=3e-4, batch_size=1024, epochs=200, warmup_steps=25_000, weight_decay=1e-5, grad_clip=1.0
    ),
    reference="big_vision configs/proj/jet/imagenet64.py",
    differences=_JET_DIFFERENCES,
)
_CIFAR = {"dataset": "cifar10", "ood": ["svhn", "celeba"]}
_register(
    _cpu_transformer(
        "tarflow-fashionmnist-cpu",
        "CPU TarFlow on full FashionMNIST (patch 4: 49 tokens of 16 values; 4 blocks of 2 causal Transformer layers, "
        "width 64, 4 heads; 425,088 parameters; AdamW 2e-3, batch 64, 3 epochs): about 10 CPU-minutes on one core; "
        "lr and size chosen on test bits/dim per CPU-minute (benchmarks/RESULTS.md)",
        _tarflow(patch_size=4, width=64, num_blocks=4, num_layers=2, heads=4),
        weight_decay=1e-4,
        paper="TarFlow (Zhai et al. 2025)",
    ),
    _cpu_transformer(
        "jet-fashionmnist-cpu",
        "CPU Jet on full FashionMNIST (patch 4: 49 tokens of 16 values; 8 channel couplings with 1-layer ViT "
        "conditioners, width 64, 4 heads; 438,912 parameters; AdamW 2e-3, batch 64, 3 epochs): about 10 CPU-minutes "
        "on one core (benchmarks/RESULTS.md)",
        _jet(patch_size=4, num_couplings=8, num_layers=1, width=64, heads=4, spatial_every=0),
        weight_decay=1e-5,
        paper="Jet (Kolesnikov et al. 2025)",
    ),
    _TARFLOW_IN64,
    _TARFLOW_IN64.variant(
        "tarflow-cifar10",
        "GPU: TarFlow's ImageNet 64x64 likelihood architecture and training on CIFAR-10 (256 tokens of patch 2; the "
        "paper reports no CIFAR-10 run). Parameters: 455,424,192, as TarFlow's code would build.",
        data=_CIFAR,
        reference="TarFlow README configuration, applied to CIFAR-10",
    ),
    _JET_IN64,
    _JET_IN64.variant(
        "jet-imagenet64-large",
        "GPU: Jet's larger ImageNet 64x64 model (64 couplings of 5 ViT layers, otherwise as jet-imagenet64): 3.66 "
        "bits/dim in the paper. Parameters: 1,019,268,672 (big_vision's layers: 1,019,612,160).",
        model=_jet(patch_size=4, num_couplings=64, num_layers=5, width=512, heads=8, spatial_every=5),
        reference="big_vision configs/proj/jet/imagenet64.py (its docstring's 64-coupling, depth-5 variant)",
    ),
    _JET_IN64.variant(
        "jet-cifar10",
        "GPU: Jet's ImageNet 64x64 configuration and training on CIFAR-10 (64 tokens of patch 4; the paper's CIFAR-10 "
        "numbers come from ImageNet-21k pre-training, not reproduced here). Parameters: 204,154,656 (big_vision's "
        "layers: 204,031,488).",
        data=_CIFAR,
        reference="big_vision configs/proj/jet/imagenet64.py, applied to CIFAR-10",
    ),
)

# --------------------------------------------------------------------------------------------- vector presets

# Vector flows (paper section 8 and appendix K): the tabular RealNVP (MLP st-nets, alternating half masks,
# s = w·tanh(raw)) on standardised vectors. Statistics always come from the in-distribution training split.
_TABULAR_MODEL = {"name": "tabular", "num_couplings": 6, "hidden_dim": 256, "num_layers": 2}


def _vector_train(lr: float, batch_size: int, epochs: int, warmup_steps: int, **extra: Any) -> dict[str, Any]:
    """Adam, clip at 100, no sample grids (vectors have no picture); ``extra`` keys come before ``sample_every``."""
    return {
        "optimizer": "adam",
        "lr": lr,
        "batch_size": batch_size,
        "epochs": epochs,
        "grad_clip": 100.0,
        "warmup_steps": warmup_steps,
        **extra,
        "sample_every": 0,
    }


def _uci_signal_vs_background(name: str) -> dict[str, Any]:
    """Appendix K's class-conditional UCI protocol: signal (class 1) in, background (class 0) OOD."""
    return {
        "dataset": name,
        "options": {"in_class": 1},
        "classes": [1],
        "ood": [name],
        "ood_classes": [0],
        "standardize": False,
    }


_UCI_DESCRIPTION = (
    "Paper app. K: {table}, signal in / background OOD, normalised with signal training statistics "
    "(RealNVPTabular: 6 couplings, 256 hidden, 2 layers)"
)

_EMBEDDINGS = Preset(
    name="tabular-embeddings",
    description="Tabular flow on CNN embeddings (`flowood embed` .npz; set data.dataset=embeddings:FILE): log "
    "features, constant features dropped, PCA-whitened, input noise 0.3, st-net dropout 0.2, Adam 3e-4, early "
    "stopping on 5 % of the training vectors (docs/embeddings.md)",
    model={**_TABULAR_MODEL, "dropout": 0.2},
    data={
        "dataset": "embeddings:fmnist_lite0.npz",
        "ood": ["embeddings:mnist_lite0.npz"],
        "transform": "log",
        "drop_constant": True,
        "whiten": True,
    },
    train={
        **_vector_train(lr=3e-4, batch_size=128, epochs=30, warmup_steps=0, input_noise=0.3, eval_batch_size=1024),
        "early_stopping": {"patience": 4, "val_fraction": 0.05},
    },
    reference="paper sec. 8 (flows on CNN embeddings)",
    input_shape=(1280,),
)
_BREAST_CANCER = Preset(
    name="tabular-breast-cancer",
    description="Paper app. K protocol on scikit-learn's breast-cancer table: benign in, malignant OOD (seconds "
    "on a CPU)",
    model={**_TABULAR_MODEL, "hidden_dim": 64},
    data={"dataset": "breast-cancer", "classes": [1], "ood": ["breast-cancer"], "ood_classes": [0]},
    train=_vector_train(lr=1e-3, batch_size=32, epochs=25, warmup_steps=20, input_noise=0.05),
    reference="paper app. K protocol (on a table that ships with scikit-learn)",
)
_register(
    _EMBEDDINGS,
    _BREAST_CANCER,
    Preset(
        name="tabular-miniboone",
        description=_UCI_DESCRIPTION.format(table="MINIBOONE"),
        model=_TABULAR_MODEL,
        data=_uci_signal_vs_background("miniboone"),
        train=_vector_train(lr=1e-4, batch_size=256, epochs=50, warmup_steps=100),
        paper=True,
        reference="paper app. K (MINIBOONE)",
    ),
    Preset(
        name="tabular-hepmass",
        description=_UCI_DESCRIPTION.format(table="HEPMASS"),
        model=_TABULAR_MODEL,
        data=_uci_signal_vs_background("hepmass"),
        train=_vector_train(lr=1e-4, batch_size=256, epochs=20, warmup_steps=100),
        paper=True,
        reference="paper app. K (HEPMASS)",
    ),
)

# Neural spline and masked autoregressive variants of the vector presets (issue 16, item 5). Widths are chosen
# so that each has about the parameter count of the affine preset it varies (docs/tabular.md compares them).
_register(
    _BREAST_CANCER.variant(
        "tabular-spline-breast-cancer",
        "tabular-breast-cancer with rational-quadratic spline couplings (6 couplings, 8 bins on [-3, 3], 32 hidden "
        "units: about the affine preset's parameter count)",
        model={"name": "tabular", "coupling": "spline", "num_couplings": 6, "hidden_dim": 32, "num_layers": 2},
    ),
    _BREAST_CANCER.variant(
        "maf-breast-cancer",
        "tabular-breast-cancer with a masked autoregressive flow (5 affine MADE layers, 2 x 92 hidden units: about "
        "the affine preset's parameter count)",
        model={"name": "maf", "num_layers": 5, "hidden_dim": 92, "num_hidden": 2},
    ),
    _EMBEDDINGS.variant(
        "tabular-embeddings-l2",
        "tabular-embeddings on unit-norm features: each embedding divided by its length (no log, no per-feature "
        "scaling), centred and whitened with its top 512 principal components; the default of the "
        "embedding_likelihood detector (docs/scores.md)",
        data={**_EMBEDDINGS.data, "transform": "l2", "whiten": False, "pca_dim": 512},
    ),
    _EMBEDDINGS.variant(
        "tabular-spline-embeddings",
        "tabular-embeddings with rational-quadratic spline couplings (6 couplings, 8 bins on [-3, 3], 68 hidden "
        "units: about the affine preset's parameter count)",
        model={
            "name": "tabular",
            "coupling": "spline",
            "num_couplings": 6,
            "hidden_dim": 68,
            "num_bins": 8,
            "dropout": 0.2,
        },
    ),
    _EMBEDDINGS.variant(
        "maf-embeddings",
        "tabular-embeddings with a masked autoregressive flow (3 affine MADE layers, 2 x 512 hidden units: about the "
        "affine preset's parameter count)",
        model={"name": "maf", "num_layers": 3, "hidden_dim": 512, "num_hidden": 2, "dropout": 0.2},
    ),
)

EMBEDDING_PRESETS = tuple(
    name for name, p in PRESETS.items() if str(p.data.get("dataset", "")).startswith("embeddings:")
)
"""Presets of flows on pretrained-CNN embeddings (what ``embedding_likelihood`` may train)."""

IMAGE_SHAPES = {
    "fashionmnist": (1, 28, 28),
    "mnist": (1, 28, 28),
    "celeba": (3, 32, 32),
    "cifar10": (3, 32, 32),
    "svhn": (3, 32, 32),
    "imagenet64": (3, 64, 64),
}


def find_preset(name: str) -> Preset:
    """The typed preset ``name``.

    Raises:
        ConfigError: no preset has that name (the message lists them).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)} (see `flowood presets`)")
    return PRESETS[name]


def get_preset(name: str) -> dict[str, Any]:
    """Preset ``name`` as a fresh nested dict (``description``, ``paper``, ``model``, ``data``, ``train``)."""
    return find_preset(name).to_dict()


def preset_parameter_count(name: str) -> int:
    """Number of trainable parameters of the preset's model, built on the meta device (no memory)."""
    preset = find_preset(name)
    model = _thaw(preset.model)
    arch = model.pop("name")
    dataset = preset.data["dataset"]
    pca_dim = preset.data.get("pca_dim")
    shape = (
        ((pca_dim,) if pca_dim else None)
        or preset.input_shape
        or IMAGE_SHAPES.get(dataset)
        or tuple(dataset_info(dataset).shape or ())
    )
    with torch.device("meta"):
        flow = build_flow(arch, shape, **model)
    return sum(p.numel() for p in flow.parameters() if p.requires_grad)
