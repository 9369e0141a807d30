"""The feature pipeline of one evaluation: which classifier embeds the images (a pretrained one, or a small CNN
learnt from the run's own training split), at what resolution, and how many in-distribution images its feature
models are fitted on (shared by every feature detector of a run and by ``flowood demo --embeddings``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from flowood.features.extractors import available_extractors
from flowood.settings import check, setting

LEARNED = "learned"
"""The extractor name of the CNN trained on the evaluated run's own training split (:mod:`flowood.features.learned`)."""

LEARNED_OBJECTIVES = ("auto", "classify", "rotation")
"""What the learned extractor is trained to predict: the class (``classify``), the rotation of the image by
0/90/180/270 degrees (``rotation``, self-supervised), or ``auto``: the class when the training split has at least
two labels, else the rotation."""


def extractor_choices() -> list[str]:
    """Every value ``aux.features.extractor`` accepts: the registered pretrained extractors and ``learned``."""
    return [*available_extractors(), LEARNED]


@dataclass(frozen=True)
class LearnedSettings:
    """The CNN learnt from the run's training split (used when ``extractor`` is ``learned``).

    Attributes:
        objective: ``auto``, ``classify`` or ``rotation`` (:data:`LEARNED_OBJECTIVES`).
        steps: optimiser steps: the budget, in steps, so that the same settings give the same network on an idle
            and on a loaded machine.
        batch_size: images per step.
        width: channels of the first convolution block (doubled in each of the three blocks; the feature vector
            has ``4 * width`` entries).
        lr: Adam learning rate.
    """

    objective: str = setting("auto", choices=LEARNED_OBJECTIVES, doc="class, rotation, or auto (class if labelled)")
    steps: int = setting(1000, ge=1, doc="optimiser steps (the budget)")
    batch_size: int = setting(128, ge=2, doc="images per step")
    width: int = setting(16, ge=4, doc="channels of the first block (features: 4 x width)")
    lr: float = setting(1e-3, gt=0, doc="Adam learning rate")

    def __post_init__(self) -> None:
        check(self)

    @property
    def digest(self) -> str:
        """Eight hex digits naming these settings (part of the pipeline's folder name)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class FeatureSettings:
    """Attributes:
    extractor: a pretrained classifier (``flowood embed --list`` / :func:`~flowood.features.available_extractors`)
        or ``learned`` (a small CNN trained on the run's own training split, :class:`LearnedSettings`).
    size: input resolution in pixels of a pretrained extractor (images are resized to ``size × size``; grey
        repeated to RGB); the learned extractor works at the run's own resolution.
    train_limit: reference images: the in-distribution training images (a seeded subset of the training split's
        ``fit`` part; ``None``: all of it) every feature model is fitted on.
    test_limit: in-distribution test images embedded for the embedding flow's per-epoch evaluation.
    learned: the learned extractor's settings.
    """

    extractor: str = setting("efficientnet-lite0", choices=extractor_choices, doc="the classifier")
    size: int = setting(64, ge=16, doc="input resolution in pixels (pretrained extractors)")
    train_limit: int | None = setting(3000, ge=2, doc="reference training images embedded (null: all)")
    test_limit: int | None = setting(1000, ge=1, doc="test images embedded (null: all)")
    learned: LearnedSettings = LearnedSettings()

    def __post_init__(self) -> None:
        check(self)

    @property
    def is_learned(self) -> bool:
        return self.extractor == LEARNED

    @property
    def pipeline(self) -> str:
        """A folder name that says everything that decides the features written (``efficientnet-lite0-64px-…``,
        ``learned-<digest>-…``)."""
        train = self.train_limit if self.train_limit is not None else "all"
        test = self.test_limit if self.test_limit is not None else "all"
        what = f"{LEARNED}-{self.learned.digest}" if self.is_learned else f"{self.extractor}-{self.size}px"
        return f"{what}-train{train}-test{test}"
