"""HTML report (self-contained, readable) and the `flowood visualize` / `flowood report` commands."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import flowood.experiments.visualize as viz
from flowood.analysis.html_report import ReportParts, collect_report_parts, write_html_report
from flowood.cli.app import main

from .helpers import SHAPE, assert_png, disc_images, finite, make_fake_run, num_colours, png_array, write_png

DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
CHROMIUM = Path("/usr/bin/chromium")


def assert_self_contained(text: str) -> None:
    """No reference to anything outside the file: no URLs, scripts, stylesheets, fonts or non-data sources."""
    stripped = DATA_URI.sub("DATA", text)  # base64 may legitimately contain "//"
    for bad in ("http://", "https://", "//", "<script", "<link", "@import", "url(", "<iframe", "<object"):
        assert bad not in stripped.lower(), bad
    for m in re.finditer(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", stripped, flags=re.IGNORECASE):
        value = m.group(1)
        assert value == "DATA" or value.startswith("#"), value


@pytest.fixture
def fake_run(tmp_path):
    return make_fake_run(tmp_path / "run")


def test_report_is_self_contained_and_complete(fake_run, tmp_path):
    write_png(fake_run.dir / "figures" / "latents.png", 3)
    (fake_run.dir / "figures" / "coupling_stats.json").write_text(
        json.dumps(
            {
                "rows": [
                    {
                        "layer": 0,
                        "mask_type": "checkerboard",
                        "parity": 0,
                        "layer_input_shape": [1, 16, 16],
                        "dataset": "mnist-mini",
                        "corr_neg_t_x": 0.91,
                        "corr_neg_t_x_std": 0.02,
                        "residual_std_ratio": 0.4,
                        "mean_abs_s": 0.1,
                        "mean_abs_t": 1.2,
                        "n_images": 8,
                    }
                ]
            }
        )
    )
    out = write_html_report(fake_run.dir)
    assert out == fake_run.dir / "report.html"
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert '<meta name="viewport"' in text and "max-width" in text and "overflow-x: auto" in text
    # latents + histogram + 1 sample grid + the training-curve plot.
    assert len(DATA_URI.findall(text)) == 4
    for expected in (
        "fashionmnist-mini",
        "mnist-mini",
        "glyphs",
        "0.070",
        "AUROC",
        "Coupling-layer measurement",
        "0.910",
        "batch_size: 32",
        "Training curves",
    ):
        assert expected in text, expected


def test_figures_follow_the_papers_order(fake_run):
    for i, name in enumerate(("samples", "coupling_layer_00", "latents", "histograms", "extra")):
        write_png(fake_run.dir / "figures" / f"{name}.png", i)
    captions = [c for c, _ in collect_report_parts(fake_run.dir).figures]
    assert captions[:5] == ["histograms", "latents", "coupling layer 00", "samples", "extra"]


def test_evaluation_table_reads_each_set_from_the_typed_report(fake_run):
    """Each row shows its own set's numbers: mnist-mini's AUROC 0.070 and glyphs' 0.930 with its 2 non-finite
    values (a consumer reading the wrong set or metric fails here)."""
    text = write_html_report(fake_run.dir).read_text(encoding="utf-8")
    section = text[text.index('id="evaluation"') :]
    rows = section.split("<tr>")[2:5]
    assert "fashionmnist-mini" in rows[0] and "(in-dist.)" in rows[0]
    assert "mnist-mini" in rows[1] and "0.070" in rows[1] and "0.300" in rows[1] and "0.990" in rows[1]
    assert "glyphs" in rows[2] and "0.930" in rows[2] and "<td>2</td>" in rows[2]


def test_malformed_report_is_a_note_not_a_crash(fake_run):
    (fake_run.dir / "report.json").write_text('{"ood": {}}')
    parts = collect_report_parts(fake_run.dir)
    assert parts.report is None
    assert any("report.json not shown" in n and "run_dir is missing" in n for n in parts.notes), parts.notes


def test_report_of_bare_run_notes_what_is_missing(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "config.yaml").write_text("model: {name: glow}\n")
    parts = collect_report_parts(run)
    assert parts.report is None and not parts.figures
    assert any("flowood evaluate" in n for n in parts.notes)
    text = write_html_report(run, tmp_path / "out" / "r.html").read_text()
    assert_self_contained(text)
    assert "No evaluation yet" in text


def test_report_from_parts_escapes_html(tmp_path):
    parts = ReportParts(
        title="<b>x</b>",
        config={"note": "<script>alert(1)</script>"},
        metrics=[{"epoch": 1.0, "step": 5.0, "train_bpd": float("nan"), "test_bpd": 3.0}],
    )
    text = write_html_report(parts, tmp_path / "r.html").read_text()
    assert "<script" not in text and "&lt;script&gt;" in text
    assert_self_contained(text)
    with pytest.raises(ValueError, match="out_path"):
        write_html_report(parts)


def test_header_says_how_far_training_got(tmp_path):
    # A run stopped by its time cap: 55 steps into epoch 1 of the 5 configured.
    config = {"model": {"name": "realnvp"}, "train": {"epochs": 5}}
    stopped = [{"epoch": 1.0, "step": 55.0, "train_bpd": 9.2, "test_bpd": 8.1, "seconds": 60.04}]
    text = write_html_report(ReportParts(config=config, metrics=stopped), tmp_path / "a.html").read_text()
    assert "epoch 1 of 5 · 55 steps · 60 s" in text
    text = write_html_report(ReportParts(config=config), tmp_path / "b.html").read_text()
    assert "5 epochs configured, none logged yet" in text


def test_training_totals_are_the_last_running_totals(tmp_path):
    # metrics.csv's nonfinite_steps and seconds are cumulative: 3 non-finite steps in epoch 1, none after.
    metrics = [
        {"epoch": 1.0, "step": 10.0, "train_bpd": 9.7, "test_bpd": 9.7, "nonfinite_steps": 3.0, "seconds": 12.57},
        {"epoch": 2.0, "step": 20.0, "train_bpd": 9.6, "test_bpd": 9.5, "nonfinite_steps": 3.0, "seconds": 34.11},
    ]
    text = write_html_report(ReportParts(config={"train": {}}, metrics=metrics), tmp_path / "r.html").read_text()
    assert "nonfinite steps: 3 total; seconds: 34.1 total" in text and "(2 rows;" in text


def test_many_sample_grids_are_subsampled(fake_run):
    for e in range(2, 31):
        write_png(fake_run.dir / "samples" / f"epoch_{e:03d}.png", e)
    parts = collect_report_parts(fake_run.dir)
    captions = [c for c, _ in parts.figures if c.startswith("training samples")]
    assert len(captions) == 12 and "epoch 001 (temperature" in captions[0] and "epoch 030 (temperature" in captions[-1]
    assert any("12 of 30" in n for n in parts.notes)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(fake_run, tmp_path):
    write_png(fake_run.dir / "figures" / "latents.png", 3)
    html_path = write_html_report(fake_run.dir)
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1366,900",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    if not shot.is_file():
        pytest.skip("chromium produced no screenshot in this environment")
    arr = png_array(shot)
    assert arr.shape[:2] == (900, 1366)
    assert arr.std() > 5.0 and num_colours(arr) > 20
    # Nothing spills sideways: the page's right margin (outside the max-width column) stays background.
    assert num_colours(arr[200:800, -40:-20]) <= 3


# ------------------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def patched_run(fake_run, monkeypatch):
    """`flowood visualize` on the fake run: load_run and the dataset loader replaced by in-memory fakes."""
    seeds = {"fashionmnist-mini": 0, "mnist-mini": 1, "glyphs": 2}
    loaded: list[str] = []

    def fake_load_images(name, input_shape, *, limit, root=None, seed=0):
        assert tuple(input_shape) == SHAPE
        loaded.append(name)
        return disc_images(min(limit, 6), seeds.get(name, 3))

    monkeypatch.setattr(viz, "load_run_dir", lambda run_dir: fake_run)
    monkeypatch.setattr(viz, "load_images", fake_load_images)
    fake_run.loaded = loaded
    return fake_run


def test_visualize_cli_writes_figures_and_stats(patched_run):
    run = patched_run
    opts = ["--num-examples", "1", "--layers", "0,6", "--num-stats", "4", "--num-scores", "4", "--num-samples", "4"]
    code = main(["visualize", str(run.dir), *opts])
    assert code == 0
    assert run.loaded == ["fashionmnist-mini", "mnist-mini", "glyphs"]  # defaults from the run's config
    figs = run.dir / "figures"
    for name in ("latents.png", "coupling_layer_00.png", "coupling_layer_06.png", "samples.png", "histograms.png"):
        assert_png(figs / name)
    stats = json.loads((figs / "coupling_stats.json").read_text())
    assert {(r["layer"], r["dataset"]) for r in stats["rows"]} == {
        (layer, d) for layer in (0, 6) for d in ("fashionmnist-mini", "mnist-mini", "glyphs")
    }
    assert all(finite(r["corr_neg_t_x"]) and finite(r["mean_abs_s"]) for r in stats["rows"])
    assert main(["report", str(run.dir)]) == 0
    text = (run.dir / "report.html").read_text()
    assert_self_contained(text)
    assert "coupling layer 06" in text and "Coupling-layer measurement" in text


def test_visualize_cli_explicit_datasets_and_bad_layer(patched_run, capsys):
    run = patched_run
    opts = "--dataset mnist-mini --ood glyphs --num-examples 1 --layers 1 --num-stats 2 --num-scores 2 --num-samples 1"
    assert main(["visualize", str(run.dir), *opts.split()]) == 0
    assert run.loaded == ["mnist-mini", "glyphs"]
    rows = json.loads((run.dir / "figures" / "coupling_stats.json").read_text())["rows"]
    assert [(r["layer"], r["dataset"]) for r in rows] == [(1, "mnist-mini"), (1, "glyphs")]
    assert main(["visualize", str(run.dir), "--layers", "42"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["visualize", str(run.dir), "--layers", "a,b"]) == 2


def test_cli_user_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["visualize", str(tmp_path / "missing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "not a flowood run directory" in capsys.readouterr().err


def test_end_to_end_on_a_trained_run(tmp_path):
    """The real chain: `flowood train` contract → load_run → load_dataset (embedded data) → figures → report."""
    pytest.importorskip("flowood.train.trainer")
    from flowood.data import load_dataset
    from flowood.train.config import config_from_dict
    from flowood.train.trainer import train

    try:
        load_dataset("fashionmnist-mini", "test", limit=4)
    except Exception as err:
        pytest.skip(f"embedded data unavailable: {err}")
    raw = {
        "model": {"name": "realnvp", "num_scales": 2, "num_blocks": 1, "mid_channels": 4},
        "data": {"dataset": "fashionmnist-mini", "ood": ["mnist-mini"], "limit": 32, "test_limit": 16},
        "train": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "num_samples": 4},
        "device": "cpu",
        "seed": 0,
    }
    run = tmp_path / "run"
    train(config_from_dict(raw), run, quiet=True)
    opts = ["--num-examples", "1", "--layers", "0", "--num-stats", "8", "--num-scores", "16", "--num-samples", "4"]
    assert main(["visualize", str(run), *opts]) == 0
    for name in ("latents.png", "coupling_layer_00.png", "samples.png", "histograms.png"):
        assert_png(run / "figures" / name)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert_self_contained((tmp_path / "r.html").read_text())
    shutil.rmtree(run)


def test_one_epoch_run_gets_a_per_step_training_curve(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from flowood.analysis.html_report import read_step_curve, training_curves_png

    with SummaryWriter(str(tmp_path / "tensorboard")) as w:
        for step in range(10, 160, 10):
            w.add_scalar("train/bpd_step", 6.0 - step / 100, step)
        w.add_scalar("train/bpd_step", float("nan"), 160)
    curve = read_step_curve(tmp_path / "tensorboard")
    assert [s for s, _ in curve] == list(range(10, 160, 10))  # the NaN step left out
    metrics = [{"epoch": 1.0, "step": 156.0, "train_bpd": 5.0, "test_bpd": 4.9, "lr": 1e-3}]
    png = training_curves_png(metrics, curve)
    assert png is not None and png[:4] == b"\x89PNG"
    (tmp_path / "curve.png").write_bytes(png)
    assert read_step_curve(tmp_path / "missing") == []


def test_training_samples_caption_states_the_temperature_drawn(tmp_path):
    from flowood.analysis.html_report import collect_report_parts

    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "epoch_001.png").write_bytes(b"")
    (tmp_path / "config.yaml").write_text("train: {sample_temperature: 0.5}\n")
    captions = [c for c, _ in collect_report_parts(tmp_path).figures]
    assert captions == ["training samples: epoch 001 (temperature 0.5)"]
