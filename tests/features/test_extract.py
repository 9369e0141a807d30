"""Feature extraction: shapes, determinism, preprocessing, cache, weights handling."""

from __future__ import annotations

import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowood.errors import ConfigError, DatasetError, FlowoodError
from flowood.features import (
    EXTRACTORS,
    extract_features,
    feature_cache_dir,
    get_spec,
    hub_checkpoint_path,
    load_extractor,
    resolve_device,
    resolve_extractor,
)

from .helpers import FakeImageDataset


def _count_forwards(extractor: torch.nn.Module) -> list[int]:
    calls = [0]
    extractor.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_random_cnn_shapes_and_determinism(grey_images: np.ndarray) -> None:
    a = extract_features(grey_images, "random-cnn", batch_size=4, device="cpu", progress=False, cache=False)
    assert a.shape == (6, 64) and a.dtype == np.float32 and np.isfinite(a).all()
    # a fresh network (same fixed seed, different global RNG state) gives the same features
    torch.manual_seed(123)
    b = extract_features(
        grey_images, load_extractor("random-cnn"), batch_size=1, device="cpu", progress=False, cache=False
    )
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # uint8 pixels and floats in [0, 1] are the same images; a dataset object and (N, H, W) arrays are accepted
    c = extract_features(grey_images.astype(np.float32) / 255, "random-cnn", progress=False, cache=False)
    d = extract_features(
        FakeImageDataset(grey_images, np.zeros(6, np.int64)), "random-cnn", progress=False, cache=False
    )
    e = extract_features(torch.from_numpy(grey_images[:, 0]), "random-cnn", progress=False, cache=False)
    for other in (c, d, e):
        np.testing.assert_allclose(a, other, rtol=1e-5, atol=1e-6)
    # different images give different features
    assert not np.allclose(a[0], a[1])


def test_preprocess_grey_to_rgb_resize_and_normalise(grey_images: np.ndarray) -> None:
    ext = load_extractor("random-cnn", size=40)
    x = ext.preprocess(torch.from_numpy(grey_images[:2]))
    assert x.shape == (2, 3, 40, 40) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # grey repeated to 3 channels
    expected = F.interpolate(
        torch.from_numpy(grey_images[:2]).float() / 255,
        size=(40, 40),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    torch.testing.assert_close(x[:, :1], (expected - 0.5) / 0.5)
    # white maps to (1 - 0.5) / 0.5 = 1, black to -1
    white = ext.preprocess(torch.full((1, 1, 28, 28), 255, dtype=torch.uint8))
    black = ext.preprocess(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    torch.testing.assert_close(white, torch.ones_like(white))
    torch.testing.assert_close(black, -torch.ones_like(black))
    # RGB, non-square input: resized to the square size, channels kept
    rgb = torch.rand(2, 3, 20, 30)
    y = ext.preprocess(rgb)
    assert y.shape == (2, 3, 40, 40) and not torch.equal(y[:, 0], y[:, 1])
    # the extractor's default size applies when not given; torchvision extractors use ImageNet statistics
    assert load_extractor("random-cnn").size == get_spec("random-cnn").default_size == 32


def test_cache_hit_skips_the_network(grey_images: np.ndarray, tmp_path: Path) -> None:
    ext = load_extractor("random-cnn")
    calls = _count_forwards(ext)
    first = extract_features(grey_images, ext, batch_size=4, device="cpu", progress=False)
    assert calls[0] == 2  # two batches of 4 + 2
    assert len(list(feature_cache_dir().glob("*.npy"))) == 1
    assert feature_cache_dir().is_relative_to(tmp_path)
    again = extract_features(grey_images, ext, batch_size=4, device="cpu", progress=False)
    assert calls[0] == 2  # cache hit: no forward pass
    np.testing.assert_array_equal(first, again)
    # by name: the network is not even built on a hit
    from flowood.features import ExtractorConfig

    built: list[str] = []
    original = ExtractorConfig.build

    def counting_build(self: ExtractorConfig):  # type: ignore[no-untyped-def]
        built.append(self.spec.name)
        return original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ExtractorConfig, "build", counting_build)
        np.testing.assert_array_equal(extract_features(grey_images, "random-cnn", progress=False), first)
        assert built == []
        # other images, another size, or cache=False: recomputed
        extract_features(grey_images[:3], "random-cnn", progress=False)
        extract_features(grey_images, "random-cnn", size=48, progress=False)
        extract_features(grey_images, "random-cnn", progress=False, cache=False)
        assert built == ["random-cnn"] * 3
    assert len(list(feature_cache_dir().glob("*.npy"))) == 3


def test_torchvision_weights_missing_locally_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FlowoodError) as info:
        resolve_extractor("resnet18")
    msg = str(info.value)
    expected = tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in msg and "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "--download" in msg and "--weights" in msg
    with pytest.raises(FlowoodError, match="not available locally"):
        extract_features(np.zeros((1, 1, 8, 8), np.uint8), "efficientnet_b0", progress=False)
    with pytest.raises(FlowoodError, match="neither a local file nor a weights name"):
        resolve_extractor("resnet18", weights=str(tmp_path / "nope.pth"))


