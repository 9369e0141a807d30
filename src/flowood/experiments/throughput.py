"""What scoring one image costs each detector of an evaluation (``images_per_second`` in the report and the
leaderboard): its own scoring time plus the shared work it reads — the run's flow pass, the CNN features of the
scored sets (timed without the content cache), the detectors it combines. Fits and auxiliary training are not
scoring costs (they are reported apart as ``fit_seconds``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from flowood.experiments.fit_context import EvaluationContext
from flowood.ood.detectors import DETECTORS, Detector, Samples


class DetectorResult(Protocol):
    """What the cost of a detector is read from (the evaluation's per-detector result)."""

    detector: Detector
    score_seconds: float


def _uses(det: Detector, what: str) -> bool:
    """Whether ``det``, or a detector it reads (``combined``'s inputs), asks for auxiliary ``what``."""
    names = [det.info.name, *getattr(det.settings, "inputs", ())]
    return any(what in DETECTORS[n].info.auxiliary for n in names)


def features_of_sets(context: EvaluationContext, chosen: list[Detector], sets: list[Samples]) -> float | None:
    """Extract every scored set's CNN features once, before any detector runs, when a detector reads them (so
    that no feature detector's own time includes them); returns what extracting them costs, in wall seconds: the
    extractor's time per image without the content cache (timed on a sample) times the images scored (``None``:
    no detector reads features). A learned extractor is trained or reused first (a fit cost, not counted)."""
    if not any(_uses(det, "features") for det in chosen) or not context.is_image:
        return None
    if context.aux.features.is_learned:
        context.learned_extractor()
    for s in sets:
        context.features(s)
    return context.feature_seconds_per_image(sets[0].images()) * sum(len(s) for s in sets)


@dataclass(frozen=True)
class SharedCosts:
    """Work done once per evaluation and read by several detectors (wall seconds over ``images`` samples):
    the run's flow pass (data loading included) and the CNN feature extraction of the scored sets."""

    flow_seconds: float
    feature_seconds: float | None
    images: int


def images_per_second(r: DetectorResult, results: Sequence[DetectorResult], costs: SharedCosts) -> float:
    """Scoring throughput of one detector: the images scored over its own scoring time, plus the shared work it
    reads — the flow pass (``reads_likelihood``), the feature extraction (``features``) — and the scoring time
    of the detectors it combines."""
    by_name = {x.detector.info.name: x for x in results}
    names = [r.detector.info.name, *getattr(r.detector.settings, "inputs", ())]
    seconds = r.score_seconds + sum(by_name[n].score_seconds for n in names[1:] if n in by_name)
    if any(DETECTORS[n].info.reads_likelihood for n in names):
        seconds += costs.flow_seconds
    if costs.feature_seconds is not None and any("features" in DETECTORS[n].info.auxiliary for n in names):
        seconds += costs.feature_seconds
    return round(costs.images / max(seconds, 1e-9), 1)
