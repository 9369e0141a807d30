"""OOD detection metrics with explicit conventions.

Conventions (used everywhere in flowood):

* A **score** is "higher = more in-distribution" (e.g. log-likelihood; for bits/dim pass ``-bpd``).
* The **in-distribution** test set is the **positive** class (label 1), OOD is negative (label 0).
* ``auroc``: area under the ROC curve; 0.5 is chance, values **below 0.5** mean the OOD set gets
  *higher* scores than the in-distribution set (the paper's failure mode).
* ``aupr_in``: average precision with in-distribution positive; ``aupr_out``: average precision
  with OOD positive and the score negated.
* ``fpr95``: fraction of OOD samples accepted (score ≥ threshold) at the threshold that accepts
  95% of in-distribution samples. Lower is better.

Non-finite scores are never dropped: NaN and −∞ rank as the *least* in-distribution value and +∞ as
the most, and how many there were is reported next to the metrics.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _finite_ranked(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).copy()
    s[np.isnan(s) | np.isneginf(s)] = low
    s[np.isposinf(s)] = high
    return s


def detection_metrics(in_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    """AUROC, AUPR-in, AUPR-out and FPR@95%TPR for scores where higher means in-distribution.

    Args:
        in_scores: ``(N_in,)`` scores of the in-distribution test set.
        ood_scores: ``(N_ood,)`` scores of an OOD set.

    Returns:
        dict with ``auroc``, ``aupr_in``, ``aupr_out``, ``fpr95`` and ``nonfinite`` (count in both sets).
    """
    in_scores = np.asarray(in_scores, dtype=np.float64).ravel()
    ood_scores = np.asarray(ood_scores, dtype=np.float64).ravel()
    if in_scores.size == 0 or ood_scores.size == 0:
        raise ValueError("detection metrics need at least one in-distribution and one OOD score")
    both = np.concatenate([in_scores, ood_scores])
    finite = both[np.isfinite(both)]
    lo = float(finite.min()) - 1.0 if finite.size else -1.0
    hi = float(finite.max()) + 1.0 if finite.size else 1.0
    s_in, s_ood = _finite_ranked(in_scores, lo, hi), _finite_ranked(ood_scores, lo, hi)
    y = np.concatenate([np.ones_like(s_in), np.zeros_like(s_ood)])
    s = np.concatenate([s_in, s_ood])
    fpr, tpr, _ = roc_curve(y, s)
    fpr95 = float(fpr[np.searchsorted(tpr, 0.95, side="left")])
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr_in": float(average_precision_score(y, s)),
        "aupr_out": float(average_precision_score(1 - y, -s)),
        "fpr95": fpr95,
        "nonfinite": int((~np.isfinite(both)).sum()),
    }


def summarize_scores(values: np.ndarray) -> dict[str, float]:
    """``mean``/``median``/``std`` over finite values, with ``n`` (all) and ``nonfinite`` counts."""
    v = np.asarray(values, dtype=np.float64).ravel()
    f = v[np.isfinite(v)]
    nan = float("nan")
    return {
        "mean": float(f.mean()) if f.size else nan,
        "median": float(np.median(f)) if f.size else nan,
        "std": float(f.std()) if f.size else nan,
        "n": int(v.size),
        "nonfinite": int(v.size - f.size),
    }
