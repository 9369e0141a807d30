"""``flowood report``: one self-contained ``report.html`` for a run directory."""

from __future__ import annotations

from pathlib import Path

from flowood.analysis.html_report import collect_report_parts, write_html_report
from flowood.errors import CheckpointError


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (default ``RUN_DIR/report.html``) from what the run directory holds.

    Missing pieces (no evaluation yet, no figures) are noted in the page rather than failing, so the report is
    useful at any stage of a run.

    Raises:
        CheckpointError: ``run_dir`` does not exist or is not a flowood run (no ``config.yaml``/``metrics.csv``).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise CheckpointError(f"run directory {path} does not exist")
    if not (path / "config.yaml").is_file() and not (path / "metrics.csv").is_file():
        raise CheckpointError(
            f"{path} is not a flowood run directory (no config.yaml or metrics.csv); "
            "create one with `flowood train --out DIR` or `flowood demo`"
        )
    parts = collect_report_parts(path)
    return write_html_report(parts, Path(out) if out is not None else path / "report.html")
