"""Backpropagation by inversion: training memory independent of the flow's depth.

In ``store`` mode (autograd's default) every layer of a flow keeps the activations its backward pass needs, so
training memory grows linearly with depth. A flow's layers are bijections, so their inputs need not be kept:
:class:`BackpropByInversion` runs each maximal run ("segment") of consecutive invertible blocks of the body inside
one :class:`torch.autograd.Function` that keeps only the segment's *output*. Its backward pass walks the segment
from the last block to the first, one block at a time: it reconstructs the block's input with ``inverse``,
recomputes the block's forward under autograd from that input and back-propagates the output's gradient *and the
log-determinant's* through it (the technique of RevNet / MemCNN / RevLib, applied to a flow whose log-det is a
second output). At any moment the backward pass holds one block's graph, the segment's state and its gradient.

Which modules take part is a class attribute, :attr:`InvertibleModule.backprop <flowood.flows.base.InvertibleModule>`:

* ``"invert"`` (recomputed from its inverse): :class:`~flowood.flows.coupling.AffineCoupling`,
  :class:`~flowood.flows.splines.SplineCoupling`, :class:`~flowood.flows.normalization.ActNorm`,
  :class:`~flowood.flows.invconv.InvConv1x1`, :class:`~flowood.flows.invconv.InvConv1x1LU` and Jet's
  :class:`~flowood.flows.jet.JetCoupling`: one-pass inverses, exact up to rounding;
* ``"free"``: :class:`~flowood.flows.reshape.Squeeze` / :class:`~flowood.flows.reshape.Unsqueeze`, permutations
  for which autograd saves nothing; they join a segment or run as they are;
* containers are opened: :class:`~flowood.flows.base.FlowSequential`, :class:`~flowood.flows.multiscale.FactorOut`
  (the split and the concatenation save nothing; its inner scale is a body of its own) and
  :class:`~flowood.flows.transformer.TokenFlow` (patchify / unpatchify are permutations);
* ``"store"`` (the default of any other module): the module runs under autograd and keeps its activations.
  :class:`~flowood.flows.autoregressive.MaskedAutoregressiveTransform` (MAF) and TarFlow's
  :class:`~flowood.flows.tarflow.TarFlowBlock` are exact but their inverses take ``D`` (resp. ``T``) sequential
  passes, so recomputing them would cost far more than it saves; a layer whose inverse depends on what it saw in
  the forward pass (a batch-norm *flow layer* in training mode, whose inverse needs the batch statistics of the
  unknown input) cannot be reconstructed from its output and must store too (flowood has none).

Batch norm *inside* an st-network is fine: the st-network sees the conditioning half, which the inverse recovers,
so train-mode batch statistics are recomputed from (almost) the same values; the running statistics are restored
around the inverse and the recomputation, so they are updated once per step, as in ``store`` mode. Dropout is
replayed with the random state the forward pass used (and the global random stream is left as ``store`` leaves
it). Under autocast the backward pass re-enters the forward pass's autocast state.

Numerical safety. Reconstruction errors accumulate from a segment's end to its start. Errors are measured relative
to the tensor's scale: ``max|a − b| / max(max|b|, 1)``. With tolerance ``tol`` (``train.invert_tolerance``):

* before the first step (:meth:`BackpropByInversion.check`, on the first batch, the weights as they are), a block
  whose own inverse misses its input by more than ``tol`` keeps storing; where the error of a block's input rebuilt
  from the segment's end exceeds ``tol`` the segment is cut after that block (the next block's input is kept: one
  tensor), so it is rebuilt from its exact output;
* during training every recomputed block also yields its round-trip residual ``f(f⁻¹(y)) − y`` at no extra pass;
  its maximum is read with the training step's one device→host read (:meth:`BackpropByInversion.max_residual`)
  and a block above ``tol`` keeps storing from the next step (:meth:`BackpropByInversion.fall_back`).

Each fallback is reported once as a warning naming the block and the error (:meth:`take_warnings`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from flowood.flows.base import FlowSequential, InvertibleModule, zero_logdet
from flowood.flows.multiscale import FactorOut
from flowood.flows.reshape import patchify, unpatchify
from flowood.flows.transformer import TokenFlow

MEMORY_MODES = ("store", "invert")
"""Values of ``train.memory``."""

DEFAULT_TOLERANCE = 1e-4
"""Default bound on a reconstruction error relative to the tensor's scale (see the module docstring): about 10³
times float32's rounding. Measured at initialisation (zero-initialised output layers drawn at random): the paper's
FashionMNIST RealNVP and Glow and CelebA RealNVP accumulate at most 5.1e-6 in float32 (no fallback), Glow-CelebA 95
(5 cuts bring it to 7.2e-5); under bf16 autocast accumulated errors reach 1.6e-3 – 180, and cuts keep them under the
bound (benchmarks/RESULTS.md, 2026-12-08)."""

INVERT, FREE, STORE = "invert", "free", "store"


def _containers() -> tuple[type, ...]:
    return (FlowSequential, FactorOut, TokenFlow)


def backprop_kind(module: nn.Module) -> str:
    """``"invert"``, ``"free"`` or ``"store"``: how :class:`BackpropByInversion` treats ``module``."""
    return cast(str, getattr(type(module), "backprop", STORE))


def relative_error(a: Tensor, b: Tensor) -> Tensor:
    """``max|a − b| / max(max|b|, 1)`` as a float32 scalar on the device (no host sync); non-finite entries count 0
    (a non-finite step is the non-finite guard's business, not a reconstruction error)."""
    diff = (a.float() - b.float()).abs()
    diff = torch.where(torch.isfinite(diff), diff, torch.zeros((), device=diff.device))
    scale = b.float().abs()
    scale = torch.where(torch.isfinite(scale), scale, torch.zeros((), device=scale.device))
    return diff.max() / scale.max().clamp_min(1.0) if diff.numel() else diff.new_zeros(())


def _batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def _stochastic(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in module.modules())


@contextlib.contextmanager
def frozen_running_stats(norms: Sequence[nn.modules.batchnorm._BatchNorm]) -> Iterator[None]:
    """Batch-norm running statistics as they were on entry, whatever the calls inside do (train-mode batch norm
    updates them on every call; the reconstruction and the recomputation must not count as more batches)."""
    saved = [
        [b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None] for m in norms
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, values in zip(norms, saved, strict=True):
                buffers = [b for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
                for buf, value in zip(buffers, values, strict=True):
                    buf.copy_(value)


@dataclass
class _RngState:
    cpu: Tensor
    device: tuple[int, Tensor] | None


def _rng_capture(device: torch.device) -> _RngState:
    dev = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        dev = (index, torch.cuda.get_rng_state(index))
    return _RngState(torch.get_rng_state(), dev)


@contextlib.contextmanager
def _rng_replay(state: _RngState | None) -> Iterator[None]:
    """Inside: the random state of ``state``; after: the random state as it was before (``fork_rng``)."""
    if state is None:
        yield
        return
    devices = [state.device[0]] if state.device is not None else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state.cpu)
        if state.device is not None:
            torch.cuda.set_rng_state(state.device[1], state.device[0])
        yield


@dataclass
class _Block:
    """One block of a segment and what its recomputation needs."""

    index: int
    module: InvertibleModule
    params: list[nn.Parameter]
    norms: list[nn.modules.batchnorm._BatchNorm]
    stochastic: bool
    rng: _RngState | None = None


@dataclass
class _Segment:
    """Consecutive blocks run as one autograd node that keeps only its output."""

    runner: BackpropByInversion
    blocks: list[_Block] = field(default_factory=list)


class _InvertedSegment(torch.autograd.Function):
    """``(segment, x, *params) -> (y, logdet)``, keeping ``y`` only (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, segment: _Segment, x: Tensor, *params: Tensor) -> tuple[Tensor, Tensor]:
        device_type = x.device.type
        ctx.autocast = (
            device_type,
            torch.is_autocast_enabled(device_type),
            torch.get_autocast_dtype(device_type) if device_type in ("cpu", "cuda") else None,
        )
        y, logdet = x, zero_logdet(x)
        for block in segment.blocks:
            # Dropout must draw the same masks when the block is inverted and recomputed.
            block.rng = _rng_capture(x.device) if block.stochastic and block.module.training else None
            y, ld = block.module(y)
            logdet = logdet + ld
        ctx.segment = segment
        ctx.save_for_backward(y)
        return y, logdet

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: Tensor | None, grad_logdet: Tensor | None) -> tuple[Tensor | None, ...]:
        segment: _Segment = ctx.segment
        runner = segment.runner
        (y,) = ctx.saved_tensors
        y = y.detach()
        params = runner.param_list(segment)
        position = {id(p): k for k, p in enumerate(params)}
        param_grads: list[Tensor | None] = [None] * len(params)
        if grad_y is None:
            grad_y = torch.zeros_like(y)
        device_type, enabled, dtype = ctx.autocast
        autocast = (
            torch.autocast(device_type, dtype=dtype, enabled=enabled) if dtype is not None else contextlib.nullcontext()
        )
        for block in reversed(segment.blocks):
            module = block.module
            fused = getattr(module, "reconstruct", None)
            if fused is None:
                with frozen_running_stats(block.norms), _rng_replay(block.rng), autocast, torch.no_grad():
                    x = module.inverse(y)
                leaves: tuple[Tensor, ...] = (x.detach().requires_grad_(True),)
            # The running statistics are restored only after the gradient: batch norm's autograd node keeps them.
            with frozen_running_stats(block.norms):
                with _rng_replay(block.rng), autocast, torch.enable_grad():
                    if fused is None:
                        y_again, logdet = module(leaves[0])
                    else:
                        leaves, x, y_again, logdet = fused(y)
                runner.record_residual(block.index, relative_error(y_again.detach(), y))
                outputs, grads = [y_again], [grad_y]
                if grad_logdet is not None and logdet.requires_grad:
                    outputs.append(logdet)
                    grads.append(grad_logdet)
                found = torch.autograd.grad(outputs, [*leaves, *block.params], grads, allow_unused=True)
            input_grads = [g for g in found[: len(leaves)] if g is not None]
            grad_y = sum(input_grads[1:], input_grads[0]) if input_grads else torch.zeros_like(x)
            for p, g in zip(block.params, found[len(leaves) :], strict=True):
                if g is None:
                    continue
                k = position[id(p)]
                before = param_grads[k]
                param_grads[k] = g if before is None else before + g
            y = x.detach()
            block.rng = None
        return (None, grad_y if ctx.needs_input_grad[1] else None, *param_grads)


class BackpropByInversion:
    """Runs a flow body so that its invertible blocks keep no activations (see the module docstring).

    Args:
        body: the flow's transform (``NormalizingFlow.transform``).
        tolerance: bound on the relative reconstruction error (:data:`DEFAULT_TOLERANCE`).

    Blocks are numbered in ``body.modules()`` order; :attr:`stored` holds those that fell back to storing,
    :attr:`cuts` those whose input is kept (a segment starts there).
    """

    def __init__(self, body: InvertibleModule, tolerance: float = DEFAULT_TOLERANCE) -> None:
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        self.body = body
        self.tolerance = float(tolerance)
        self.blocks: list[InvertibleModule] = [
            cast(InvertibleModule, m) for m in body.modules() if backprop_kind(m) in (INVERT, FREE)
        ]
        self._index = {id(m): k for k, m in enumerate(self.blocks)}
        names = {id(m): name for name, m in body.named_modules()}
        self.names = [names.get(id(m), "") or type(m).__name__ for m in self.blocks]
        self.stored: set[int] = set()
        self.cuts: set[int] = set()
        self.checked = False
        self._residuals: Tensor | None = None
        self._warnings: list[str] = []

    # ------------------------------------------------------------------------------------------- running it

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The body's ``(y, logdet)`` of ``x``, backpropagating by inversion (run :meth:`check` first if not yet)."""
        if not self.checked:
            self.check(x)
        return self._run(self.body, x)

    def _run(self, module: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        if isinstance(module, FlowSequential):
            return self._sequence(list(module), x)
        if isinstance(module, FactorOut):
            a, b = x[:, : module.keep], x[:, module.keep :]
            a, logdet = self._run(module.inner, a)
            return torch.cat((a, b), dim=1), logdet
        if isinstance(module, TokenFlow):
            y, logdet = self._run(module.blocks, patchify(x, module.patch_size))
            return unpatchify(y, module.patch_size, module.shape), logdet
        return self._sequence([module], x)

    def _sequence(self, layers: Sequence[nn.Module], x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = zero_logdet(x)
        pending: list[InvertibleModule] = []

        def flush(x: Tensor) -> Tensor:
            nonlocal logdet
            if pending:
                x, ld = self._segment(pending, x)
                logdet = logdet + ld
                pending.clear()
            return x

        for layer in layers:
            kind = backprop_kind(layer)
            index = self._index.get(id(layer))
            if kind == INVERT and index not in self.stored:
                if index in self.cuts:
                    x = flush(x)
                pending.append(cast(InvertibleModule, layer))
            elif kind == FREE and pending and index not in self.cuts:
                pending.append(cast(InvertibleModule, layer))
            else:
                x = flush(x)
                if isinstance(layer, _containers()):
                    x, ld = self._run(layer, x)
                else:
                    x, ld = layer(x)  # stored: autograd keeps what it needs
                logdet = logdet + ld
        x = flush(x)
        return x, logdet

    def _segment(self, modules: Sequence[InvertibleModule], x: Tensor) -> tuple[Tensor, Tensor]:
        if all(backprop_kind(m) == FREE for m in modules):
            logdet = zero_logdet(x)
            for m in modules:
                x, ld = m(x)
                logdet = logdet + ld
            return x, logdet
        segment = _Segment(self)
        for m in modules:
            segment.blocks.append(
                _Block(
                    index=self._index[id(m)],
                    module=m,
                    params=_unique(p for p in m.parameters() if p.requires_grad),
                    norms=_batch_norms(m),
                    stochastic=_stochastic(m),
                )
            )
        params = self.param_list(segment)
        y, logdet = _InvertedSegment.apply(segment, x, *params)
        return y, logdet

    @property
    def recomputed(self) -> list[InvertibleModule]:
        """The blocks whose forward the backward pass recomputes (what ``train.compile`` compiles one by one)."""
        return [m for m in self.blocks if backprop_kind(m) == INVERT]

    @staticmethod
    def param_list(segment: _Segment) -> list[nn.Parameter]:
        """The trainable parameters of ``segment``'s blocks, each once, in block order."""
        return _unique(p for block in segment.blocks for p in block.params)

    # ------------------------------------------------------------------------------------------- safety

    def record_residual(self, index: int, error: Tensor) -> None:
        """Keep the running maximum of block ``index``'s round-trip residual (on the device, no host sync)."""
        if self._residuals is None or self._residuals.device != error.device:
            self._residuals = torch.zeros(len(self.blocks), device=error.device)
        self._residuals[index] = torch.maximum(self._residuals[index], error)

    def max_residual(self) -> Tensor | None:
        """The largest round-trip residual since the last :meth:`fall_back` (a device scalar), ``None`` before the
        first backward pass."""
        return self._residuals.max() if self._residuals is not None else None

    def fall_back(self) -> list[int]:
        """Blocks whose residual exceeded the tolerance keep storing from now on (one host read; call it only when
        :meth:`max_residual` said so); returns their numbers and resets the residuals."""
        if self._residuals is None:
            return []
        values = self._residuals.tolist()
        self._residuals = None
        over = [k for k, v in enumerate(values) if v > self.tolerance and k not in self.stored]
        for k in over:
            self.stored.add(k)
            self._warn(k, f"its round trip f(f⁻¹(y)) misses y by {values[k]:.2e}", "keeps its activations")
        return over

    @torch.no_grad()
    def check(self, x: Tensor) -> dict[str, list[float]]:
        """Measure every block on ``x`` (the body's input, e.g. the first batch) and fall back where needed.

        Returns ``{"local": [...], "uncut": [...], "accumulated": [...]}`` per block number: the relative error of
        the block's own inverse of its exact output, and of its input rebuilt from the end of its segment before and
        after this check's cuts (NaN for blocks outside segments). Running statistics and the random state are left as
        they were.
        """
        inputs: dict[int, Tensor] = {}
        outputs: dict[int, Tensor] = {}
        rngs: dict[int, _RngState] = {}

        def pre_hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            if _stochastic(module):  # its inverse must draw the dropout masks its forward drew
                rngs[self._index[id(module)]] = _rng_capture(args[0].device)

        def hook(module: nn.Module, args: tuple[Tensor, ...], out: tuple[Tensor, Tensor]) -> None:
            k = self._index[id(module)]
            inputs[k], outputs[k] = args[0], out[0]

        handles = [m.register_forward_hook(hook) for m in self.blocks]
        handles += [m.register_forward_pre_hook(pre_hook) for m in self.blocks]
        norms = _batch_norms(self.body)
        try:
            with frozen_running_stats(norms), torch.random.fork_rng(devices=_cuda_devices(x)):
                self.body(x)
                local = [float("nan")] * len(self.blocks)
                for k, m in enumerate(self.blocks):
                    if k in inputs:
                        with _rng_replay(rngs.get(k)):
                            local[k] = float(relative_error(m.inverse(outputs[k]), inputs[k]))
                        if backprop_kind(m) == INVERT and local[k] > self.tolerance and k not in self.stored:
                            self.stored.add(k)
                            self._warn(k, f"its inverse misses its input by {local[k]:.2e}", "keeps its activations")
                uncut = self._accumulated(inputs, outputs, rngs, cut=False)
                accumulated = self._accumulated(inputs, outputs, rngs, cut=True)
        finally:
            for h in handles:
                h.remove()
        self.checked = True
        return {"local": local, "uncut": uncut, "accumulated": accumulated}

    def _accumulated(
        self, inputs: dict[int, Tensor], outputs: dict[int, Tensor], rngs: dict[int, _RngState], *, cut: bool
    ) -> list[float]:
        """Walk each segment back from its exact output: the error of every block's rebuilt input. With ``cut``,
        where it passes the bound the segment is cut after that block (the next block's input is kept), so the
        block is rebuilt from its exact output and the error starts again from its own."""
        errors = [float("nan")] * len(self.blocks)
        for run in self._segments():
            y: Tensor | None = None
            after: int | None = None  # the block after k in the segment
            for k in reversed(run):
                if k not in inputs:
                    continue
                y = outputs[k] if y is None else y
                with _rng_replay(rngs.get(k)):
                    x_hat = self.blocks[k].inverse(y)
                errors[k] = float(relative_error(x_hat, inputs[k]))
                if cut and errors[k] > self.tolerance and after is not None:
                    self.cuts.add(after)
                    self._warn(
                        after,
                        f"the input of block {k} is rebuilt with error {errors[k]:.2e} (accumulated)",
                        "its own input is kept (one tensor)",
                    )
                    with _rng_replay(rngs.get(k)):
                        x_hat = self.blocks[k].inverse(outputs[k])
                    errors[k] = float(relative_error(x_hat, inputs[k]))
                y, after = x_hat, k
        return errors

    def _segments(self) -> list[list[int]]:
        """Block numbers of each segment, as :meth:`_sequence` groups them now."""
        runs: list[list[int]] = []

        def walk(module: nn.Module) -> None:
            layers = list(module) if isinstance(module, FlowSequential) else [module]
            current: list[int] = []
            for layer in layers:
                if isinstance(layer, FactorOut):
                    runs.append(current) if current else None
                    current = []
                    walk(layer.inner)
                    continue
                if isinstance(layer, TokenFlow):
                    runs.append(current) if current else None
                    current = []
                    walk(layer.blocks)
                    continue
                if isinstance(layer, FlowSequential):
                    runs.append(current) if current else None
                    current = []
                    walk(layer)
                    continue
                k = self._index.get(id(layer))
                kind = backprop_kind(layer)
                if kind == INVERT and k not in self.stored:
                    if k in self.cuts and current:
                        runs.append(current)
                        current = []
                    current.append(cast(int, k))
                elif kind == FREE and current and k not in self.cuts:
                    current.append(cast(int, k))
                elif current:
                    runs.append(current)
                    current = []
            if current:
                runs.append(current)

        walk(self.body)
        return runs

    def _warn(self, k: int, what: str, action: str) -> None:
        self._warnings.append(
            f"train.memory=invert: block {k} ({type(self.blocks[k]).__name__} at {self.names[k]}): {what} "
            f"> train.invert_tolerance={self.tolerance:g}; {action}"
        )

    def take_warnings(self) -> list[str]:
        """The fallback warnings not yet taken (each is reported once)."""
        out, self._warnings = self._warnings, []
        return out

    def __deepcopy__(self, memo: dict[int, Any]) -> BackpropByInversion:
        # An EMA copy of the flow (torch.optim.swa_utils.AveragedModel deep-copies it) gets a runner of its own
        # body; residuals and warnings are the training model's.
        import copy

        clone = BackpropByInversion.__new__(BackpropByInversion)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("body", "_residuals", "_index")})
        clone.body = copy.deepcopy(self.body, memo)
        clone.blocks = [copy.deepcopy(m, memo) for m in self.blocks]
        clone._index = {id(m): k for k, m in enumerate(clone.blocks)}
        clone.stored, clone.cuts, clone._warnings, clone._residuals = set(self.stored), set(self.cuts), [], None
        return clone


def _unique(params: Iterator[nn.Parameter] | Any) -> list[nn.Parameter]:
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _cuda_devices(x: Tensor) -> list[int]:
    if x.device.type != "cuda":
        return []
    return [x.device.index if x.device.index is not None else torch.cuda.current_device()]
