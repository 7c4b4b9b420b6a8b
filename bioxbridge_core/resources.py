"""Measure wall time and peak resident memory of a phase of work."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class PhaseUsage:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    start_rss_mb: float = 0.0


class measure:
    """Context manager: wall seconds and the process's peak RSS (sampled every ``interval_s``) inside it.

    The peak is of the whole process, so it includes what was resident before the phase;
    ``start_rss_mb`` says how much that was.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.usage = PhaseUsage()
        self._stop = threading.Event()

    def _rss_mb(self) -> float:
        import psutil

        return psutil.Process().memory_info().rss / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.usage.peak_rss_mb = max(self.usage.peak_rss_mb, self._rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PhaseUsage:
        self.usage.start_rss_mb = self.usage.peak_rss_mb = self._rss_mb()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self.usage

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.usage.peak_rss_mb = max(self.usage.peak_rss_mb, self._rss_mb())
        self.usage.seconds = time.perf_counter() - self._t0
