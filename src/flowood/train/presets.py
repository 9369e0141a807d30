"""Named configurations: the paper's four training commands plus small CPU-sized variants.

Each preset is a plain nested dict with ``model`` (arguments of :func:`flowood.build_flow`),
``data`` and ``train`` sections; :mod:`flowood.train.config` validates and types it.
Numbers follow the original code's README (see ``../shared/REFERENCE.md`` section 2).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from flowood.data import dataset_info
from flowood.errors import ConfigError
from flowood.flows import build_flow

# How the original's train_unsup.py trained, for every paper preset: the loss is the mean NLL in nats per
# image, gradients are clipped at 100 per optimizer group (weight-norm gains their own group for RealNVP),
# --weight_decay defaults to 5e-5 (RealNVP: gains only; Glow: RMSprop's decay on all parameters), st-nets
# start from random weights (init_zeros=False; the Glow highway's output conv is zero either way).
_ORIGINAL_TRAINING = {"grad_clip": 100.0, "loss_scale": "nats", "grad_clip_scope": "per_group", "weight_decay": 5e-5}

# What still differs from the original's runs of these commands, for every paper preset.
_REMAINING = (
    " Remaining differences from the original's runs: its epoch loop runs num_epochs + 1 epochs; its data "
    "order and dequantisation noise come from other random streams (same distributions); its reported "
    "bits/dim carry a stray +log2(256/255) = 0.0056 per dimension, flowood's are exact."
)

PRESETS: dict[str, dict[str, Any]] = {
    "realnvp-fashionmnist": {
        "description": "Paper: RealNVP on FashionMNIST (2 scales, 6 blocks, 64 channels, Adam 5e-5, batch 32, "
        "81 epochs; wd 5e-5 on weight-norm gains, the script's default that the command keeps; nats loss, "
        "per-group clipping at 100; random st-net init)." + _REMAINING,
        "paper": True,
        "model": {
            "name": "realnvp",
            "num_scales": 2,
            "num_blocks": 6,
            "mid_channels": 64,
            "st_net": "resnet",
            "init_zeros": False,
        },
        "data": {"dataset": "fashionmnist", "ood": ["mnist", "notmnist"]},
        "train": {
            "optimizer": "adam",
            "lr": 5e-5,
            "batch_size": 32,
            "epochs": 81,
            **_ORIGINAL_TRAINING,
            "weight_decay_scope": "gains",
        },
    },
    "realnvp-celeba": {
        "description": "Paper: RealNVP on CelebA/CIFAR-10/SVHN (3 scales, 8 blocks, 64 channels, Adam 1e-4, batch 32, "
        "101 epochs; wd 5e-5 on weight-norm gains; nats loss, per-group clipping at 100; random st-net init). "
        "CelebA is read by flowood's loader (the original's own CelebA transform is not reproduced)." + _REMAINING,
        "paper": True,
        "model": {
            "name": "realnvp",
            "num_scales": 3,
            "num_blocks": 8,
            "mid_channels": 64,
            "st_net": "resnet",
            "init_zeros": False,
        },
        "data": {"dataset": "celeba", "ood": ["svhn", "cifar10"]},
        "train": {
            "optimizer": "adam",
            "lr": 1e-4,
            "batch_size": 32,
            "epochs": 101,
            **_ORIGINAL_TRAINING,
            "weight_decay_scope": "gains",
        },
    },
    "glow-fashionmnist": {
        "description": "Paper: Glow on FashionMNIST (2 scales x 16 steps, 200 channels, 3 blocks, plain 1x1 "
        "convolutions, RMSprop 5e-5, batch 32, 151 epochs; RMSprop's wd 5e-5 on all parameters, the script's "
        "default; nats loss, clipping at 100 over its one group)." + _REMAINING,
        "paper": True,
        "model": {
            "name": "glow",
            "num_scales": 2,
            "num_steps": 16,
            "mid_channels": 200,
            "num_blocks": 3,
            "st_net": "highway",
            "lu_decomposed": False,
        },
        "data": {"dataset": "fashionmnist", "ood": ["mnist", "notmnist"]},
        "train": {
            "optimizer": "rmsprop",
            "lr": 5e-5,
            "batch_size": 32,
            "epochs": 151,
            **_ORIGINAL_TRAINING,
            "weight_decay_scope": "all",
        },
    },
    "glow-celeba": {
        "description": "Paper: Glow on CelebA/CIFAR-10/SVHN (3 scales x 8 steps, 400 channels, 3 blocks, plain 1x1 "
        "convolutions, RMSprop 1e-5, batch 32, 161 epochs; RMSprop's wd 5e-5 on all parameters; nats loss, "
        "clipping at 100 over its one group)." + _REMAINING,
        "paper": True,
        "model": {
            "name": "glow",
            "num_scales": 3,
            "num_steps": 8,
            "mid_channels": 400,
            "num_blocks": 3,
            "st_net": "highway",
            "lu_decomposed": False,
        },
        "data": {"dataset": "celeba", "ood": ["svhn", "cifar10"]},
        "train": {
            "optimizer": "rmsprop",
            "lr": 1e-5,
            "batch_size": 32,
            "epochs": 161,
            **_ORIGINAL_TRAINING,
            "weight_decay_scope": "all",
        },
    },
}

# Small variants that train on 2 CPU cores in minutes on the embedded bundle.
PRESETS.update(
    {
        "demo": {
            "description": "CPU demo: small RealNVP on embedded FashionMNIST, one epoch (about 2 min on 2 idle cores, "
            "capped at 4)",
            "paper": False,
            "model": {"name": "realnvp", "num_scales": 2, "num_blocks": 2, "mid_channels": 16, "st_net": "resnet"},
            "data": {"dataset": "fashionmnist-mini", "ood": ["mnist-mini", "glyphs"], "test_limit": 1000},
            "train": {
                "optimizer": "adam",
                "lr": 1e-3,
                "batch_size": 64,
                "epochs": 1,
                "grad_clip": 100.0,
                "warmup_steps": 10,
                "max_minutes": 4.0,
                "num_samples": 36,
            },
        },
        "realnvp-fashionmnist-small": {
            "description": "CPU-sized RealNVP on the embedded FashionMNIST bundle",
            "paper": False,
            "model": {"name": "realnvp", "num_scales": 2, "num_blocks": 2, "mid_channels": 32, "st_net": "resnet"},
            "data": {"dataset": "fashionmnist-mini", "ood": ["mnist-mini", "glyphs"]},
            "train": {
                "optimizer": "adam",
                "lr": 5e-4,
                "batch_size": 64,
                "epochs": 5,
                "grad_clip": 100.0,
                "warmup_steps": 50,
            },
        },
        "glow-fashionmnist-small": {
            "description": "CPU-sized Glow on the embedded FashionMNIST bundle",
            "paper": False,
            "model": {
                "name": "glow",
                "num_scales": 2,
                "num_steps": 4,
                "mid_channels": 32,
                "num_blocks": 1,
                "st_net": "highway",
            },
            "data": {"dataset": "fashionmnist-mini", "ood": ["mnist-mini", "glyphs"]},
            "train": {
                "optimizer": "rmsprop",
                "lr": 5e-4,
                "batch_size": 64,
                "epochs": 5,
                "grad_clip": 100.0,
                "warmup_steps": 50,
            },
        },
        "cycle-mask-fashionmnist-small": {
            "description": "CPU-sized cycle-mask RealNVP (paper sec. 6) on the embedded FashionMNIST bundle",
            "paper": False,
            "model": {"name": "realnvp-cycle-mask", "num_blocks": 2, "mid_channels": 16, "st_net": "resnet"},
            "data": {"dataset": "fashionmnist-mini", "ood": ["mnist-mini", "glyphs"]},
            "train": {
                "optimizer": "adam",
                "lr": 5e-4,
                "batch_size": 64,
                "epochs": 5,
                "grad_clip": 100.0,
                "warmup_steps": 50,
            },
        },
    }
)

# Vector flows (paper section 8 and appendix K): the tabular RealNVP (MLP st-nets, alternating half masks,
# s = w·tanh(raw)) on standardised vectors. Statistics always come from the in-distribution training split.
_TABULAR_MODEL = {"name": "tabular", "num_couplings": 6, "hidden_dim": 256, "num_layers": 2}
PRESETS.update(
    {
        "tabular-embeddings": {
            "description": "Tabular flow on CNN embeddings (`flowood embed` .npz; set data.dataset=embeddings:FILE): "
            "log features, constant features dropped, PCA-whitened, input noise 0.3, st-net dropout 0.2, Adam 3e-4, "
            "early stopping on 5 % of the training vectors (docs/embeddings.md)",
            "paper": False,
            "input_shape": [1280],
            "model": dict(_TABULAR_MODEL, dropout=0.2),
            "data": {
                "dataset": "embeddings:fmnist_lite0.npz",
                "ood": ["embeddings:mnist_lite0.npz"],
                "transform": "log",
                "drop_constant": True,
                "whiten": True,
            },
            "train": {
                "optimizer": "adam",
                "lr": 3e-4,
                "batch_size": 128,
                "epochs": 30,
                "grad_clip": 100.0,
                "warmup_steps": 0,
                "input_noise": 0.3,
                "eval_batch_size": 1024,
                "sample_every": 0,
                "early_stopping": {"patience": 4, "val_fraction": 0.05},
            },
        },
        "tabular-breast-cancer": {
            "description": "Paper app. K protocol on scikit-learn's breast-cancer table: benign in, malignant OOD "
            "(seconds on a CPU)",
            "paper": False,
            "model": {"name": "tabular", "num_couplings": 6, "hidden_dim": 64, "num_layers": 2},
            "data": {
                "dataset": "breast-cancer",
                "classes": [1],
                "ood": ["breast-cancer"],
                "ood_classes": [0],
            },
            "train": {
                "optimizer": "adam",
                "lr": 1e-3,
                "batch_size": 32,
                "epochs": 25,
                "grad_clip": 100.0,
                "warmup_steps": 20,
                "input_noise": 0.05,
                "sample_every": 0,
            },
        },
        "tabular-miniboone": {
            "description": "Paper app. K: MINIBOONE, signal in / background OOD, normalised with signal training "
            "statistics (RealNVPTabular: 6 couplings, 256 hidden, 2 layers)",
            "paper": True,
            "model": dict(_TABULAR_MODEL),
            "data": {
                "dataset": "miniboone",
                "options": {"in_class": 1},
                "classes": [1],
                "ood": ["miniboone"],
                "ood_classes": [0],
                "standardize": False,
            },
            "train": {
                "optimizer": "adam",
                "lr": 1e-4,
                "batch_size": 256,
                "epochs": 50,
                "grad_clip": 100.0,
                "warmup_steps": 100,
                "sample_every": 0,
            },
        },
        "tabular-hepmass": {
            "description": "Paper app. K: HEPMASS, signal in / background OOD, normalised with signal training "
            "statistics (RealNVPTabular: 6 couplings, 256 hidden, 2 layers)",
            "paper": True,
            "model": dict(_TABULAR_MODEL),
            "data": {
                "dataset": "hepmass",
                "options": {"in_class": 1},
                "classes": [1],
                "ood": ["hepmass"],
                "ood_classes": [0],
                "standardize": False,
            },
            "train": {
                "optimizer": "adam",
                "lr": 1e-4,
                "batch_size": 256,
                "epochs": 20,
                "grad_clip": 100.0,
                "warmup_steps": 100,
                "sample_every": 0,
            },
        },
    }
)

IMAGE_SHAPES = {
    "fashionmnist": (1, 28, 28),
    "mnist": (1, 28, 28),
    "celeba": (3, 32, 32),
    "cifar10": (3, 32, 32),
    "svhn": (3, 32, 32),
}


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)} (see `flowood presets`)")
    return copy.deepcopy(PRESETS[name])


def preset_parameter_count(name: str) -> int:
    """Number of trainable parameters of the preset's model, built on the meta device (no memory)."""
    preset = get_preset(name)
    model = dict(preset["model"])
    arch = model.pop("name")
    dataset = preset["data"]["dataset"]
    pca_dim = preset["data"].get("pca_dim")
    shape = (
        ((pca_dim,) if pca_dim else None)
        or preset.get("input_shape")
        or IMAGE_SHAPES.get(dataset)
        or tuple(dataset_info(dataset).shape or ())
    )
    with torch.device("meta"):
        flow = build_flow(arch, shape, **model)
    return sum(p.numel() for p in flow.parameters() if p.requires_grad)


