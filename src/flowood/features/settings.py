"""The feature pipeline of one evaluation: which pretrained classifier embeds the images, at what resolution, and
how many in-distribution images its feature models are fitted on (shared by every feature detector of a run and
by ``flowood demo --embeddings``)."""

from __future__ import annotations

from dataclasses import dataclass

from flowood.features.extractors import available_extractors
from flowood.settings import check, setting


@dataclass(frozen=True)
class FeatureSettings:
    """Attributes:
    extractor: the classifier (``flowood embed --list`` / :func:`~flowood.features.available_extractors`).
    size: input resolution in pixels (images are resized to ``size × size``; grey repeated to RGB).
    train_limit: in-distribution training images embedded (a seeded subset; ``None``: all).
    test_limit: in-distribution test images embedded for the embedding flow's per-epoch evaluation.
    """

    extractor: str = setting("efficientnet-lite0", choices=available_extractors, doc="the pretrained classifier")
    size: int = setting(64, ge=16, doc="input resolution in pixels")
    train_limit: int | None = setting(3000, ge=2, doc="training images embedded (null: all)")
    test_limit: int | None = setting(1000, ge=1, doc="test images embedded (null: all)")

    def __post_init__(self) -> None:
        check(self)

    @property
    def pipeline(self) -> str:
        """A folder name that says everything that decides the features written (``efficientnet-lite0-64px-…``)."""
        train = self.train_limit if self.train_limit is not None else "all"
        test = self.test_limit if self.test_limit is not None else "all"
        return f"{self.extractor}-{self.size}px-train{train}-test{test}"
