"""pytorch-ood interop: a flowood detector behind pytorch-ood's ``Detector`` conventions.

pytorch-ood (``pip install pytorch-ood``) detectors have ``fit(loader)`` on in-distribution data and
``predict(x) -> Tensor`` with **higher = more OOD**, the opposite of flowood's convention; this adapter negates
flowood's score. It duck-types the conventions rather than subclassing, so flowood does not depend on
pytorch-ood.

Metrics: pytorch-ood 0.4.0's ``OODMetrics`` ranks the raw scores (counts at each distinct threshold), so raw
negative log-likelihoods of any magnitude are fine. Older pytorch-ood versions computed AUROC through
torchmetrics, which squashes scores outside ``[0, 1]`` with a sigmoid (pytorch-ood PR #144): NLLs in nats are
then all ``1.0`` and the AUROC collapses to 0.5. With such versions pass ``unit_interval=True``, which maps the
score through a fixed monotone squashing ``0.5 + atan(s / scale) / pi`` (rank-preserving, so every rank
metric is unchanged) before returning it.

Only detectors whose fit needs the flow and in-distribution training samples, one score per sample, work here
(:func:`flowood.ood.detectors.adaptable_detectors`: those whose ``DetectorInfo.auxiliary`` is empty and that are
not per batch); those with auxiliary models train them through ``flowood evaluate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowood.errors import ConfigError
from flowood.flows import NormalizingFlow
from flowood.ood.detectors.base import Detector, Samples, adaptable_detectors, get_detector
from flowood.ood.likelihood import score_samples


def _as_uint8(x: Tensor) -> Tensor:
    """Images in ``[0, 1]`` (float) or ``0..255`` (uint8) → ``uint8 (B, C, H, W)``."""
    if x.dtype == torch.uint8:
        return x.cpu()
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


class _FlowContext:
    """A minimal :class:`~flowood.ood.detectors.FitContext`: a flow and in-distribution training samples."""

    def __init__(self, flow: NormalizingFlow, samples: Samples, batch_size: int) -> None:
        self.flow = flow
        self.num_dims = flow.num_dims
        self.is_image = flow.preprocess is not None
        self.in_dataset = "in-distribution"
        self.evaluated: list[str] = []
        self.batch_size = batch_size
        self.input_transform: Callable[[Tensor], Tensor] | None = None
        self._samples = samples

    def train_samples(self, limit: int | None) -> Samples:
        if limit is None or limit >= len(self._samples):
            return self._samples
        s = self._samples
        return Samples(s.key, s.data[:limit], s.kind, s.bpd[:limit], noise_seed=s.noise_seed)

    def _no_aux(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("this detector needs auxiliary models; compute it with `flowood evaluate --scores`")

    background_flow = ensemble_member = general_flow = embedding_flow = features = describe_features = _no_aux
    feature_labels = feature_coordinates = calibration_samples = detector = _no_aux

    def log(self, message: str) -> None:
        pass


class PytorchOODDetector:
    """A flowood detector with pytorch-ood's conventions: ``fit(loader)``, ``predict(x)`` (higher = more OOD).

    Args:
        flow: a trained image flow.
        detector: a detector name from :func:`~flowood.ood.detectors.adaptable_detectors` or an unfitted
            :class:`Detector`.
        batch_size: scoring batch size.
        seed: seed of the dequantisation noise.
        unit_interval: squash the outlier score into ``(0, 1)`` monotonically (for pytorch-ood < 0.4, see the
            module docstring).
        scale: scale of that squashing (in the score's units).
        **settings: detector settings (``get_detector(name, **settings)``).
    """

    requires_fit = True

    def __init__(
        self,
        flow: NormalizingFlow,
        detector: str | Detector = "log_likelihood",
        *,
        batch_size: int = 256,
        seed: int = 0,
        unit_interval: bool = False,
        scale: float = 1.0,
        **settings: Any,
    ) -> None:
        name = detector if isinstance(detector, str) else detector.info.name
        adaptable = adaptable_detectors()
        if name not in adaptable:
            raise ConfigError(
                f"{name} cannot be adapted (it needs auxiliary models or scores batches); adaptable: "
                f"{', '.join(adaptable)}"
            )
        self.flow = flow
        self.detector = get_detector(name, **settings) if isinstance(detector, str) else detector
        self.batch_size = batch_size
        self.seed = seed
        self.unit_interval = unit_interval
        self.scale = scale

    def _samples(self, x: Tensor, key: str) -> Samples:
        data = _as_uint8(x)
        bpd = score_samples(self.flow, data, batch_size=self.batch_size, seed=self.seed)
        return Samples(key, data, "image", bpd, noise_seed=self.seed)

    def fit(self, loader: Iterable[Any], device: str | None = None) -> PytorchOODDetector:
        """Fit on in-distribution data: ``loader`` yields ``x`` or ``(x, y)`` batches of images."""
        xs = [batch[0] if isinstance(batch, list | tuple) else batch for batch in loader]
        if not xs:
            raise ConfigError("fit needs at least one in-distribution batch")
        train = self._samples(torch.cat(xs), "train")
        self.detector.fit(_FlowContext(self.flow, train, self.batch_size))
        return self

    def predict(self, x: Tensor) -> Tensor:
        """``(B,)`` outlier scores, higher = more OOD (flowood's score negated)."""
        s = -np.asarray(self.detector.score(self._samples(x, "batch")), dtype=np.float64)
        if self.unit_interval:
            s = 0.5 + np.arctan(s / self.scale) / math.pi
        return torch.from_numpy(s)

    def __call__(self, x: Tensor) -> Tensor:
        return self.predict(x)
