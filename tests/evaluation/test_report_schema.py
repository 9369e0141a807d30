"""The typed evaluation report: JSON round trip, reports written before ``schema_version``, bad files.

``data/report_demo_unversioned.json`` is the ``report.json`` that ``flowood demo`` wrote before the report
was typed (no ``schema_version``; produced by this repository's code at the commit before
:mod:`flowood.evaluation` existed, ``--set train.max_steps=120``); ``data/report_scores_unversioned.json``
the one ``flowood evaluate --scores ...`` wrote then. Both must load, and write back the same keys.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from flowood.errors import ReportError
from flowood.evaluation import SCHEMA_VERSION, DetectorMetrics, EvaluationReport
from flowood.runs import RunDir

DATA = Path(__file__).parent / "data"
OLD_FILES = sorted(DATA.glob("*_unversioned.json"))


def _same_json(a: object, b: object) -> bool:
    """Equal JSON values (NaN equal to NaN; 1 equal to 1.0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and isinstance(a, bool) == isinstance(b, bool)


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda p: p.name)
def test_unversioned_report_loads_and_writes_back_the_same_keys(path: Path) -> None:
    old = json.loads(path.read_text())
    assert "schema_version" not in old
    report = EvaluationReport.load(path)
    assert report.schema_version == SCHEMA_VERSION == 2  # read into today's layout
    again = report.to_json()
    assert again.pop("schema_version") == SCHEMA_VERSION
    assert _same_json(again, old), "the typed report must write the keys (and order) flowood always wrote"


def test_demo_report_attributes_match_the_file() -> None:
    raw = json.loads((DATA / "report_demo_unversioned.json").read_text())
    report = EvaluationReport.load(DATA / "report_demo_unversioned.json")
    assert report.in_distribution.dataset == raw["in_distribution"]["dataset"] == "fashionmnist-mini"
    assert list(report.ood) == list(raw["ood"]) == ["mnist-mini", "glyphs"]
    for key, entry in raw["ood"].items():
        got = report.ood[key].metrics["log_likelihood"]
        want = entry["metrics"]["log_likelihood"]
        # Each field from its own key: a from_json swapping aupr_in / aupr_out fails here.
        assert (got.auroc, got.aupr_in, got.aupr_out, got.fpr95) == (
            want["auroc"],
            want["aupr_in"],
            want["aupr_out"],
            want["fpr95"],
        )
        assert report.ood[key].bits_per_dim.median == entry["bits_per_dim"]["median"]
    assert report.aurocs() == {k: e["metrics"]["log_likelihood"]["auroc"] for k, e in raw["ood"].items()}
    assert report.scoring.precision == "fp32" and report.scoring.images == raw["scoring"]["images"]
    assert report.training is not None and report.training.stopped_by == raw["training"]["stopped_by"]
    assert report.conclusion == raw["conclusion"]


def test_scores_report_keeps_detector_facts_and_components() -> None:
    path = DATA / "report_scores_unversioned.json"
    raw = json.loads(path.read_text())
    report = EvaluationReport.load(path)
    assert report.scores is not None and list(report.scores) == list(raw["scores"])
    typ = report.scores["typicality"]
    assert typ.per_batch and typ.facts["M"] == raw["scores"]["typicality"]["M"] == 8
    assert set(report.scores["per_scale"].components_auroc or {}) == {"scale_0", "scale_1"}
    key = next(iter(report.ood))
    per_batch = report.ood[key].metrics["typicality"]
    assert per_batch.M == 8 and per_batch.num_batches == raw["ood"][key]["metrics"]["typicality"]["num_batches"]
    assert report.score_settings == raw["score_settings"]


def test_round_trip_through_a_run_directory(tmp_path: Path) -> None:
    report = EvaluationReport.load(DATA / "report_scores_unversioned.json")
    report = report.with_metrics("mnist-mini", "extra", DetectorMetrics(0.6, 0.5, 0.7, 0.8, nonfinite=3))
    path = report.save(RunDir(tmp_path).report)
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = RunDir(tmp_path).read_report()
    assert loaded == report
    assert EvaluationReport.from_json(report.to_json()) == report
    assert list(loaded.ood["mnist-mini"].metrics)[-1] == "extra"  # added after the scores already there
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_with_metrics_refuses_an_unknown_set() -> None:
    report = EvaluationReport.load(DATA / "report_demo_unversioned.json")
    with pytest.raises(KeyError, match="not an OOD set"):
        report.with_metrics("svhn", "x", DetectorMetrics(0.5, 0.5, 0.5, 0.5, 0))


@pytest.mark.parametrize(
    ("version", "needle"),
    [(SCHEMA_VERSION + 1, "upgrade flowood"), (0, f"1..{SCHEMA_VERSION}"), ("1", "'1'"), (True, "True")],
)
def test_newer_or_unknown_schema_is_one_line_naming_the_file(tmp_path: Path, version: object, needle: str) -> None:
    raw = json.loads((DATA / "report_demo_unversioned.json").read_text())
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"schema_version": version, **raw}))
    with pytest.raises(ReportError) as err:
        EvaluationReport.load(path)
    message = str(err.value)
    assert str(path) in message and needle in message and "\n" not in message


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda r: r.pop("in_distribution"), "report.in_distribution is missing"),
        (lambda r: r["ood"]["glyphs"]["metrics"]["log_likelihood"].update(auroc="high"), "'high', not a number"),
        (lambda r: r["ood"]["mnist-mini"]["bits_per_dim"].update(n=1.5), "report.ood['mnist-mini'].bits_per_dim.n"),
        (lambda r: r.update(ood=[]), "report.ood is not a JSON object"),
    ],
)
def test_malformed_report_names_the_file_and_the_key(tmp_path: Path, edit, needle: str) -> None:
    raw = json.loads((DATA / "report_demo_unversioned.json").read_text())
    edit(raw)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ReportError, match="flowood evaluate") as err:
        RunDir(tmp_path).read_report()
    assert str(path) in str(err.value) and needle in str(err.value), str(err.value)


def test_truncated_or_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"run_dir": "x", ')
    with pytest.raises(ReportError, match="is unreadable"):
        EvaluationReport.load(path)
    with pytest.raises(ReportError, match="not found"):
        EvaluationReport.load(tmp_path / "absent.json")
    assert RunDir(tmp_path / "no-run").read_report() is None


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda p: p.name)
def test_version_1_reports_load_without_provenance(path: Path, tmp_path: Path) -> None:
    old = json.loads(path.read_text())
    (tmp_path / "v1.json").write_text(json.dumps({"schema_version": 1, **old}))
    report = EvaluationReport.load(tmp_path / "v1.json")
    assert report.provenance is None and report.in_distribution.samples is not None
    assert report.in_distribution.samples.fingerprint is None
    again = report.to_json()
    assert again["schema_version"] == 2 and "provenance" not in again
