"""RunStore: one folder per run, every file written atomically.

Layout: ``config.json``, ``status.json``, ``history.json`` (list of per-epoch
dicts), ``metrics.json``, ``report.json``, ``*.safetensors``, ``checkpoint/``
and a ``STOP`` file asking a running job to stop between steps. The
``*_status``/``*_history``/... functions take a run folder so a worker
process can use them without a store; ``RunHandle`` wraps them.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._check import check_option
from .._io import atomic_write_json
from ..errors import RunError
from . import schema as S
from .schema import RunInfo, read_versioned, with_schema

logger = logging.getLogger(__name__)

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# -- folder-level functions (usable from a worker process) ---------------------------------------
def write_status(run_dir: str | Path, state: str, message: str = "", progress: dict | None = None,
                 *, pid: int | None | str = "keep") -> dict:
    """Write ``status.json``; ``pid="keep"`` keeps the previous pid, ``progress=None`` the previous progress."""
    check_option("state", state, S.STATES, owner="status")
    run_dir = Path(run_dir)
    old = read_status(run_dir, missing_ok=True) or {}
    status = with_schema({
        "state": state,
        "message": str(message),
        "pid": old.get("pid") if pid == "keep" else pid,
        "updated": _now(),
        "progress": dict(progress) if progress is not None else old.get("progress") or
        {"step": 0, "total": 0, "message": ""},
    })
    atomic_write_json(run_dir / S.STATUS, status)
    return status


def read_status(run_dir: str | Path, *, missing_ok: bool = False) -> dict | None:
    path = Path(run_dir) / S.STATUS
    if missing_ok and not path.exists():
        return None
    return read_versioned(path)


def read_history(run_dir: str | Path) -> list[dict]:
    """Per-epoch rows; empty when no epoch has finished."""
    path = Path(run_dir) / S.HISTORY
    return list(read_versioned(path)) if path.exists() else []


def write_history(run_dir: str | Path, rows: list[dict]) -> None:
    """Replace ``history.json`` (a list of per-epoch dicts, each carrying ``schema_version``)."""
    atomic_write_json(Path(run_dir) / S.HISTORY, [with_schema(r) for r in rows])


def append_history(run_dir: str | Path, row: dict) -> list[dict]:
    rows = read_history(run_dir) + [dict(row)]
    write_history(run_dir, rows)
    return rows


def write_metrics(run_dir: str | Path, metrics: dict, *, name: str = S.METRICS) -> None:
    atomic_write_json(Path(run_dir) / name, with_schema(metrics))


def read_metrics(run_dir: str | Path, *, name: str = S.METRICS) -> dict:
    path = Path(run_dir) / name
    return read_versioned(path) if path.exists() else {}


def request_stop(run_dir: str | Path) -> None:
    """Ask a running job to stop between steps (it saves and marks the run stopped)."""
    from .._io import atomic_write_bytes

    atomic_write_bytes(Path(run_dir) / S.STOP, _now().encode())


def stop_requested(run_dir: str | Path) -> bool:
    return (Path(run_dir) / S.STOP).exists()


def clear_stop(run_dir: str | Path) -> None:
    try:
        os.unlink(Path(run_dir) / S.STOP)
    except FileNotFoundError:
        pass


def read_config(run_dir: str | Path) -> dict:
    cfg = read_versioned(Path(run_dir) / S.CONFIG)
    if not isinstance(cfg, dict):
        raise RunError(f"{Path(run_dir) / S.CONFIG}: expected a JSON object.")
    return cfg


@dataclass(frozen=True)
class RunHandle:
    """A run folder and the operations on it."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        return read_config(self.path)

    @property
    def kind(self) -> str:
        return str(self.config.get("kind", "?"))

    def file(self, name: str) -> Path:
        return self.path / name

    def write_status(self, state: str, message: str = "", progress: dict | None = None, **kw: Any) -> dict:
        return write_status(self.path, state, message, progress, **kw)

    def read_status(self) -> dict:
        return read_status(self.path)  # type: ignore[return-value]

    def append_history(self, row: dict) -> list[dict]:
        return append_history(self.path, row)

    def read_history(self) -> list[dict]:
        return read_history(self.path)

    def write_metrics(self, metrics: dict, *, name: str = S.METRICS) -> None:
        write_metrics(self.path, metrics, name=name)

    def read_metrics(self, *, name: str = S.METRICS) -> dict:
        return read_metrics(self.path, name=name)

    def request_stop(self) -> None:
        request_stop(self.path)

    def stop_requested(self) -> bool:
        return stop_requested(self.path)

    def clear_stop(self) -> None:
        clear_stop(self.path)


