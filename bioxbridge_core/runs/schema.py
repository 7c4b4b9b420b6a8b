"""File names, states and versioning of a run folder (see docs/ARCHITECTURE.md, specs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._io import read_json
from ..errors import RunError

SCHEMA_VERSION = 1
STATES = ("queued", "running", "completed", "failed", "stopped")
FINAL_STATES = ("completed", "failed", "stopped")

CONFIG = "config.json"
#: what ``run`` (pipeline.run_pipeline) writes instead of config.json/status.json
PIPELINE_CONFIG = "pipeline_config.json"
STATUS = "status.json"
HISTORY = "history.json"
METRICS = "metrics.json"
REPORT = "report.json"
BUNDLE = "bundle.json"
BRIDGE_WEIGHTS = "bridge.safetensors"
HEAD_WEIGHTS = "head.safetensors"
CHECKPOINT_DIR = "checkpoint"
STOP = "STOP"
LOG = "log.txt"


def with_schema(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with ``schema_version`` first."""
    return {"schema_version": SCHEMA_VERSION, **{k: v for k, v in obj.items() if k != "schema_version"}}


def read_versioned(path: str | Path) -> Any:
    """Read a run JSON file; refuse files written by a newer engine; name the file on any problem."""
    path = Path(path)
    try:
        obj = read_json(path)
    except FileNotFoundError as exc:
        raise RunError(f"{path}: file not found.") from exc
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable JSON ({exc}).") from exc
    versions = [obj.get("schema_version")] if isinstance(obj, dict) else [
        r.get("schema_version") for r in obj if isinstance(r, dict)] if isinstance(obj, list) else []
    for v in versions:
        if isinstance(v, int) and v > SCHEMA_VERSION:
            raise RunError(f"{path}: written by a newer version (schema {v} > {SCHEMA_VERSION}); update the engine.")
    return obj


@dataclass
class RunInfo:
    """One row of the run list (what the runs page shows)."""

    id: str
    kind: str
    path: Path
    state: str
    message: str = ""
    created: str = ""
    updated: str = ""
    pid: int | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    broken: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d
