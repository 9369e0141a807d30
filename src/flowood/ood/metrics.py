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
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _finite_ranked(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).copy()
    s[np.isnan(s) | np.isneginf(s)] = low
    s[np.isposinf(s)] = high
    return s


def _ranked_pair(in_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    in_scores = np.asarray(in_scores, dtype=np.float64).ravel()
    ood_scores = np.asarray(ood_scores, dtype=np.float64).ravel()
    both = np.concatenate([in_scores, ood_scores])
    finite = both[np.isfinite(both)]
    lo = float(finite.min()) - 1.0 if finite.size else -1.0
    hi = float(finite.max()) + 1.0 if finite.size else 1.0
    return _finite_ranked(in_scores, lo, hi), _finite_ranked(ood_scores, lo, hi)


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
    s_in, s_ood = _ranked_pair(in_scores, ood_scores)
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


def _rank_auroc(in_scores: np.ndarray, ood_scores: np.ndarray) -> np.ndarray:
    """AUROC along the last axis by the Mann-Whitney U statistic (ties count one half)."""
    n_in, n_ood = in_scores.shape[-1], ood_scores.shape[-1]
    ranks = rankdata(np.concatenate([in_scores, ood_scores], axis=-1), axis=-1)
    u = ranks[..., :n_in].sum(axis=-1) - n_in * (n_in + 1) / 2.0
    return u / (n_in * n_ood)


def paired_auroc_difference(
    in_a: np.ndarray,
    ood_a: np.ndarray,
    in_b: np.ndarray,
    ood_b: np.ndarray,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """AUROC(b) − AUROC(a) for two models scoring the *same* samples, with a paired bootstrap interval.

    Each bootstrap replicate draws the in-distribution and the OOD samples with replacement (the same
    draw for both models, so that their correlation is kept) and recomputes both AUROCs; the interval
    is the percentile interval of the differences. Scores follow the module's convention (higher = more
    in-distribution; non-finite values ranked as in :func:`detection_metrics`).

    Args:
        in_a, ood_a: ``(N_in,)`` / ``(N_ood,)`` scores of model a (e.g. the baseline).
        in_b, ood_b: the same samples, in the same order, scored by model b.
        n_boot: bootstrap replicates.
        level: coverage of the interval.
        seed: seed of the resampling.

    Returns:
        ``delta`` (on the full sample), ``low``, ``high``, ``level``, ``n_boot``, ``auroc_a``, ``auroc_b``.
    """
    in_a, ood_a = _ranked_pair(in_a, ood_a)
    in_b, ood_b = _ranked_pair(in_b, ood_b)
    if in_a.shape != in_b.shape or ood_a.shape != ood_b.shape:
        raise ValueError(
            "paired_auroc_difference needs both models' scores of the same samples: got "
            f"{in_a.size}/{ood_a.size} (in/OOD) for a and {in_b.size}/{ood_b.size} for b"
        )
    if in_a.size == 0 or ood_a.size == 0:
        raise ValueError("paired_auroc_difference needs at least one in-distribution and one OOD score")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    auroc_a, auroc_b = float(_rank_auroc(in_a, ood_a)), float(_rank_auroc(in_b, ood_b))
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot)
    chunk = max(1, 4_000_000 // (in_a.size + ood_a.size))  # bounds the memory of one ranking call
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        i = rng.integers(0, in_a.size, size=(k, in_a.size))
        o = rng.integers(0, ood_a.size, size=(k, ood_a.size))
        deltas[start : start + k] = _rank_auroc(in_b[i], ood_b[o]) - _rank_auroc(in_a[i], ood_a[o])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    return {
        "delta": auroc_b - auroc_a,
        "low": float(low),
        "high": float(high),
        "level": level,
        "n_boot": n_boot,
        "auroc_a": auroc_a,
        "auroc_b": auroc_b,
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


METRIC_NAMES = ("auroc", "aupr_in", "aupr_out", "fpr95")


def _curve_counts(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true / false positives at each distinct threshold, highest score first (ties together)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], positive[order]
    last = np.r_[s[1:] != s[:-1], True]
    tps = np.cumsum(y)[last]
    fps = np.cumsum(1.0 - y)[last]
    return tps, fps


def _average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """sklearn's ``average_precision_score`` (step rule over distinct thresholds), without its validation."""
    tps, fps = _curve_counts(scores, positive)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def rank_metrics(in_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    """AUPR-in, AUPR-out and FPR95 of finite scores (higher = in-distribution), fast enough for bootstraps.

    AUPR-in/out equal :func:`detection_metrics`'s (sklearn's average precision). FPR95 is the OOD fraction
    accepted at the first threshold accepting at least 95 % of in-distribution samples over *all* distinct
    thresholds (sklearn's ``roc_curve(drop_intermediate=False)``), which can differ from
    :func:`detection_metrics`'s (computed on the curve with collinear points dropped) when ties make the
    curve straight at 95 %."""
    s = np.concatenate([in_scores, ood_scores])
    y = np.concatenate([np.ones(in_scores.size), np.zeros(ood_scores.size)])
    tps, fps = _curve_counts(s, y)
    tpr, fpr = tps / in_scores.size, fps / ood_scores.size
    k = int(np.searchsorted(tpr, 0.95, side="left"))
    return {
        "aupr_in": _average_precision(s, y),
        "aupr_out": _average_precision(-s, 1.0 - y),
        "fpr95": float(fpr[min(k, fpr.size - 1)]),
    }


def paired_metric_differences(
    in_a: np.ndarray,
    ood_a: np.ndarray,
    in_b: np.ndarray,
    ood_b: np.ndarray,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """``metric(b) - metric(a)`` for AUROC, AUPR-in, AUPR-out and FPR95 of two detectors scoring the *same*
    samples, each with a paired-bootstrap percentile interval (the same resampled indices for both detectors).

    AUROC uses :func:`paired_auroc_difference` (rank-based, ``max(n_boot, 1000)`` replicates); the other
    metrics are recomputed on ``n_boot`` replicates with :func:`rank_metrics` (the full-sample differences
    too, so that interval and estimate share one definition). For FPR95 lower is better, so a negative
    difference is a gain.

    Returns:
        ``{metric: {"delta", "low", "high", "level", "n_boot"}}``.
    """
    in_a, ood_a = _ranked_pair(in_a, ood_a)
    in_b, ood_b = _ranked_pair(in_b, ood_b)
    if in_a.shape != in_b.shape or ood_a.shape != ood_b.shape:
        raise ValueError(
            f"paired differences need both detectors' scores of the same samples: got {in_a.size}/{ood_a.size} "
            f"(in/OOD) for a and {in_b.size}/{ood_b.size} for b"
        )
    out: dict[str, dict[str, float]] = {}
    au = paired_auroc_difference(in_a, ood_a, in_b, ood_b, n_boot=max(n_boot, 1000), level=level, seed=seed)
    out["auroc"] = {k: au[k] for k in ("delta", "low", "high", "level", "n_boot")}
    full_a, full_b = rank_metrics(in_a, ood_a), rank_metrics(in_b, ood_b)
    rng = np.random.default_rng(seed + 1)
    reps: dict[str, list[float]] = {m: [] for m in METRIC_NAMES[1:]}
    for _ in range(n_boot):
        i = rng.integers(0, in_a.size, size=in_a.size)
        o = rng.integers(0, ood_a.size, size=ood_a.size)
        ma, mb = rank_metrics(in_a[i], ood_a[o]), rank_metrics(in_b[i], ood_b[o])
        for m in reps:
            reps[m].append(mb[m] - ma[m])
    tail = (1.0 - level) / 2.0
    for m, values in reps.items():
        low, high = np.quantile(values, [tail, 1.0 - tail])
        out[m] = {
            "delta": full_b[m] - full_a[m],
            "low": float(low),
            "high": float(high),
            "level": level,
            "n_boot": n_boot,
        }
    return out


def paired_class_summary(
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Mean and worst AUROC over several OOD sets (one per held-out class), each against a reference detector, with
    paired-bootstrap intervals of the differences.

    Each pair is ``(in_a, ood_a, in_b, ood_b)``: the reference ``a`` and the detector ``b`` scoring the same
    in-distribution and OOD samples of one set (the sets may differ in size and model). A replicate resamples every
    set's in-distribution and OOD samples with replacement (the same draw for ``a`` and ``b``), independently per
    set, and recomputes all AUROCs.

    Returns:
        ``{"mean": {...}, "worst": {...}}``, each with ``auroc`` (b's, on the full samples), ``reference`` (a's),
        ``delta`` (b − a: of the means, or of the worst sets' AUROCs), ``low``, ``high``, ``level``, ``n_boot``; the
        worst also ``index`` (b's worst set) and ``reference_index``.
    """
    if not pairs:
        raise ValueError("paired_class_summary needs at least one set")
    ranked = []
    for in_a, ood_a, in_b, ood_b in pairs:
        ra, oa = _ranked_pair(in_a, ood_a)
        rb, ob = _ranked_pair(in_b, ood_b)
        if ra.shape != rb.shape or oa.shape != ob.shape:
            raise ValueError("paired_class_summary needs both detectors' scores of the same samples in each set")
        ranked.append((ra, oa, rb, ob))
    full_a = np.array([float(_rank_auroc(ra, oa)) for ra, oa, _, _ in ranked])
    full_b = np.array([float(_rank_auroc(rb, ob)) for _, _, rb, ob in ranked])
    rng = np.random.default_rng(seed)
    reps_a = np.empty((n_boot, len(ranked)))
    reps_b = np.empty((n_boot, len(ranked)))
    for j, (ra, oa, rb, ob) in enumerate(ranked):
        chunk = max(1, 4_000_000 // (ra.size + oa.size))
        for start in range(0, n_boot, chunk):
            k = min(chunk, n_boot - start)
            i = rng.integers(0, ra.size, size=(k, ra.size))
            o = rng.integers(0, oa.size, size=(k, oa.size))
            reps_a[start : start + k, j] = _rank_auroc(ra[i], oa[o])
            reps_b[start : start + k, j] = _rank_auroc(rb[i], ob[o])
    tail = (1.0 - level) / 2.0

    def interval(deltas: np.ndarray) -> tuple[float, float]:
        low, high = np.quantile(deltas, [tail, 1.0 - tail])
        return float(low), float(high)

    def summary(b: float, a: float, deltas: np.ndarray) -> dict[str, float]:
        low, high = interval(deltas)
        return {"auroc": b, "reference": a, "delta": b - a, "low": low, "high": high, "level": level, "n_boot": n_boot}

    worst = summary(float(full_b.min()), float(full_a.min()), reps_b.min(1) - reps_a.min(1))
    worst.update(index=int(full_b.argmin()), reference_index=int(full_a.argmin()))
    return {
        "mean": summary(float(full_b.mean()), float(full_a.mean()), reps_b.mean(1) - reps_a.mean(1)),
        "worst": worst,
    }
