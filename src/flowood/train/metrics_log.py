"""``metrics.csv``: one row per evaluated epoch, rewritten atomically so no row is ever half-written or lost.

Each append rewrites the small file through :func:`flowood.train.checkpoint.atomic_write`: on a full disk
the previous file stays as it was. On resume, rows written after the checkpoint (e.g. the row of a partial
epoch that the resumed run will complete) are dropped only when the next row is written, so a resume that
fails first (disk still full, bad settings) deletes nothing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from flowood.errors import CheckpointError
from flowood.train.checkpoint import atomic_write

METRIC_FIELDS = [
    "epoch",
    "step",
    "train_bpd",
    "test_bpd",
    "ood_train_bpd",
    "lr",
    "nonfinite_steps",
    "seconds",
    "partial",
    "val_bpd",
]
"""Columns. ``partial`` is 1 for a row written when a limit cut the epoch short (its means cover the steps
done), else 0; ``test_bpd`` is empty when ``train.max_minutes`` left no time to evaluate; ``val_bpd`` is the
validation bits/dim with ``train.early_stopping`` (else empty)."""


class MetricsLog:
    """The run's ``metrics.csv``.

    Args:
        path: the file.
        resume: keep (and validate) an existing file instead of starting a new one.
    """

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = Path(path)
        self._keep_through: int | None = None
        self.rows: list[dict[str, Any]] = self._read() if resume and self.path.exists() else []
        if not resume or not self.path.exists():
            self._write(self.rows)

    def _read(self) -> list[dict[str, Any]]:
        hint = "move it aside and resume again (a new log starts from the checkpoint)"
        try:
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{self.path} is unreadable ({err}); {hint}") from None
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"epoch", "step"} <= set(reader.fieldnames):
            raise CheckpointError(f"{self.path} is not a flowood metrics log (no epoch/step header); {hint}")
        rows = []
        try:
            for row in reader:
                int(row["epoch"]), int(row["step"])
                rows.append({k: row.get(k) or "" for k in METRIC_FIELDS})
        except (TypeError, ValueError, csv.Error):
            raise CheckpointError(
                f"{self.path} line {reader.line_num} is not a metrics row (epoch/step not integers); {hint}"
            ) from None
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, METRIC_FIELDS)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(self.path, write)

    def keep_through(self, epoch: int) -> None:
        """On resume from a checkpoint with ``epoch`` completed epochs: rows of later epochs go at the next
        :meth:`append` (not now)."""
        self._keep_through = epoch

    def append(self, row: dict[str, Any]) -> None:
        """Add a row (atomically; raises :class:`flowood.errors.RunWriteError` with the file unchanged)."""
        rows = self.rows
        if self._keep_through is not None:
            rows = [r for r in rows if int(r["epoch"]) <= self._keep_through]
        rows = [*rows, {k: row.get(k, "") for k in METRIC_FIELDS}]
        self._write(rows)
        self.rows, self._keep_through = rows, None
