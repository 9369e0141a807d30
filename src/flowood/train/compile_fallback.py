"""Falling back to eager execution when ``torch.compile`` fails (issue 17, item 6).

The fast path compiles the flow's transform lazily, so a broken compiler (a missing C++ toolchain, an
unsupported Python, a backend bug on a new GPU) shows up in :meth:`FastPath.prepare_model` or in the
first training step. The trainer then undoes the compilation, warns once naming ``train.compile=false``
(the setting that skips compiling), and repeats that step eagerly from the same random state, so the run
is the one an eager run would have been.
"""

from __future__ import annotations

from torch import nn

WARNING = "torch.compile failed ({reason}); training continues eagerly. Set train.compile=false to skip compiling"


def uncompile(flow: nn.Module) -> None:
    """Undo :meth:`torch.nn.Module.compile` on the flow's transform and every other submodule
    ``FastPath.prepare_model`` compiled (the blocks of ``train.memory=invert``)."""
    for module in flow.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None


def failure_reason(err: BaseException) -> str:
    """``"TypeName: first line"`` of a compiler error (they run to hundreds of lines); for Dynamo's
    ``BackendCompilerFailed`` the backend's own error."""
    inner = getattr(err, "inner_exception", None)
    if isinstance(inner, BaseException):
        return f"{type(err).__name__}: {failure_reason(inner)}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
