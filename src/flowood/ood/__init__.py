"""OOD detection: scoring datasets with a flow, the detection metrics, and the pytorch-ood adapter
(:class:`PytorchOODDetector`: a flowood detector behind pytorch-ood's ``fit`` / ``predict`` conventions)."""

from flowood.ood.detectors.interop import PytorchOODDetector
from flowood.ood.likelihood import score_bits_per_dim, score_samples
from flowood.ood.metrics import (
    detection_metrics,
    paired_auroc_difference,
    paired_class_summary,
    paired_metric_differences,
    summarize_scores,
)

__all__ = [
    "PytorchOODDetector",
    "detection_metrics",
    "paired_auroc_difference",
    "paired_class_summary",
    "paired_metric_differences",
    "score_bits_per_dim",
    "score_samples",
    "summarize_scores",
]
