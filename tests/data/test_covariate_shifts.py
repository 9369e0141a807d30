"""``blur-``, ``jpeg-``, ``shift-`` and ``contrast-`` derived sets: what each does to the pixels, their syntax and
one-line errors, and that they are mild (the same images, not other ones)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowood.data import load_dataset
from flowood.data.derived import Derivation, covariate_shift, parse_derived
from flowood.errors import DatasetError


def _base() -> torch.Tensor:
    return load_dataset("fashionmnist-mini", "test", limit=40, seed=2).data


def test_blur_is_a_normalised_gaussian_and_smooths() -> None:
    spike = np.zeros((1, 1, 15, 15), np.uint8)
    spike[0, 0, 7, 7] = 255
    out = covariate_shift(spike, Derivation("blur", amount=1.0)).astype(np.float64)
    assert abs(out.sum() - 255) < 10  # mass kept (up to rounding)
    assert out[0, 0, 7, 7] < 60 and out[0, 0, 7, 8] > 0 and out[0, 0, 7, 8] == out[0, 0, 8, 7]
    ds = load_dataset("blur-1:fashionmnist-mini", "test", limit=40, seed=2)
    base = _base()
    diff = lambda x: x.float().diff(dim=-1).abs().mean()  # noqa: E731
    assert diff(ds.data) < 0.8 * diff(base)  # sharper edges are gone


def test_jpeg_changes_little_and_more_at_lower_quality() -> None:
    base = _base()
    err = {
        q: (load_dataset(f"jpeg-{q}:fashionmnist-mini", "test", limit=40, seed=2).data.float() - base.float())
        .abs()
        .mean()
        for q in (90, 30)
    }
    assert 0 < err[90] < err[30] < 20


def test_shift_translates_every_image_with_a_seeded_offset() -> None:
    base = _base()
    a = load_dataset("shift-2:fashionmnist-mini", "test", limit=40, seed=2).data
    b = load_dataset("shift-2:fashionmnist-mini", "test", limit=40, seed=2).data
    assert torch.equal(a, b)  # seeded: the same offsets every time
    for img, orig in zip(a, base, strict=True):
        hits = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if (dy, dx) != (0, 0) and torch.equal(img, _moved(orig, dy, dx))
        ]
        assert hits, "every image is its base image translated by at most 2 pixels"


def _moved(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(img)
    h, w = img.shape[1:]
    out[:, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = img[
        :, max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
    ]
    return out


def test_contrast_scales_around_each_images_mean() -> None:
    base = _base()
    ds = load_dataset("contrast-0.5:fashionmnist-mini", "test", limit=40, seed=2)
    assert torch.allclose(ds.data.float().mean((1, 2, 3)), base.float().mean((1, 2, 3)), atol=1.0)
    assert torch.allclose(ds.data.float().std((1, 2, 3)), 0.5 * base.float().std((1, 2, 3)), rtol=0.05)
    assert torch.equal(ds.labels, load_dataset("fashionmnist-mini", "test", limit=40, seed=2).labels)


def test_syntax() -> None:
    assert parse_derived("blur-1.5:mnist-mini") == (Derivation("blur", amount=1.5), "mnist-mini")
    assert parse_derived("JPEG-30:x")[0].prefix == "jpeg-30" and parse_derived("shift-2:x")[0].is_shift
    assert not parse_derived("hflip:x")[0].is_shift


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("blur:mnist-mini", "write blur-AMOUNT:NAME"),
        ("blur-0:mnist-mini", "blur needs SIGMA > 0"),
        ("jpeg-0:mnist-mini", "QUALITY in 1..95"),
        ("jpeg-2.5:mnist-mini", "QUALITY in 1..95"),
        ("shift-x:mnist-mini", "write shift-AMOUNT:NAME"),
        ("contrast-1.5:mnist-mini", "FACTOR in (0, 1]"),
        ("contrast-nan:mnist-mini", "FACTOR in (0, 1]"),
    ],
)
def test_bad_amounts_are_one_line(name: str, words: str) -> None:
    with pytest.raises(DatasetError, match=None) as err:
        load_dataset(name, "test", limit=4)
    assert words in str(err.value) and "\n" not in str(err.value)
