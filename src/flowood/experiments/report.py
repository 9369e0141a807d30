"""``flowood report``: one self-contained ``report.html`` for a run directory."""

from __future__ import annotations

from pathlib import Path

from flowood.analysis.html_report import collect_report_parts, write_html_report
from flowood.errors import CheckpointError
from flowood.runs import RunDir


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
    rundir = RunDir(path)
    if not rundir.config.is_file() and not rundir.metrics.is_file():
        rundir.require_run()  # the one "not a run directory" error
    parts = collect_report_parts(path)
    return write_html_report(parts, Path(out) if out is not None else rundir.report_html)
