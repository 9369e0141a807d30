"""``embed_dataset`` / ``flowood embed``: the .npz bundle format and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowood.cli.app import main
from flowood.features import embed as embed_module
from flowood.features import embed_dataset, read_embeddings

from .helpers import FakeImageDataset


@pytest.fixture
def fake_loader(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Replace the dataset loader by small in-memory datasets; records (name, split) of each load."""
    loads: list[tuple[str, str]] = []
    sizes = {"train": 10, "test": 6}

    def load(name: str, split: str, **kwargs: object) -> FakeImageDataset:
        loads.append((name, split))
        if split not in sizes:
            from flowood.errors import DatasetError

            raise DatasetError(f"{name} has no split {split!r}")
        rng = np.random.default_rng(len(split))
        n = min(sizes[split], kwargs.get("limit") or sizes[split])
        data = rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)
        return FakeImageDataset(data, np.arange(n, dtype=np.int64) % 3, name=name, split=split)

    monkeypatch.setattr(embed_module, "_load_split", load)
    return loads


def test_embed_dataset_bundle_format(fake_loader: list[tuple[str, str]], tmp_path: Path) -> None:
    out = embed_dataset("fake", "random-cnn", "train,test", tmp_path / "sub" / "e.npz", progress=False, device="cpu")
    with np.load(out, allow_pickle=False) as npz:
        assert npz["train_embeddings"].shape == (10, 64) and npz["train_embeddings"].dtype == np.float32
        assert npz["test_embeddings"].shape == (6, 64)
        assert npz["train_labels"].dtype == np.int64 and npz["test_labels"].shape == (6,)
        np.testing.assert_array_equal(npz["embeddings"], npz["train_embeddings"])
        np.testing.assert_array_equal(npz["labels"], npz["train_labels"])
        assert list(npz["splits"]) == ["train", "test"]
        assert str(npz["extractor"]) == "random-cnn" and int(npz["size"]) == 32 and str(npz["dataset"]) == "fake"
        meta = json.loads(str(npz["metadata"]))
    assert meta["counts"] == {"train": 10, "test": 6} and meta["feature_dim"] == 64
    bundle = read_embeddings(out)
    assert bundle.splits == ["train", "test"] and bundle.labels["test"].shape == (6,)
    # a legacy file with only embeddings/labels (what the original code read) is readable too
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, embeddings=np.zeros((4, 3), np.float32), labels=np.zeros(4, np.int64))
    assert read_embeddings(legacy).embeddings["train"].shape == (4, 3)


def test_cli_embed_end_to_end_and_cache(
    fake_loader: list[tuple[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "fake.npz"
    args = [
        "embed",
        "--dataset",
        "fake",
        "--extractor",
        "random-cnn",
        "--out",
        str(out),
        "--splits",
        "test,train",
        "--size",
        "24",
        "--limit",
        "4",
        "--batch-size",
        "3",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    first = read_embeddings(out)
    assert first.splits == ["test", "train"] and first.embeddings["train"].shape == (4, 64)
    assert first.metadata["size"] == 24 and first.metadata["limit"] == 4
    # second run: everything from the cache, the network is never built
    from flowood.features import ExtractorConfig

    def must_not_build(self: ExtractorConfig) -> None:
        raise AssertionError("network built despite cached features")

    monkeypatch.setattr(ExtractorConfig, "build", must_not_build)
    before = out.read_bytes()
    assert main(args) == 2  # the file is there: replacing it needs --force (issue 25, item 4)
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*args, "--force"]) == 0
    second = read_embeddings(out)
    np.testing.assert_array_equal(first.embeddings["test"], second.embeddings["test"])


def test_cli_embed_errors(
    fake_loader: list[tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x.npz")
    assert main(["embed", "--extractor", "random-cnn", "--out", out]) == 2
    assert main(["embed", "--dataset", "fake", "--extractor", "nope", "--out", out]) == 2
    assert "unknown extractor" in capsys.readouterr().err
    assert main(["embed", "--dataset", "fake", "--extractor", "resnet18", "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "resnet18-f37072fd.pth" in err and "--download" in err
    assert (
        main(
            [
                "embed",
                "--dataset",
                "fake",
                "--extractor",
                "random-cnn",
                "--out",
                out,
                "--splits",
                "val",
                "--no-progress",
            ]
        )
        == 2
    )
    assert not Path(out).exists()
    assert main(["embed", "--list-extractors"]) == 0
    assert "efficientnet-lite0" in capsys.readouterr().out


def test_cli_embed_real_dataset(tmp_path: Path) -> None:
    data = pytest.importorskip("flowood.data")
    if not hasattr(data, "load_dataset"):
        pytest.skip("flowood.data.load_dataset not available yet")
    out = tmp_path / "fmnist.npz"
    rc = main(
        [
            "embed",
            "--dataset",
            "fashionmnist-mini",
            "--extractor",
            "random-cnn",
            "--out",
            str(out),
            "--limit",
            "32",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert rc == 0
    bundle = read_embeddings(out)
    assert bundle.embeddings["train"].shape == (32, 64) and bundle.embeddings["test"].shape == (32, 64)
    expected = data.load_dataset("fashionmnist-mini", "test", limit=32, seed=0)
    np.testing.assert_array_equal(bundle.labels["test"], expected.labels)
    assert np.isfinite(bundle.embeddings["train"]).all()


def test_conversions_of_an_embedded_set_are_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``flowood embed`` says what loading converted (float pixels here): loading itself prints nothing."""
    np.savez(tmp_path / "f.npz", x=np.full((4, 8, 8), 0.5, np.float32))
    ds = embed_module._load_split(f"npz:{tmp_path / 'f.npz'}", "all", root=None, limit=None, seed=0, classes=None)
    assert len(ds) == 4
    assert capsys.readouterr().err == f"note: npz:{tmp_path / 'f.npz'} (all): float32 pixels in [0, 1] scaled x255\n"
