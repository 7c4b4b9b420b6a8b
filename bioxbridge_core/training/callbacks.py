"""Small callables the trainer and jobs share: stop checks and throttled progress."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..runs import schema as S

ProgressFn = Callable[[int, int, str], None]


class StopCheck:
    """True once ``should_stop()`` says so or a ``STOP`` file appears in ``run_dir``."""

    def __init__(self, run_dir: str | Path | None = None, should_stop: Callable[[], bool] | None = None) -> None:
        self.stop_file = Path(run_dir) / S.STOP if run_dir is not None else None
        self.should_stop = should_stop

    def __call__(self) -> bool:
        if self.should_stop is not None and self.should_stop():
            return True
        return self.stop_file is not None and self.stop_file.exists()


class Throttled:
    """Forward progress calls at most every ``min_interval_s`` seconds (always the first and last)."""

    def __init__(self, fn: ProgressFn, min_interval_s: float = 1.0) -> None:
        self.fn, self.min_interval_s, self._last = fn, float(min_interval_s), -1e18

    def __call__(self, step: int, total: int, message: str) -> None:
        now = time.monotonic()
        if step <= 1 or step >= total or now - self._last >= self.min_interval_s:
            self._last = now
            self.fn(step, total, message)


def combine(*fns: Callable | None) -> Callable | None:
    """One callable calling every non-None ``fn`` with the same arguments."""
    live = [f for f in fns if f is not None]
    if not live:
        return None

    def _call(*args, **kwargs):
        for f in live:
            f(*args, **kwargs)

    return _call
