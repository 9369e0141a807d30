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

PRESETS: dict[str, dict[str, Any]] = {
    "realnvp-fashionmnist": {
        "description": "Paper: RealNVP on FashionMNIST (2 scales, 6 blocks, 64 channels, Adam 5e-5, batch 32, "
        "81 epochs)",
        "paper": True,
        "model": {"name": "realnvp", "num_scales": 2, "num_blocks": 6, "mid_channels": 64, "st_net": "resnet"},
        "data": {"dataset": "fashionmnist", "ood": ["mnist", "notmnist"]},
        "train": {
            "optimizer": "adam",
            "lr": 5e-5,
            "weight_decay": 0.0,
            "batch_size": 32,
            "epochs": 81,
            "grad_clip": 100.0,
        },
    },
    "realnvp-celeba": {
        "description": "Paper: RealNVP on CelebA/CIFAR-10/SVHN (3 scales, 8 blocks, 64 channels, lr 1e-4, wd 5e-5, "
        "101 epochs)",
        "paper": True,
        "model": {"name": "realnvp", "num_scales": 3, "num_blocks": 8, "mid_channels": 64, "st_net": "resnet"},
        "data": {"dataset": "celeba", "ood": ["svhn", "cifar10"]},
        "train": {
            "optimizer": "adam",
            "lr": 1e-4,
            "weight_decay": 5e-5,
            "batch_size": 32,
            "epochs": 101,
            "grad_clip": 100.0,
        },
    },
    "glow-fashionmnist": {
        "description": "Paper: Glow on FashionMNIST (2 scales x 16 steps, 200 channels, 3 blocks, RMSprop 5e-5, "
        "151 epochs)",
        "paper": True,
        "model": {
            "name": "glow",
            "num_scales": 2,
            "num_steps": 16,
            "mid_channels": 200,
            "num_blocks": 3,
            "st_net": "highway",
        },
        "data": {"dataset": "fashionmnist", "ood": ["mnist", "notmnist"]},
        "train": {
            "optimizer": "rmsprop",
            "lr": 5e-5,
            "weight_decay": 0.0,
            "batch_size": 32,
            "epochs": 151,
            "grad_clip": 100.0,
        },
    },
    "glow-celeba": {
        "description": "Paper: Glow on CelebA/CIFAR-10/SVHN (3 scales x 8 steps, 400 channels, 3 blocks, RMSprop 1e-5, "
        "161 epochs)",
        "paper": True,
        "model": {
            "name": "glow",
            "num_scales": 3,
            "num_steps": 8,
            "mid_channels": 400,
            "num_blocks": 3,
            "st_net": "highway",
        },
        "data": {"dataset": "celeba", "ood": ["svhn", "cifar10"]},
        "train": {
            "optimizer": "rmsprop",
            "lr": 1e-5,
            "weight_decay": 0.0,
            "batch_size": 32,
            "epochs": 161,
            "grad_clip": 100.0,
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
