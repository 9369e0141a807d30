"""SIGINT / SIGTERM during training: finish the step, save, say how to resume.

Inside :class:`StopSignals` the first SIGINT (Ctrl-C) or SIGTERM (``kill``, SLURM, a container stop) only
sets :attr:`StopSignals.received`; the training loop looks at it after each step (and between evaluation
batches) and stops at that safe point, writing an atomic checkpoint. A second signal stops at once
(``KeyboardInterrupt``), losing the step in flight but never the previous checkpoint.

Under data-parallel training (``torchrun``) a signal reaches the ranks at different moments (the launcher
forwards it to each; SLURM or a user may signal only one), so a rank must not stop on its own flag: its
partners would wait in the next collective for ever, or crash with a gloo "connection closed" traceback.
Each rank's flag therefore rides in the all-reduce the step already does (:meth:`StopSignals.flag`), the
sum is stored as :attr:`StopSignals.agreed`, and every rank stops after the same step. The end-of-epoch
evaluation runs on rank 0 alone; after it the ranks agree once more with :meth:`StopSignals.agree` (one
all-reduce of one number per epoch). Only rank 0 writes the checkpoint.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import torch

from flowood.train.distributed import DistInfo, all_reduce_sum

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager turning SIGINT/SIGTERM into a flag (main thread only; elsewhere it does nothing).

    Args:
        announce: print a one-line notice on stderr when the first signal arrives.
    """

    def __init__(self, announce: bool = True) -> None:
        self.announce = announce
        self.received: str | None = None
        """Name of the first signal received (``"SIGINT"``, ``"SIGTERM"``), or None."""
        self.agreed = False
        """Data-parallel runs: whether any rank had a signal at the last agreement (step or epoch end)."""
        self._previous: dict[int, Any] = {}

    def flag(self, device: torch.device) -> torch.Tensor:
        """This rank's flag as a 0-d float tensor (1.0 after a signal) to add to a step's all-reduce."""
        return torch.tensor(float(self.received is not None), device=device)

    def should_stop(self, distributed: bool) -> bool:
        """Stop at this boundary? One process: a signal arrived. Data-parallel: the agreed flag, so that all
        ranks stop after the same step."""
        return self.agreed if distributed else self.received is not None

    def agree(self, info: DistInfo, device: torch.device) -> bool:
        """Agree on the flag across ranks now (one all-reduce of one number; local in one process)."""
        if not info.enabled:
            return self.received is not None
        self.agreed = bool(all_reduce_sum(self.flag(device), info).item() > 0)
        return self.agreed

    def __bool__(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            self._restore()
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping without saving")
        self.received = signal.Signals(signum).name
        if self.announce:
            # os.write, not print: a handler may run in the middle of another write to sys.stderr.
            msg = f"\n{self.received}: finishing this step, then saving a checkpoint (send it again to stop at once)\n"
            os.write(2, msg.encode())

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()
