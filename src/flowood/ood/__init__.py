"""OOD detection: scoring datasets with a flow and the detection metrics."""

from flowood.ood.likelihood import score_bits_per_dim, score_samples
from flowood.ood.metrics import (
    detection_metrics,
    paired_auroc_difference,
    paired_class_summary,
    paired_metric_differences,
    summarize_scores,
)

__all__ = [
    "detection_metrics",
    "paired_auroc_difference",
    "paired_class_summary",
    "paired_metric_differences",
    "score_bits_per_dim",
    "score_samples",
    "summarize_scores",
]
