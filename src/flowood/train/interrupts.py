"""SIGINT / SIGTERM during training: finish the step, save, say how to resume.

Inside :class:`StopSignals` the first SIGINT (Ctrl-C) or SIGTERM (``kill``, SLURM, a container stop) only
sets :attr:`StopSignals.received`; the training loop looks at it after each step (and between evaluation
batches) and stops at that safe point, writing an atomic checkpoint. A second signal stops at once
(``KeyboardInterrupt``), losing the step in flight but never the previous checkpoint.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

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
        self._previous: dict[int, Any] = {}

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
