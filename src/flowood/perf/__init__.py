"""Performance settings, one module per job.

* :mod:`flowood.perf.fast_path` — the fast path (mixed precision, channels-last, ``torch.compile``, fused
  optimisers, cuDNN autotuning) and exact mode, its fp32 eager reference (:func:`exact_settings`,
  ``resolve_fast_path(device, exact=True)``).
* :mod:`flowood.perf.lr_scaling` — learning-rate scaling for larger batches (:func:`scaled_lr`).
* :mod:`flowood.perf.threads` — torch's CPU thread count on a shared machine (:func:`cpu_threads`).

Every name is re-exported here, so ``from flowood.perf import X`` keeps working as before the split.
"""

from __future__ import annotations

from flowood.perf.fast_path import (
    PRECISIONS,
    ExactSettings,
    FastPath,
    eager_stance,
    exact_settings,
    fused_optimizer_supported,
    resolve_fast_path,
    resolve_precision,
)
from flowood.perf.lr_scaling import LR_SCALINGS, scaled_lr
from flowood.perf.threads import cpu_threads

__all__ = [
    "LR_SCALINGS",
    "PRECISIONS",
    "ExactSettings",
    "FastPath",
    "cpu_threads",
    "eager_stance",
    "exact_settings",
    "fused_optimizer_supported",
    "resolve_fast_path",
    "resolve_precision",
    "scaled_lr",
]
