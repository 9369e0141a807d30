"""Why DoSE falls short on a run, and how far its statistics could go: a diagnostic, not a detector.

For a trained image run it computes the per-sample flow statistics DoSE uses (``flow_statistics``: per-scale
log-det and ``||z_i||^2``, the preprocessing's log-det, ``log N(z)``) on training, test and OOD images and
prints AUROCs (in-distribution test vs each OOD set) of:

* each statistic alone, in its better direction (``-``: the OOD set has the larger values). Choosing the
  direction looks at the OOD data, so these are upper bounds of a one-statistic test, not detectors;
* unsupervised densities fitted to the **training** statistics, as DoSE does: the joint Gaussian KDE with a
  cross-validated bandwidth (flowood's ``dose``), a product of one-dimensional KDEs (one bandwidth per
  statistic), Gaussian mixtures, an isolation forest and the k-th nearest-neighbour distance;
* a supervised bound: 5-fold cross-validated logistic regression on test vs OOD statistics. It is trained
  on the OOD labels, so it is *not* a detector; it says whether the statistics separate the sets at all;
* with ``--local RUN2``: the likelihood ratio ``log p_RUN(x) - log p_RUN2(x)`` against a second flow (e.g. a
  one-scale RealNVP with a small receptive field trained on the same data), with the same dequantisation noise.

    python benchmarks/dose_diagnostics.py RUN --ood mnist-mini glyphs [--local RUN2] [--train 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, cross_val_predict
from sklearn.neighbors import KernelDensity, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from flowood.experiments.runs import load_run
from flowood.experiments.scored_samples import scored_samples
from flowood.ood.detectors.dose import BANDWIDTHS, dose_statistics
from flowood.ood.detectors.flowstats import LOG_2PI, FlowStatistics, flow_statistics
from flowood.train.data import load_split


def statistics_table(stats: FlowStatistics) -> tuple[list[str], np.ndarray]:
    """``(names, (N, 2 + 3S))``: preprocessing log-det, log N(z), and per scale its log-det and ``||z_i||^2``."""
    gauss = -0.5 * (stats.scale_sq_norm + stats.scale_dims[None, :] * LOG_2PI)
    logdet = stats.scale_log_likelihood - gauss
    s = stats.num_scales
    names = ["preprocess_logdet", "log_N(z)", *[f"logdet_scale{i}" for i in range(s)]]
    names += [f"sq_norm_scale{i}" for i in range(s)] + [f"bpd_scale{i}" for i in range(s)]
    cols = [stats.preprocess_logdet, stats.base_log_density, logdet, stats.scale_sq_norm, stats.scale_bits_per_dim()]
    return names, np.column_stack(cols)


def auroc(score_in: np.ndarray, score_out: np.ndarray) -> float:
    """AUROC with in-distribution as the positive class (higher score = in-distribution)."""
    y = np.r_[np.ones(len(score_in)), np.zeros(len(score_out))]
    return float(roc_auc_score(y, np.r_[score_in, score_out]))


def fitted_scores(train: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Unsupervised densities / outlier scores fitted on the training statistics (higher = in-distribution)."""
    scaler = StandardScaler().fit(train)
    x = scaler.transform(train)
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    grid = {"bandwidth": list(BANDWIDTHS)}
    joint = GridSearchCV(KernelDensity(), grid, cv=5).fit(x).best_estimator_
    out[f"joint KDE (bandwidth {joint.bandwidth:.2f})"] = lambda a: joint.score_samples(scaler.transform(a))
    marginals = [
        GridSearchCV(KernelDensity(), grid, cv=5).fit(x[:, j : j + 1]).best_estimator_ for j in range(x.shape[1])
    ]

    def product(a: np.ndarray) -> np.ndarray:
        z = scaler.transform(a)
        return np.sum([m.score_samples(z[:, j : j + 1]) for j, m in enumerate(marginals)], axis=0)

    out["product of 1-D KDEs"] = product
    for k in (1, 4, 16):
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=0).fit(x)
        out[f"Gaussian mixture, {k} full"] = lambda a, g=gmm: g.score_samples(scaler.transform(a))
    forest = IsolationForest(n_estimators=300, random_state=0).fit(x)
    out["isolation forest"] = lambda a: forest.score_samples(scaler.transform(a))
    nn = NearestNeighbors(n_neighbors=20).fit(x)
    out["20th-neighbour distance"] = lambda a: -nn.kneighbors(scaler.transform(a))[0][:, -1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--ood", nargs="+", default=["mnist-mini", "glyphs"])
    ap.add_argument("--local", help="a second run: also report the likelihood ratio log p_RUN - log p_LOCAL")
    ap.add_argument("--train", type=int, default=2000, help="training images the densities are fitted on")
    ap.add_argument("--limit", type=int, default=2000, help="test / OOD images per set")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    run = load_run(args.run)
    d = run.config.data
    sets = {"train": load_split(d, "train", limit=args.train, classes=d.classes, seed=run.config.seed).data}
    sets["test"] = scored_samples(run, None, limit=args.limit, classes=d.classes).data
    for name in args.ood:
        sets[name] = scored_samples(run, name, limit=args.limit).data
    stats = {k: flow_statistics(run.flow, v, kind="image", seed=1) for k, v in sets.items()}
    tables = {k: statistics_table(s) for k, s in stats.items()}
    names = tables["test"][0]
    table = {k: t[1] for k, t in tables.items()}
    dose = {k: dose_statistics(s) for k, s in stats.items()}
    header = " | ".join(args.ood)
    print(f"run {args.run}: {len(sets['train'])} training, {len(sets['test'])} test images; AUROC vs {header}")
    print("\n## each statistic alone (better direction; '-' = OOD larger; an upper bound, not a detector)")
    for j, n in enumerate(names):
        cells = []
        for o in args.ood:
            a = auroc(table["test"][:, j], table[o][:, j])
            cells.append(f"{max(a, 1 - a):.3f}{'-' if a < 0.5 else '+'}")
        print(f"{n:24s} " + "  ".join(cells))
    for label, data in (("DoSE's statistics", dose), ("all statistics above", table)):
        print(f"\n## unsupervised, fitted on the training statistics: {label}")
        for est, fn in fitted_scores(data["train"]).items():
            print(f"{est:32s} " + "  ".join(f"{auroc(fn(data['test']), fn(data[o])):.3f}" for o in args.ood))
    print("\n## supervised bound (5-fold logistic regression on test vs OOD labels; NOT a detector)")
    for o in args.ood:
        x = np.r_[table["test"], table[o]]
        y = np.r_[np.ones(len(table["test"])), np.zeros(len(table[o]))]
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        p = cross_val_predict(clf, x, y, cv=5, method="predict_proba")[:, 1]
        print(f"{o:24s} {roc_auc_score(y, p):.4f}")
    if args.local:
        local = load_run(args.local)
        print(f"\n## likelihood ratio against {args.local} (same dequantisation noise)")
        keys = ("test", *args.ood)
        other = {k: flow_statistics(local.flow, sets[k], kind="image", seed=1).log_likelihood for k in keys}
        ratio = {k: stats[k].log_likelihood - other[k] for k in keys}
        print("ratio log p_RUN - log p_LOCAL  " + "  ".join(f"{auroc(ratio['test'], ratio[o]):.4f}" for o in args.ood))
        print("log p_LOCAL alone              " + "  ".join(f"{auroc(other['test'], other[o]):.4f}" for o in args.ood))
    print(f"\n{time.perf_counter() - start:.0f} s, {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
