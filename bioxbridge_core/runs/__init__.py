"""Run folders: config, status, history, metrics, weights and checkpoints, all written atomically."""

from .schema import SCHEMA_VERSION, STATES, RunInfo
from .store import (RunHandle, RunStore, append_history, clear_stop, read_config, read_history, read_metrics,
                    read_status, request_stop, stop_requested, write_history, write_metrics, write_status)

__all__ = ["RunHandle", "RunInfo", "RunStore", "SCHEMA_VERSION", "STATES", "append_history", "clear_stop",
           "load_bundle", "read_config", "read_history", "read_metrics", "read_status", "request_stop",
           "save_bundle", "stop_requested", "write_history", "write_metrics", "write_status"]


def __getattr__(name: str):
    if name in ("save_bundle", "load_bundle"):  # lazy: bundles pull in torch models
        from . import bundle

        return getattr(bundle, name)
    raise AttributeError(name)
