"""The benchmark scripts run end to end (on the CPU, with a tiny model).

They are what a lent GPU runs in its one call, so a broken import or a renamed function must fail here,
not there.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from flowood.train import presets as presets_mod

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TINY_PRESET: dict[str, Any] = {
    "description": "test-sized RealNVP",
    "paper": False,
    "model": {"name": "realnvp", "num_scales": 1, "num_blocks": 1, "mid_channels": 4, "st_net": "resnet"},
    "data": {"dataset": "fashionmnist-mini", "ood": ["mnist-mini"]},
    "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 8, "epochs": 1, "grad_clip": 100.0},
}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_preset(monkeypatch: pytest.MonkeyPatch) -> str:
    real = presets_mod.get_preset

    def get_preset(name: str) -> dict[str, Any]:
        return json.loads(json.dumps(TINY_PRESET)) if name == "tiny" else real(name)

    monkeypatch.setattr(presets_mod, "get_preset", get_preset)
    return "tiny"


def test_throughput_rows_for_every_mode(tiny_preset, monkeypatch, tmp_path, capsys):
    bench = _load("throughput")
    monkeypatch.setattr(bench, "get_preset", presets_mod.get_preset)
    out = tmp_path / "rows.json"
    args = bench.parse_args(
        [
            *("--device", "cpu", "--presets", tiny_preset, "--modes", "eager-fp32", "fast", "bf16", "naive"),
            *("--batch-sizes", "8", "--score-batch", "16", "--warmup", "1", "--steps", "1", "--score-steps", "1"),
            *("--repeat", "2", "--out", str(out)),
        ]
    )
    rows = bench.run(args)
    lines = capsys.readouterr().out.splitlines()
    printed = [json.loads(line) for line in lines if line.startswith("{")]
    assert printed == json.loads(out.read_text()) == rows
    # Every single measurement is printed as it finishes (4 modes × 2 repeats), before the rows.
    partial = [json.loads(line.removeprefix("# measured ")) for line in lines if line.startswith("# measured ")]
    assert len(partial) == 8 and all(p["train_img_s"] > 0 for p in partial)
    assert [r["mode"] for r in rows] == ["eager-fp32", "fast", "bf16", "naive"]
    for row in rows:
        assert "error" not in row, row
        assert row["train_img_s"] > 0 and row["score_img_s"] > 0
        assert len(row["train_img_s_repeats"]) == 2
        assert row["train_ratio_vs_baseline"] > 0
        assert row["train_gflop_per_img"] > 2 * row["score_gflop_per_img"] > 0  # backward ≈ 2× forward
        assert row["train_tflops"] == pytest.approx(row["train_img_s"] * row["train_gflop_per_img"] / 1e3, rel=1e-2)
    eager, naive = rows[0], rows[-1]
    assert eager["train_ratio_vs_baseline"] == 1.0
    # The naive reference is the same architecture: equal parameter counts make the ratio meaningful.
    assert naive["parameters"] == eager["parameters"]
    assert eager["settings"]["precision"] == "fp32" and rows[2]["settings"]["precision"] == "bf16"


def test_throughput_reports_a_failing_mode_without_stopping(tiny_preset, monkeypatch, capsys):
    bench = _load("throughput")
    monkeypatch.setattr(bench, "get_preset", presets_mod.get_preset)
    args = bench.parse_args(
        [
            *("--device", "cpu", "--presets", tiny_preset, "--modes", "no-such-mode", "eager-fp32"),
            *("--batch-sizes", "8", "--score-batch", "8", "--warmup", "0", "--steps", "1", "--score-steps", "1"),
        ]
    )
    rows = bench.run(args)
    assert "unknown mode" in rows[0]["error"]
    assert "error" not in rows[1]


def test_gpu_check_time_to_result_and_exactness(tiny_preset, tmp_path):
    check = _load("gpu_check")
    out = tmp_path / "gpu_check.json"
    code = check.main(
        [
            *("all", "--out", str(out), "--seconds", "1", "--preset", tiny_preset, "--batch-size", "16"),
            *("--warmup-steps", "2", "--score-limit", "48", "--exact-batch", "16", "--compile", "off"),
        ]
    )
    report = json.loads(out.read_text())
    assert code == 0, report
    ttr = report["time_to_result"]
    assert ttr["steps"] > 0 and ttr["preset"] == tiny_preset
    assert ttr["lr"] == pytest.approx(1e-3 * 16 / 8)  # the preset's lr, linearly scaled from its batch 8
    for label in ("scores_fast", "scores_exact"):
        assert ttr[label]["n_test"] == 48 and ttr[label]["n_ood"] == 48
        assert 0.0 <= ttr[label]["auroc"] <= 1.0
    targets = {"test_bpd_median_le_3.52", "auroc_below_0.5_reproduces_failure", "train_seconds_le_60"}
    assert set(ttr["targets"]) == targets
    ex = report["exactness"]
    assert ex["source"] == "time-to-result model" and ex["batch"] == 16
    assert ex["bf16_channels_last_eager"]["finite"] and ex["bf16_channels_last_eager"]["max_abs_diff"] < 0.05
    assert ex["fp16_channels_last_eager"]["max_abs_diff"] < 0.05


@pytest.mark.parametrize("script", ["gpu_check.sh", "stage_gpu_data.sh"])
def test_shell_scripts_parse(script):
    import subprocess

    done = subprocess.run(["bash", "-n", str(BENCHMARKS / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_stage_gpu_data_copies_the_four_idx_archives(tmp_path):
    import shutil
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for name in names:
        (src / f"{name}.gz").write_bytes(b"x")
    repo = tmp_path / "repo"
    shutil.copytree(BENCHMARKS, repo / "benchmarks")
    done = subprocess.run(
        ["bash", str(repo / "benchmarks" / "stage_gpu_data.sh"), str(src)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (repo / ".gpu-data" / "FashionMNIST" / "raw").iterdir()) == sorted(
        f"{n}.gz" for n in names
    )
    (src / f"{names[0]}.gz").unlink()
    done = subprocess.run(
        ["bash", str(repo / "benchmarks" / "stage_gpu_data.sh"), str(src)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "missing" in done.stderr


def test_throughput_modes_resolve_to_their_settings():
    import torch

    bench = _load("throughput")
    cuda = torch.device("cuda")  # resolution only; nothing runs on a GPU
    assert bench._fast_for("eager-fp32", cuda, "adam").is_exact
    fast = bench._fast_for("fast", cuda, "adam")
    assert fast.compile and fast.channels_last and fast.cudnn_benchmark and fast.compile_mode == "default"
    assert not bench._fast_for("fast-nocompile", cuda, "adam").compile
    graphs = bench._fast_for("fast-cudagraphs", cuda, "adam")
    assert graphs.compile and graphs.compile_mode == "reduce-overhead"
    assert bench._modes(cuda, None) == ["eager-fp32", "fast-nocompile", "fast"]
    layout = bench._fast_for("channels-last", torch.device("cpu"), "adam")
    assert layout.channels_last and layout.precision == "fp32" and not layout.compile
