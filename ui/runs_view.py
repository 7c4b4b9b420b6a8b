"""Read-only views of the run store, straight from the agreed folder layout.

A run folder holds ``config.json``, ``status.json``, ``history.json``, ``metrics.json``,
``report.json`` and weights. These helpers only *read* those files (tolerating a
half-started run); creating, starting, stopping and deleting go through the engine
(``runs.store.RunStore``, ``jobs``) where it is available.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_FILES = ("config.json", "status.json", "history.json", "metrics.json", "report.json")
STATES = ("queued", "running", "completed", "failed", "stopped")
#: plain-text state marks (dataframe cells, select labels): glyphs every system font has, no emoji font needed
STATE_ICONS = {"queued": "◷", "running": "↻", "completed": "✓", "failed": "✗", "stopped": "■", "unknown": "?"}
#: the same for Markdown (Streamlit's bundled Material icons, coloured)
STATE_BADGES = {"queued": ":gray[:material/schedule:]", "running": ":blue[:material/autorenew:]",
                "completed": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
                "stopped": ":orange[:material/stop_circle:]", "unknown": ":gray[:material/help:]"}


def _read(path: Path, default: Any) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):  # missing, or being replaced right now
        return default


@dataclass
class RunView:
    """What the app shows about one run."""

    run_id: str
    path: Path
    config: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)

    @property
    def state(self) -> str:
        return str(self.status.get("state") or "unknown")

    @property
    def message(self) -> str:
        return str(self.status.get("message") or "")

    @property
    def progress(self) -> dict:
        return dict(self.status.get("progress") or {})

    @property
    def updated(self) -> str:
        return str(self.status.get("updated") or "")

    @property
    def is_active(self) -> bool:
        """Queued or running -- or stopped while its worker still saves the best epoch (a run is final only
        once its worker has exited)."""
        if self.state in ("queued", "running"):
            return True
        pid = self.status.get("pid")
        return self.state == "stopped" and bool(pid) and _worker_alive(int(pid))

    @property
    def stop_requested(self) -> bool:
        return (self.path / "STOP").exists()

    @property
    def has_bundle(self) -> bool:
        """A usable bridge was saved (a finished run, or a stopped one that kept its best epoch)."""
        return (self.path / "bundle.json").exists() and (self.path / "bridge.safetensors").exists()

    @property
    def can_resume(self) -> bool:
        return self.state in ("stopped", "failed") and bool(self.config) and not self.is_active

    @property
    def dataset(self) -> str:
        """The dataset's short name as the Data page showed it (never a server path)."""
        data = self.config.get("data") or {}
        label = data.get("label") if isinstance(data, dict) else None
        if label:
            return str(label)
        man = data.get("manifest") if isinstance(data, dict) else None
        return Path(str(man)).name if man else (str(self.config.get("pipeline", {}).get("demo") or "") or "?")

    @property
    def bridge_metrics(self) -> dict:
        b = self.metrics.get("bridge")
        return b if isinstance(b, dict) else {}

    def headline(self) -> str:
        """The run's deciding number in words: held-out balanced accuracy, else best pair-val agreement."""
        test = self.bridge_metrics.get("test") or {}
        if isinstance(test.get("balanced_accuracy"), (int, float)):
            return f"test BAcc {test['balanced_accuracy']:.3f}"
        rows = [r for r in self.history if isinstance(r.get("val_agreement"), (int, float))]
        if rows:
            best = min(rows, key=lambda r: r.get("val_loss") if isinstance(r.get("val_loss"), (int, float))
                       else float("inf"))
            return f"agreement {best['val_agreement']:.0%} (epoch {best.get('epoch', '?')})"
        return ""

    def label(self) -> str:
        enc = self.config.get("encoders") or {}
        parts = [f"{STATE_ICONS.get(self.state, '?')} {self.run_id}", self.dataset if self.config else ""]
        if enc:
            parts.append(f"{enc.get('old', '?')} → {enc.get('new', '?')}")
        parts.append(self.headline())
        return "  ·  ".join(p for p in parts if p)


def _worker_alive(pid: int) -> bool:
    try:
        from bioxbridge_core.jobs import pid_alive
    except ImportError:  # pragma: no cover - the engine is always there in practice
        return False
    return pid_alive(pid)


