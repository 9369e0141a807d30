"""Each figure for RealNVP, Glow and the cycle-mask model: right size, not blank; style and display helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowood.analysis import plot_bpd_histograms, plot_coupling, plot_latents, plot_samples
from flowood.analysis.couplings import COUPLING_COLUMNS, coupling_figsize, default_layer_indices
from flowood.analysis.display import mosaic, normalise, to_image_grid
from flowood.analysis.histograms import HISTOGRAM_FIGSIZE, histogram_label
from flowood.analysis.latents import compute_latents, latent_columns, latent_figsize
from flowood.analysis.samples import samples_figsize
from flowood.analysis.style import DATASET_COLORS, canonical_name, dataset_color, figure_pixels
from flowood.flows import squeeze2d
from flowood.ood import score_bits_per_dim

from .helpers import TINY_MODELS, assert_png, disc_images, tiny_flow

MODELS = list(TINY_MODELS)


@pytest.fixture(scope="module")
def datasets() -> dict[str, torch.Tensor]:
    return {"fashionmnist-mini": disc_images(3, 0), "mnist-mini": disc_images(3, 1)}


@pytest.mark.parametrize("name", MODELS)
def test_latent_figure(tmp_path, name, datasets):
    flow = tiny_flow(name)
    path = plot_latents(flow, datasets, tmp_path / "latents.png", num_examples=2)
    assert_png(path, figure_pixels(*latent_figsize(flow, 4)))
    # Multi-scale flows get one column per scale, single-scale flows only input and z.
    assert len(latent_columns(flow)) == (2 if name == "realnvp-cycle-mask" else 2 + 2)


def test_latents_keep_every_dimension(datasets):
    flow = tiny_flow("realnvp")
    views = compute_latents(flow, datasets["mnist-mini"])
    assert views.z.shape == views.inputs.shape
    assert sum(p[0].numel() for p in views.pieces) == views.z[0].numel()


@pytest.mark.parametrize("name", MODELS)
def test_coupling_figure(tmp_path, name, datasets):
    flow = tiny_flow(name)
    layer = default_layer_indices(flow)[0]
    path = plot_coupling(flow, datasets, layer, tmp_path / "coupling.png", num_examples=2)
    assert_png(path, figure_pixels(*coupling_figsize(4)))
    assert len(COUPLING_COLUMNS) == 5


def test_coupling_figure_at_a_coarser_scale(tmp_path, datasets):
    # RealNVP layer 3 is a channel coupling on the squeezed (4, 8, 8) tensor; layer 6 a checkerboard on (2, 8, 8).
    flow = tiny_flow("realnvp")
    for layer in (3, 6):
        assert_png(plot_coupling(flow, datasets, layer, tmp_path / f"c{layer}.png", num_examples=1))


def test_coupling_figure_rejects_bad_layer(tmp_path, datasets):
    with pytest.raises(ValueError, match="out of range"):
        plot_coupling(tiny_flow("glow"), datasets, 99, tmp_path / "x.png")


@pytest.mark.parametrize("name", MODELS)
def test_samples_figure(tmp_path, name):
    flow = tiny_flow(name)
    path = plot_samples(flow, tmp_path / "samples.png", num_samples=4)
    assert_png(path, figure_pixels(*samples_figsize(3)))


@pytest.mark.parametrize("name", MODELS)
def test_histogram_figure(tmp_path, name, datasets):
    flow = tiny_flow(name)
    scores = {k: score_bits_per_dim(flow, v.split(8)) for k, v in datasets.items()}
    assert all(np.isfinite(s).all() and s.shape == (3,) for s in scores.values())
    scores["glyphs"] = np.array([1.0, np.nan, np.inf, 2.0])
    path = plot_bpd_histograms(scores, tmp_path / "hist.png", title=f"{name} test")
    assert_png(path, figure_pixels(*HISTOGRAM_FIGSIZE))


def test_histogram_label_counts_nonfinite():
    assert histogram_label("mnist", np.array([1.0, 2.0, 3.0])) == "mnist (n=3, median 2.00)"
    assert histogram_label("x", np.array([1.0, np.nan, -np.inf])) == "x (n=3, median 1.00, 2 non-finite)"
    assert histogram_label("x", np.array([np.nan])) == "x (n=1, 1 non-finite)"


def test_histogram_all_nonfinite_still_draws(tmp_path):
    path = plot_bpd_histograms({"a": np.array([1.0, 2.0, 2.5]), "b": np.array([np.nan])}, tmp_path / "h.png", "t")
    assert_png(path)


def test_dataset_colours_are_fixed_and_deterministic():
    assert dataset_color("FashionMNIST-mini") == dataset_color("fashionmnist") == DATASET_COLORS["fashionmnist"]
    assert dataset_color("mnist-mini") != dataset_color("fashionmnist-mini")
    assert canonical_name("CIFAR-10") == "cifar10"
    # Unknown names: a fixed palette entry, the same on every call (no per-process hash salt).
    assert dataset_color("my-weird-set") == dataset_color("my-weird-set")
    assert dataset_color("my-weird-set").startswith("#") and len(dataset_color("my-weird-set")) == 7


def test_to_image_grid_undoes_squeezes():
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(to_image_grid(squeeze2d(squeeze2d(x))[0], 3), x[0])
    # Channel counts that are not a multiple of 4·C stay as they are (then tiled).
    assert to_image_grid(torch.randn(2, 14, 14), 1).shape == (2, 14, 14)


def test_mosaic_and_normalise():
    m = mosaic(torch.arange(5 * 4 * 4, dtype=torch.float32).reshape(5, 4, 4))
    assert m.shape == (2 * 4 + 1, 3 * 4 + 2)  # 2 rows × 3 columns with 1-px NaN gaps
    assert np.isnan(m).any()
    n = normalise(np.array([-2.0, 0.0, 2.0]), signed=True, hi_pct=100)
    np.testing.assert_allclose(n, [0.0, 0.5, 1.0])
    assert np.all(normalise(np.ones(4)) == 0.5)


def test_histogram_tail_is_an_overflow_count_not_a_spike(tmp_path):
    from flowood.analysis.histograms import histogram_overflow, histogram_range

    rng = np.random.default_rng(0)
    fm = rng.normal(3.5, 0.3, 2000)
    fm[:15] = rng.uniform(6, 9, 15)  # a diverged tail far right
    scores = {"fashionmnist-mini": fm, "mnist-mini": rng.normal(2.3, 0.3, 2000)}
    _lo, hi = histogram_range(scores)
    assert hi < 6
    assert histogram_overflow(scores) == {"fashionmnist-mini": (0, int((fm > hi).sum())), "mnist-mini": (0, 0)}
    assert histogram_overflow(scores)["fashionmnist-mini"][1] >= 15
    path = plot_bpd_histograms(scores, tmp_path / "h.png", "realnvp trained on fashionmnist-mini")
    assert path.stat().st_size > 1000


def test_histogram_legend_names_the_in_distribution_set(monkeypatch, tmp_path):
    import flowood.analysis.histograms as hist

    labels: list[str] = []
    real = hist.save_figure

    def keep_labels(fig, path):
        labels.extend(t.get_text() for t in fig.axes[0].get_legend().get_texts())
        return real(fig, path)

    monkeypatch.setattr(hist, "save_figure", keep_labels)
    scores = {"a": np.arange(10.0), "b": np.arange(10.0) + 1}
    plot_bpd_histograms(scores, tmp_path / "h.png", "realnvp trained on b")
    assert [lbl.endswith("in-distribution") for lbl in labels] == [False, True]
    labels.clear()
    plot_bpd_histograms(scores, tmp_path / "h.png", "t", in_distribution="a")
    assert [lbl.endswith("in-distribution") for lbl in labels] == [True, False]