def test_torchvision_download_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    cfg = resolve_extractor("resnet18", download=True)  # allowed to proceed: the download happens at build
    with pytest.raises(FlowoodError, match=r"could not download https://download\.pytorch\.org/.*resnet18"):
        cfg.build()


def test_torchvision_from_local_files(tmp_path: Path, grey_images: np.ndarray) -> None:
    from torchvision.models import ResNet18_Weights, resnet18

    state = resnet18(weights=None).state_dict()  # stand-in for the real checkpoint (same keys and shapes)
    # 1. a user file given with --weights
    user_file = tmp_path / "my-resnet18.pth"
    torch.save(state, user_file)
    cfg = resolve_extractor("resnet18", weights=user_file, size=32)
    assert cfg.weights_id.startswith("sha256:") and cfg.mean == (0.485, 0.456, 0.406)
    feats = extract_features(grey_images[:2], cfg, device="cpu", progress=False)
    assert feats.shape == (2, 512) and np.isfinite(feats).all()
    # 2. torchvision's own checkpoint file in the hub cache: found there, loaded through torchvision, no download
    hub_file = hub_checkpoint_path(ResNet18_Weights.IMAGENET1K_V1.url)
    hub_file.parent.mkdir(parents=True)
    torch.save(state, hub_file)
    ext = load_extractor("resnet18", size=32)
    assert ext.weights_id == "ResNet18_Weights.IMAGENET1K_V1:resnet18-f37072fd.pth"
    np.testing.assert_allclose(
        extract_features(grey_images[:2], ext, progress=False, cache=False), feats, rtol=1e-4, atol=1e-5
    )
    # a file that is not a resnet18 state dict
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(FlowoodError, match="does not match"):
        resolve_extractor("resnet18", weights=bad).build()


def test_efficientnet_lite0_offline(monkeypatch: pytest.MonkeyPatch, grey_images: np.ndarray) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    ext = load_extractor("efficientnet-lite0", size=64)
    assert ext.feature_dim == 1280 and ext.mean == (0.5, 0.5, 0.5)
    feats = extract_features(grey_images[:2], ext, device="cpu", progress=False, cache=False)
    assert feats.shape == (2, 1280) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert feats.std() > 0 and not np.allclose(feats[0], feats[1])


def test_registry_and_input_errors(grey_images: np.ndarray) -> None:
    assert {"efficientnet-lite0", "random-cnn", "resnet18", "resnet50", "efficientnet_b4"} <= set(EXTRACTORS)
    assert EXTRACTORS["efficientnet_b4"].feature_dim == 1792
    assert get_spec("EfficientNet-B0").name == "efficientnet_b0"
    with pytest.raises(ConfigError, match="unknown extractor"):
        get_spec("vgg-nonexistent")
    with pytest.raises(DatasetError, match="vector"):
        extract_features(FakeImageDataset(np.zeros((3, 5), np.float32), np.zeros(3, np.int64)), "random-cnn")
    with pytest.raises(DatasetError, match="shape"):
        extract_features(np.zeros((2, 2, 8, 8), np.uint8), "random-cnn")
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        extract_features(grey_images.astype(np.float32), "random-cnn")
    with pytest.raises(ConfigError):
        extract_features(grey_images, "random-cnn", batch_size=0)
    with pytest.raises(ConfigError):
        resolve_extractor("random-cnn", size=4)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")


def test_redirected_logs_get_plain_embedding_progress_lines(capsys):
    from flowood.features.extract import LogProgress

    log = LogProgress("embed x@96px", 100, every=0.0)
    log.update(40)
    log.update(100)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "embed x@96px: 100 images"
    assert lines[1].startswith("embed x@96px: 40/100 images, ") and "img/s" in lines[1] and "min left" in lines[1]
    assert lines[2].startswith("embed x@96px: 100/100 images")