def is_run_dir(path: Path) -> bool:
    """A run of the app (``config.json``/``status.json``) or a command-line ``run --out`` folder
    (``pipeline_config.json``); any other folder under the root is not listed."""
    return path.is_dir() and not path.name.startswith((".", "_")) and any(
        (path / name).exists() for name in ("config.json", "status.json", "pipeline_config.json"))


def read_run(path: str | Path) -> RunView:
    path = Path(path)
    run = RunView(
        run_id=path.name, path=path,
        config=_read(path / "config.json", {}) or {},
        status=_read(path / "status.json", {}) or {},
        history=_read(path / "history.json", []) or [],
        metrics=_read(path / "metrics.json", {}) or {},
        report=_read(path / "report.json", {}) or {},
    )
    if not run.status and not run.config and (path / "pipeline_config.json").exists():
        # a ``run --out`` folder: finished when its report is there (as ``runs.store.pipeline_info``)
        test = (run.report.get("bridge") or {}).get("metrics") or {}
        if test:
            run.metrics = {"bridge": {"test": test}}
        run.status = ({"state": "completed", "message": "command-line run"} if test
                      else {"state": "failed", "message": "command-line run without report.json: it did not finish"})
    return run


def list_runs(root: str | Path) -> list[RunView]:
    """Every run under ``root``, newest first (by status update time, then folder mtime)."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [read_run(p) for p in root.iterdir() if is_run_dir(p)]

    def key(r: RunView) -> tuple:
        try:
            mtime = r.path.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (r.updated or _dt.datetime.fromtimestamp(mtime).isoformat(), r.run_id)

    return sorted(runs, key=key, reverse=True)


def bundle_bytes(run: RunView) -> bytes:
    """A zip of the run's JSON files and weights (what inference needs), built in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(run.path.rglob("*")):
            if not p.is_file() or p.name == "STOP" or p.name.startswith("."):
                continue
            rel = p.relative_to(run.path)
            if rel.parts and rel.parts[0] == "checkpoint":
                continue  # resume state is not part of a bundle
            if p.suffix == ".json":  # the config names server paths: only their last parts leave the server
                zf.writestr(f"{run.run_id}/{rel.as_posix()}", _redact_json(p))
            elif p.suffix in (".safetensors", ".csv", ".md"):
                zf.write(p, arcname=f"{run.run_id}/{rel.as_posix()}")
    return buf.getvalue()


def _redact_json(path: Path) -> str:
    from .errors import redact

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return redact(obj) if isinstance(obj, str) else obj

    try:
        return json.dumps(walk(json.loads(path.read_text())), indent=2)
    except (OSError, ValueError):
        return "{}"


#: config keys that name server files (kept out of what the browser sees)
PATH_KEYS = ("windows", "head", "old_encoder_state", "manifest", "job_module", "encoder_factory")


def public_config(run: RunView) -> dict:
    """The run's settings without server paths (for the Runs page)."""
    from .errors import redact

    keep = {}
    for k in ("encoders", "old_model", "positions", "bridge", "data", "seed", "device", "baselines"):
        v = run.config.get(k)
        if v is None:
            continue
        if k == "data" and isinstance(v, dict):
            v = {kk: vv for kk, vv in v.items() if kk != "manifest"}
        keep[k] = v
    return json.loads(redact(json.dumps(keep, default=str)))


def flat_metrics(run: RunView) -> dict[str, float]:
    """Scalar metrics as ``{'bridge/test/f1_macro': 0.61, ...}`` from any nesting of metrics.json."""
    out: dict[str, float] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}/{k}" if prefix else str(k), v)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            out[prefix] = float(obj)

    walk("", run.metrics)
    return out


def timing(run: RunView) -> dict[str, float | int | None]:
    """Seconds per epoch (mean of the last three), epochs done/total and seconds left (None while unknown)."""
    secs = [float(h["seconds"]) for h in run.history if isinstance(h.get("seconds"), (int, float))]
    total = (run.config.get("bridge") or {}).get("epochs")
    done = len(run.history)
    per = sum(secs[-3:]) / len(secs[-3:]) if secs else None
    left = per * max(0, int(total) - done) if per is not None and isinstance(total, int) else None
    return {"seconds_per_epoch": per, "done": done, "total": total, "seconds_left": left}


def format_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(round(s))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else (f"{s // 60} min {s % 60:02d} s" if s >= 60
                                                                        else f"{s} s")
