"""Training: typed run configuration, optimisers and schedules, checkpoints, the training loop."""

from flowood.train.config import DataConfig, ModelConfig, RunConfig, TrainConfig, apply_overrides, load_config
from flowood.train.trainer import TrainResult, train

__all__ = [
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "load_config",
    "train",
]
