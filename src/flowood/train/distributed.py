"""Data-parallel training with ``torch.distributed`` (DistributedDataParallel), launched by ``torchrun``.

``torchrun --nproc_per_node=N -m flowood train ...`` runs the ordinary command in N processes. The
launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) is read here;
without it (or with ``WORLD_SIZE=1``) everything is single-process and nothing here does any work.

Conventions (documented in the README's "Performance" section):

* ``train.batch_size`` is the **global** batch; each rank processes ``batch_size / N`` samples and
  DistributedDataParallel averages gradients, so one step equals a single-process step at the same
  batch size and the learning rate (and ``lr_scaling``) refer to the global batch.
* Every rank holds the dataset and draws the same seeded per-epoch permutation; rank ``r`` takes
  slice ``r`` of each global batch (disjoint shards), so exact resume works unchanged.
* Dequantisation noise is drawn for the global batch and sliced the same way.
* Only rank 0 writes checkpoints, weights, metrics, TensorBoard logs and samples.
* Batch norm: per-rank batch statistics by default (like the original's DataParallel); running
  statistics are broadcast from rank 0 on every forward, so evaluation is identical on all ranks.
  ``train.sync_batchnorm=true`` switches to :class:`torch.nn.SyncBatchNorm` (CUDA only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from flowood.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when running with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and logs."""
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` as set by ``torchrun`` (defaults: single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def setup(info: DistInfo, device: torch.device) -> torch.device:
    """Initialise the process group (NCCL on CUDA, gloo on the CPU) and pick this rank's device.

    Returns:
        ``cuda:LOCAL_RANK`` when ``device`` is CUDA, else ``device``.
    """
    if not info.enabled:
        return device
    if device.type == "cuda":
        if torch.cuda.device_count() <= info.local_rank:
            raise ConfigError(
                f"rank {info.rank} needs GPU {info.local_rank} but only {torch.cuda.device_count()} are visible"
            )
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def cleanup(info: DistInfo) -> None:
    """Wait for all ranks, then tear the process group down."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(t: Tensor, info: DistInfo) -> Tensor:
    """Sum ``t`` over ranks in place (a no-op in a single process)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def per_rank_batch(global_batch: int, info: DistInfo) -> int:
    """The per-rank share of a global batch (must divide evenly)."""
    if global_batch % info.world_size:
        raise ConfigError(
            f"train.batch_size={global_batch} is the global batch and must be divisible by the number of "
            f"processes ({info.world_size})"
        )
    return global_batch // info.world_size
