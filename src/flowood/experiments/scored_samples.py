"""The samples an evaluation scores: one function, used by the likelihood evaluation and by every detector."""

from __future__ import annotations

from flowood.data import pick_ood_split, pick_split
from flowood.data.base import ArrayDataset
from flowood.errors import DatasetError
from flowood.experiments.runs import Run
from flowood.train.data import load_split


def scored_split(run: Run, name: str | None, split: str = "test") -> str:
    """The split of dataset ``name`` (``None``: the run's own) that an evaluation of ``run`` scores.

    Negative training drew its OOD batches from the negative set's training part, so when that set is
    evaluated as OOD only its held-out half is scored (``half-test``; the embedded ``mnist-mini`` has no train
    split, its ``half-train``/``half-test`` halves serve instead). Any other OOD set is scored through
    :func:`flowood.data.pick_ood_split`: a single user file or folder without splits is scored whole."""
    cfg = run.config.data
    if name is not None and name == cfg.negative_dataset and split == "test":
        split = "half-test"
    elif name is not None and name != cfg.dataset and split == "test":
        return pick_ood_split(name)
    return pick_split(name or cfg.dataset, split)


def scored_samples(
    run: Run,
    name: str | None,
    *,
    split: str = "test",
    limit: int | None = None,
    classes: list[int] | None = None,
) -> ArrayDataset:
    """Load exactly the samples an evaluation of ``run`` scores for dataset ``name``, in scoring order.

    Args:
        run: the loaded run (its data config, seed and input shape decide the subset and the conversion).
        name: an OOD dataset, or ``None`` for the run's own in-distribution dataset.
        split: the split asked for (``test``; see :func:`scored_split` for negative training's held-out half).
        limit: at most this many samples (a seeded subset).
        classes: keep only these labels.

    Raises:
        DatasetError: the samples do not have the shape the run's flow (or its standardiser) takes.
    """
    cfg = run.config.data
    ds = load_split(
        cfg,
        scored_split(run, name, split),
        name=name,
        limit=limit,
        classes=classes,
        seed=run.config.seed,
        like_shape=run.flow.input_shape,
    )
    expected = tuple(run.flow.input_shape)
    std = run.standardizer
    if ds.kind == "vector" and std is not None and std.in_dim is not None:
        # Vectors are compared with what the run's standardizer takes in (it may drop features or project).
        expected = (std.in_dim,)
    if tuple(ds.shape) != expected:
        which = "the run's in-distribution set" if name is None else f"OOD set {name}"
        hint = ""
        if name is not None and name in cfg.ood:
            # Often a preset's OOD set kept after data.dataset was changed to the user's own data.
            hint = (
                f"; {name} is in the run's data.ood (from its config or preset): score sets of the run's shape "
                "with `flowood evaluate RUN --ood NAME`"
            )
        raise DatasetError(
            f"{which}: {ds.name} samples have shape {tuple(ds.shape)} but the run expects {expected}{hint}"
        )
    return ds
