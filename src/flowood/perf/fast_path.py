"""The fast path and exact mode: mixed precision, channels-last, ``torch.compile``, fused optimisers.

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
:class:`FastPath`. Exact mode is defined once, by :func:`exact_settings`: ``resolve_fast_path(device,
exact=True)`` builds the reference :class:`FastPath` from it, for ``flowood evaluate --exact``, the
benchmarks' reference rows and ``flowood train --exact`` alike: that flag sets ``train.exact: true``, which the
trainer passes on as ``exact=True`` (so TF32 and cuDNN autotuning are off on CUDA too); it also writes the
:func:`exact_settings` values into the run's ``config.yaml`` (``flowood.train.config.EXACT_OVERRIDES``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import Tensor, nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Accepted values of ``train.precision`` (and of ``flowood evaluate --precision``)."""
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class ExactSettings(TypedDict):
    """The settings exact mode pins, named as the ``train.*`` config fields and :func:`resolve_fast_path`'s
    keywords."""

    precision: str
    channels_last: bool
    compile: bool
    fused_optimizer: bool


def exact_settings() -> ExactSettings:
    """The one definition of exact mode's settings: fp32, contiguous, eager, the plain (for-each) optimiser.

    :func:`resolve_fast_path` with ``exact=True`` builds its :class:`FastPath` from these (and also switches
    cuDNN autotuning and TF32 off, backend flags that have no config field); :attr:`FastPath.is_exact`
    compares against them; the training CLI's ``--exact`` also records them in ``config.yaml``. A new dict on
    every call, so no caller can alter the definition for the others.
    """
    return {"precision": "fp32", "channels_last": False, "compile": False, "fused_optimizer": False}


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
        """Whether the forward pass is the reference one: fp32, eager, contiguous (:func:`exact_settings`).

        The optimiser setting is not compared: it does not change what the forward pass computes (and the
        CPU's fused Adam is exact fp32 arithmetic); nor are the backend flags.
        """
        exact = exact_settings()
        return (
            self.precision == exact["precision"]
            and self.compile == exact["compile"]
            and self.channels_last == exact["channels_last"]
        )

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

    def prepare_model(self, flow: nn.Module, *, backend: str = "inductor", also: Sequence[nn.Module] = ()) -> nn.Module:
        """Apply memory format and compilation to ``flow`` in place and return it.

        Compilation wraps ``flow.transform`` (:meth:`torch.nn.Module.compile`, in place), so parameter
        names, checkpoints, ``inverse`` and ``sample`` are unaffected. ``also``: submodules compiled too, e.g. the
        blocks that ``train.memory=invert`` calls one by one instead of calling the transform.
        """
        if self.channels_last:
            flow.to(memory_format=torch.channels_last)
        if self.compile:
            for target in (getattr(flow, "transform", flow), *also):
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
    arithmetic). ``exact=True`` ignores the other settings and returns the reference path:
    :func:`exact_settings` (fp32, contiguous, eager, the plain for-each optimiser) with cuDNN autotuning
    and TF32 off, so that fp32 is IEEE fp32 on Ampere and newer GPUs too.
    """
    if exact:
        return FastPath(device=device, **exact_settings(), cudnn_benchmark=False, allow_tf32=False)
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
