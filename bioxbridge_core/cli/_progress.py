"""A terminal progress bar for ``on_progress(step, total, message)`` callbacks (stderr, tqdm)."""

from __future__ import annotations

import sys


class TerminalProgress:
    """Callable progress reporter; quiet when ``enabled`` is False."""

    def __init__(self, desc: str, *, enabled: bool = True) -> None:
        self.desc, self.enabled, self._bar = desc, enabled, None

    def __call__(self, step: int, total: int, message: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self._bar is None or self._bar.total != max(total, 1):
            self.close()
            self._bar = tqdm(total=max(total, 1), desc=self.desc, file=sys.stderr, leave=False,
                             dynamic_ncols=True)
        self._bar.n = min(step, self._bar.total)
        self._bar.set_postfix_str(message[:60])
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
