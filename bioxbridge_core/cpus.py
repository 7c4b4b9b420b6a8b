"""How many CPU threads torch should use here: the cores this process may run on, minus the busy ones.

torch's default intra-op thread count is the machine's core count. In a container limited by a
CPU quota, or on a shared machine where other jobs keep the cores busy, that oversubscribes: on a
busy 2-core machine the demo bridge took 152 s with the default 2 threads and 25-29 s with one
(issue 12; ``bench/bench_threads.py`` measures it again side by side).

``choose_threads()`` takes the cores allowed by CPU affinity and the cgroup quota (v2 ``cpu.max``
or v1 ``cpu.cfs_quota_us``), subtracts the cores other processes keep busy *now* (system CPU use
sampled by ``psutil.cpu_percent`` over ``SAMPLE_S`` while this process sleeps, scaled to this
process's share of the machine), and keeps at least one. The 1-minute load average is only the
fallback: it lags by about a minute, so a second run started right after a first one saw the
first one's load, took one thread instead of two, and ran the demo in 187 s instead of ~110 s
(2026-12-01, 2-core VM). An explicit
``BIOXBRIDGE_THREADS`` or ``OMP_NUM_THREADS`` always wins. The standard library has no call for
the cgroup quota (``os.process_cpu_count`` in Python 3.13 reads affinity only), hence the reader
below.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)

#: a small model gains nothing from more intra-op threads than this
MAX_THREADS = 8
#: seconds over which the current CPU use of other processes is sampled
SAMPLE_S = 0.3
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: str | Path = CGROUP_ROOT) -> float | None:
    """CPUs granted by the cgroup quota (e.g. 2.0), or None when unlimited or unknown."""
    root = Path(root)
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return float(text[0]) / float(text[1])
        if text:
            return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def host_cpus() -> int:
    return os.cpu_count() or 1


def available_cpus(*, cgroup_root: str | Path = CGROUP_ROOT) -> int:
    """Cores this process may use: CPU affinity, capped by the cgroup quota (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = host_cpus()
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def cpu_use_now(interval: float = SAMPLE_S) -> float | None:
    """Busy cores of the whole machine right now (``psutil.cpu_percent`` over ``interval`` s), or None."""
    try:
        import psutil

        return float(psutil.cpu_percent(interval=interval)) / 100.0 * host_cpus()
    except Exception:  # noqa: BLE001 -- no psutil or no /proc: the caller falls back to the load average
        return None


def busy_cpus(available: int, *, load: float | None = None) -> float:
    """Cores of our share kept busy by other processes, scaled to ``available``.

    ``load`` : busy cores of the whole machine (default: sampled now by ``cpu_use_now``, else the
    1-minute load average).
    """
    if load is None:
        load = cpu_use_now()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0
    return max(0.0, float(load)) * available / host_cpus()


def _explicit() -> int | None:
    for var in ("BIOXBRIDGE_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var, "").strip()
        if raw:
            try:
                return max(1, int(raw))
            except ValueError:
                logger.warning("ignoring %s=%r (not an integer)", var, raw)
    return None


def choose_threads(*, load: float | None = None, own_load: float = 0.0, max_threads: int = MAX_THREADS,
                   respect_env: bool = True) -> int:
    """Threads for torch: ``available - busy`` rounded, between 1 and ``min(available, max_threads)``.

    Parameters
    ----------
    load : busy cores of the whole machine (default: sampled now, see ``busy_cpus``).
    own_load : part of that load that is this process itself (not counted as busy).
    max_threads : upper cap.
    respect_env : an explicit ``BIOXBRIDGE_THREADS`` / ``OMP_NUM_THREADS`` wins.
    """
    if respect_env:
        n = _explicit()
        if n is not None:
            return n
    avail = available_cpus()
    busy = max(0.0, busy_cpus(avail, load=load) - own_load)
    return int(min(avail, max_threads, max(1, math.floor(avail - busy + 0.5))))


def thread_env(n: int | None = None) -> dict[str, str]:
    """Environment variables pinning OpenMP/MKL/OpenBLAS (and so torch) to ``n`` threads."""
    n = choose_threads() if n is None else max(1, int(n))
    return {var: str(n) for var in THREAD_ENV_VARS}


def apply_thread_env(n: int | None = None) -> int:
    """Set the thread variables in this process's environment (call before torch is imported);
    also sets torch's count when torch is already loaded. Returns the number chosen."""
    import sys

    n = choose_threads() if n is None else max(1, int(n))
    os.environ.update(thread_env(n))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    logger.info("using %d CPU thread(s) (available %d)", n, available_cpus())
    return n


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count only (the environment stays as it is, so workers started
    later choose for themselves). Returns the number chosen."""
    import torch

    n = choose_threads() if n is None else max(1, int(n))
    torch.set_num_threads(n)
    return n
