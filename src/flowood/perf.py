"""The fast path: mixed precision, channels-last, ``torch.compile``, fused optimisers, batch-size scaling.

What the fast path changes, and why it stays exact in what it computes:

* **Precision.** ``auto`` means bf16 autocast on a CUDA device that supports it and fp32 elsewhere.
  Under autocast only the st-networks' convolutions / linear layers run in bf16 (or fp16). Every
  coupling upcasts ``s`` and ``t`` to fp32 before they touch the flow's state, and every
  log-determinant, the 1×1 convolutions, ActNorm, dequantisation, the logit transform and the base
  density run with autocast switched off (:func:`flowood.flows.base.float32_region`). The flow is
  therefore still an exactly invertible map with an exact fp32 log-determinant; low precision only
  perturbs *which* ``s``/``t`` the st-networks produce. Losses and scores are fp32.
* **channels_last** memory format for the convolution weights and the input batch (on for CUDA).
* **compile**: ``torch.compile`` of the flow's transform (the stack of couplings, in place, so
  ``state_dict`` keys do not change). Preprocessing, the base density and the inverse stay eager, so
  sampling and analysis work unchanged; train/eval/inference each compile once.
* **Fused Adam/AdamW** (``fused=True``) where PyTorch provides it for the device.
* **cuDNN autotuning** (``torch.backends.cudnn.benchmark``) on CUDA: batch shapes are fixed, so the
  fastest convolution algorithm is chosen once per shape. The exact path instead switches TF32 off for
  convolutions and matrix products, so that its "fp32" is IEEE fp32 on Ampere and newer GPUs too
  (PyTorch's default lets cuDNN use TF32). Both are applied by :meth:`FastPath.backends`, a context
  manager that restores the previous process-wide settings.

:func:`resolve_fast_path` turns the ``train.*`` settings (``auto`` values included) into a concrete
:class:`FastPath`; ``exact=True`` (the CLI's ``--exact``) forces fp32, eager, contiguous, unfused.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCALINGS = ("none", "linear", "sqrt")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on a CUDA device with bf16 support, ``fp32`` otherwise; others unchanged."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name != "auto":
        return name
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def fused_optimizer_supported(optimizer: str, device: torch.device) -> bool:
    """Whether PyTorch has a fused (single-kernel) implementation of ``optimizer`` on ``device``."""
    return optimizer in ("adam", "adamw") and device.type in ("cuda", "cpu")


@dataclass(frozen=True)
class FastPath:
    """Concrete performance settings for one device.

    Attributes:
        device: where the model runs.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast dtype of the st-networks).
        channels_last: convolution weights and image batches in NHWC memory format.
        compile: compile the flow's transform with ``torch.compile``.
        compile_mode: ``torch.compile`` mode (``default``, ``reduce-overhead``, ``max-autotune``, ...).
        fused_optimizer: use ``fused=True`` Adam/AdamW when available.
        cudnn_benchmark: let cuDNN autotune convolution algorithms (CUDA).
        allow_tf32: ``False`` forbids TF32 in cuDNN convolutions and CUDA matrix products, ``True``
            allows it in both, ``None`` leaves PyTorch's settings as they are.
    """

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    fused_optimizer: bool = False
    cudnn_benchmark: bool = False
    allow_tf32: bool | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or ``None`` for plain fp32."""
        return _DTYPES[self.precision]

    @property
    def is_exact(self) -> bool:
        """fp32, eager, contiguous: the reference path."""
        return self.precision == "fp32" and not self.compile and not self.channels_last

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for the forward pass (a no-op context for fp32)."""
        dtype = self.autocast_dtype
        if dtype is None or self.device.type not in ("cpu", "cuda"):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    @contextlib.contextmanager
    def backends(self) -> Iterator[None]:
        """Apply ``cudnn_benchmark`` / ``allow_tf32`` (process-wide backend flags) inside the context only."""
        cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
        saved = (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
        try:
            if self.cudnn_benchmark:
                cudnn.benchmark = True
            if self.allow_tf32 is not None:
                cudnn.allow_tf32 = self.allow_tf32
                matmul.allow_tf32 = self.allow_tf32
            yield
        finally:
            cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved

    def prepare_input(self, x: Tensor) -> Tensor:
        """Put an image batch in the configured memory format (vectors pass unchanged)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def prepare_model(self, flow: nn.Module, *, backend: str = "inductor") -> nn.Module:
        """Apply memory format and compilation to ``flow`` in place and return it.

        Compilation wraps ``flow.transform`` (:meth:`torch.nn.Module.compile`, in place), so parameter
        names, checkpoints, ``inverse`` and ``sample`` are unaffected.
        """
        if self.channels_last:
            flow.to(memory_format=torch.channels_last)
        if self.compile:
            target = getattr(flow, "transform", flow)
            if self.compile_mode == "default":
                target.compile(backend=backend)
            else:
                target.compile(backend=backend, mode=self.compile_mode)
        return flow

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary (logged and written by the benchmarks)."""
        return {
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "compile_mode": self.compile_mode,
            "fused_optimizer": self.fused_optimizer,
            "cudnn_benchmark": self.cudnn_benchmark,
            "allow_tf32": self.allow_tf32,
        }


def resolve_fast_path(
    device: torch.device,
    *,
    precision: str = "auto",
    channels_last: bool | None = None,
    compile: bool | None = None,
    compile_mode: str = "default",
    fused_optimizer: bool | None = None,
    optimizer: str = "adam",
    exact: bool = False,
) -> FastPath:
    """Resolve ``auto``/``None`` settings for ``device``.

    Defaults: on CUDA bf16 autocast, channels-last, ``torch.compile``, a fused optimiser and cuDNN
    autotuning; on the CPU fp32, contiguous, eager, fused Adam (the CPU fused kernel is exact fp32
    arithmetic). ``exact=True`` forces fp32 without TF32, eager, contiguous and the plain (for-each)
    optimiser.
    """
    if exact:
        return FastPath(device=device, allow_tf32=False)
    cuda = device.type == "cuda"
    return FastPath(
        device=device,
        cudnn_benchmark=cuda,
        precision=resolve_precision(precision, device),
        channels_last=cuda if channels_last is None else bool(channels_last),
        compile=cuda if compile is None else bool(compile),
        compile_mode=compile_mode,
        fused_optimizer=(
            fused_optimizer_supported(optimizer, device)
            if fused_optimizer is None
            else bool(fused_optimizer) and fused_optimizer_supported(optimizer, device)
        ),
    )


def eager_stance() -> contextlib.AbstractContextManager:
    """Run compiled modules eagerly inside this context (``torch.compiler.set_stance("force_eager")``,
    PyTorch ≥ 2.6; a no-op context on older versions)."""
    stance = getattr(torch.compiler, "set_stance", None)
    return stance("force_eager") if stance is not None else contextlib.nullcontext()


def scaled_lr(lr: float, batch_size: int, reference_batch_size: int | None, rule: str) -> float:
    """Learning rate for a (global) ``batch_size`` given ``lr`` tuned at ``reference_batch_size``.

    ``linear``: ``lr · B / B_ref`` (Goyal et al. 2017); ``sqrt``: ``lr · sqrt(B / B_ref)`` (the usual
    rule for Adam); ``none`` or no reference: ``lr`` unchanged.
    """
    if rule not in LR_SCALINGS:
        raise ValueError(f"lr_scaling must be one of {', '.join(LR_SCALINGS)}, got {rule!r}")
    if rule == "none" or not reference_batch_size:
        return lr
    ratio = batch_size / reference_batch_size
    return lr * (ratio if rule == "linear" else math.sqrt(ratio))


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """Temporarily set torch's intra-op threads (``None``: 1 on an overloaded CPU, else unchanged).

    On a CPU whose 1-minute load average already reaches its core count, two OpenMP threads per process
    were measured 5-27x slower than one (threads spin waiting for each other), so demos step down to one.
    """
    before = torch.get_num_threads()
    if threads is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - not available on every platform
            load = 0.0
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = 1 if load >= cores else before
    torch.set_num_threads(max(1, threads))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
