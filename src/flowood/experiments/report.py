"""``flowood report``: one self-contained ``report.html`` for a run directory."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from flowood.analysis.html_report import collect_report_parts, write_html_report
from flowood.errors import CheckpointError, ConfigError
from flowood.runs import RunDir
from flowood.train.config import load_config


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (default ``RUN_DIR/report.html``) from what the run directory holds.

    Missing pieces (no evaluation yet, no figures) are noted in the page rather than failing, so the report is
    useful at any stage of a run.

    Raises:
        CheckpointError: ``run_dir`` does not exist or is not a flowood run (no ``config.yaml``/``metrics.csv``);
            another process writes the run (the page goes into it by default); it is read-only.
        ConfigError: ``config.yaml`` cannot be read (YAML error, a tag, not UTF-8); ``out`` is a directory.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise CheckpointError(f"run directory {path} does not exist")
    rundir = RunDir(path)
    if not rundir.config.is_file() and not rundir.metrics.is_file():
        rundir.require_run()  # the one "not a run directory" error
    target = Path(out) if out is not None else rundir.report_html
    if target.is_dir():
        raise ConfigError(f"--out {target} is a directory; give the HTML file to write, e.g. {target / 'report.html'}")
    inside = target.resolve().parent == rundir.path.resolve()
    # Writing into the run takes its lock (a run being trained or evaluated is refused, and says how to write
    # the page elsewhere meanwhile); a page written elsewhere only reads the run.
    if rundir.config.is_file():
        load_config(rundir.config)  # a config that cannot be read is one line naming the file and the line
    lock = rundir.hold("report", elsewhere="pass --out FILE.html to write the page elsewhere")
    with lock if inside and rundir.is_run() else nullcontext():
        parts = collect_report_parts(path)
        return write_html_report(parts, target)