class RunStore:
    """All runs under ``root`` (default ``./runs``), one folder per run id."""

    def __init__(self, root: str | Path = "runs") -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def create(self, kind: str, config: dict) -> RunHandle:
        """New run folder ``YYYYmmdd-HHMMSS-<kind>-<4 hex>`` with ``config.json`` and a queued status."""
        if not isinstance(kind, str) or not _KIND_RE.match(kind):
            raise RunError(f"run kind must be a lower-case word like 'bridge', got {kind!r}.")
        if not isinstance(config, dict):
            raise RunError(f"run config must be a dict, got {type(config).__name__}.")
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for _ in range(100):
            run_id = f"{stamp}-{kind}-{secrets.token_hex(2)}"
            path = self.root / run_id
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 65536 collisions within one second
            raise RunError(f"could not create a new run folder under {self.root}.")
        body = {k: v for k, v in config.items() if k not in ("schema_version", "id", "kind", "created")}
        atomic_write_json(path / S.CONFIG, with_schema({"id": run_id, "kind": kind, "created": _now(), **body}))
        write_status(path, "queued", "created", pid=None)
        logger.info("created run %s", path)
        return RunHandle(path)

    def get(self, run_id: str) -> RunHandle:
        path = self.root / str(run_id)
        if "/" in str(run_id) or "\\" in str(run_id) or not path.is_dir():
            from .._check import suggest

            raise RunError(f"No run '{run_id}' in {self.root}.{suggest(str(run_id), self._ids())}")
        return RunHandle(path)

    def _ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def info(self, run_id: str) -> RunInfo:
        """Status of one run; a broken folder is reported as failed with the reason.

        A ``run --out`` folder (``pipeline_config.json``, no ``config.json``) is a ``run`` result:
        completed with its headline metric when ``report.json`` is there (see ``pipeline_info``).
        """
        path = self.root / run_id
        if not (path / S.CONFIG).exists() and (path / S.PIPELINE_CONFIG).exists():
            return pipeline_info(path)
        try:
            cfg = read_config(path)
            status = read_status(path)
            if not isinstance(status, dict) or status.get("state") not in S.STATES:
                raise RunError(f"{path / S.STATUS}: no valid 'state'.")
        except RunError as exc:
            return RunInfo(id=run_id, kind="?", path=path, state="failed", message=f"broken run folder: {exc}",
                           created=_created_from_id(run_id), broken=True)
        if status["state"] in ("queued", "running") and status.get("pid"):
            from ..jobs import job_state  # a worker that died without a word is shown (and saved) as failed

            status = job_state(path)
        return RunInfo(id=run_id, kind=str(cfg.get("kind", "?")), path=path, state=status["state"],
                       message=str(status.get("message", "")), created=str(cfg.get("created", "")),
                       updated=str(status.get("updated", "")), pid=status.get("pid"),
                       progress=dict(status.get("progress") or {}))

    def list(self) -> list[RunInfo]:
        """All runs, newest first; broken run folders are listed as failed with the reason, folders that
        are not runs at all (``is_run_folder``) are left out. Raises ``RunError`` when ``root`` is not a folder."""
        if not self.root.is_dir():
            raise RunError(f"{self.root}: no such run folder" + (" (it is a file)." if self.root.exists() else "."))
        infos = [self.info(i) for i in self._ids() if is_run_folder(self.root / i)]
        return sorted(infos, key=lambda r: (r.created or _created_from_id(r.id), r.id), reverse=True)

    def delete(self, run_id: str) -> None:
        """Remove a run folder; refuses while its job is alive."""
        handle = self.get(run_id)
        info = self.info(run_id)
        if info.state in ("running", "queued") and info.pid:
            from ..jobs import pid_alive

            if pid_alive(int(info.pid)):
                raise RunError(f"run '{run_id}' is still running (pid {info.pid}); stop it first.")
        shutil.rmtree(handle.path)


#: folder names ``RunStore.create`` gives: ``YYYYmmdd-HHMMSS-<kind>-<4 hex>``
_RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[a-z][a-z0-9_]*-[0-9a-f]{4}$")


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is a run: it holds ``config.json``, ``status.json`` or ``pipeline_config.json`` (a
    ``run --out`` folder), or bears a run id (a run whose files were lost: listed as broken). Hidden
    folders and anything else (an unrelated folder under the root) are not runs."""
    path = Path(path)
    if not path.is_dir() or path.name.startswith("."):
        return False
    return (any((path / name).exists() for name in (S.CONFIG, S.STATUS, S.PIPELINE_CONFIG))
            or bool(_RUN_ID_RE.match(path.name)))


def pipeline_info(path: str | Path) -> RunInfo:
    """A ``run --out`` folder as a run row: kind ``run``; ``completed`` with the bridge's held-out
    balanced accuracy (and its verdict) when ``report.json`` is there, else ``failed`` (it never finished)."""
    path = Path(path)
    stamp = _dt.datetime.fromtimestamp((path / S.PIPELINE_CONFIG).stat().st_mtime).astimezone()
    created = stamp.isoformat(timespec="seconds")
    report_path = path / S.REPORT
    if not report_path.exists():
        return RunInfo(id=path.name, kind="run", path=path, state="failed", created=created,
                       message="no report.json: the run did not finish")
    try:
        report = read_versioned(report_path)
        b = report["bridge"]["metrics"]
        message = f"bridge balanced accuracy {float(b['balanced_accuracy']):.3f} on {b.get('n', '?')} test windows"
    except (RunError, KeyError, TypeError, ValueError) as exc:
        return RunInfo(id=path.name, kind="run", path=path, state="failed", created=created, broken=True,
                       message=f"broken run folder: {report_path}: {exc}")
    verdict = ((report.get("verdicts") or {}).get("bridge") or {}).get("level")
    if verdict:
        message += f"; bridge verdict {str(verdict).upper()}"
    updated = _dt.datetime.fromtimestamp(report_path.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    return RunInfo(id=path.name, kind="run", path=path, state="completed", message=message, created=created,
                   updated=updated)


def _created_from_id(run_id: str) -> str:
    m = re.match(r"^(\d{8})-(\d{6})", run_id)
    if not m:
        return ""
    try:
        return _dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").astimezone().isoformat(timespec="seconds")
    except ValueError:
        return ""