# Neural spline and masked autoregressive variants of the vector presets (issue 16, item 5). Widths are chosen
# so that each has about the parameter count of the affine preset it varies (docs/tabular.md compares them).
def _vector_variant(base: str, description: str, model: dict[str, Any]) -> dict[str, Any]:
    preset = copy.deepcopy(PRESETS[base])
    preset["description"] = description
    preset["model"] = model
    return preset


PRESETS.update(
    {
        "tabular-spline-breast-cancer": _vector_variant(
            "tabular-breast-cancer",
            "tabular-breast-cancer with rational-quadratic spline couplings (6 couplings, 8 bins on [-3, 3], "
            "32 hidden units: about the affine preset's parameter count)",
            {"name": "tabular", "coupling": "spline", "num_couplings": 6, "hidden_dim": 32, "num_layers": 2},
        ),
        "maf-breast-cancer": _vector_variant(
            "tabular-breast-cancer",
            "tabular-breast-cancer with a masked autoregressive flow (5 affine MADE layers, 2 x 92 hidden "
            "units: about the affine preset's parameter count)",
            {"name": "maf", "num_layers": 5, "hidden_dim": 92, "num_hidden": 2},
        ),
    }
)

PRESETS.update(
    {
        "tabular-spline-embeddings": _vector_variant(
            "tabular-embeddings",
            "tabular-embeddings with rational-quadratic spline couplings (6 couplings, 8 bins on [-3, 3], 68 hidden "
            "units: about the affine preset's parameter count)",
            {
                "name": "tabular",
                "coupling": "spline",
                "num_couplings": 6,
                "hidden_dim": 68,
                "num_bins": 8,
                "dropout": 0.2,
            },
        ),
        "maf-embeddings": _vector_variant(
            "tabular-embeddings",
            "tabular-embeddings with a masked autoregressive flow (3 affine MADE layers, 2 x 512 hidden units: about "
            "the affine preset's parameter count)",
            {"name": "maf", "num_layers": 3, "hidden_dim": 512, "num_hidden": 2, "dropout": 0.2},
        ),
    }
)
