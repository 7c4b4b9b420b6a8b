"""Turning what the user chose on the Data page into a manifest path the engine can read.

Uploads are written to the app workspace (so a training subprocess can read them
from disk), zips are extracted safely (no absolute paths, no ``..``, size-capped).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from bioxbridge_core.errors import ManifestError, RecordingError

from . import state
from .errors import engine

#: same cap as ``.streamlit/config.toml`` (server.maxUploadSize) and the engine's reader
MAX_UPLOAD_MB = 200
MAX_ZIP_UNPACKED_MB = 2048


def save_upload(filename: str, data: bytes) -> Path:
    """Write uploaded bytes under ``workspace/uploads/<hash>/<filename>``; returns the path."""
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        raise RecordingError(f"{filename}: {len(data) / 1e6:.0f} MB is over the {MAX_UPLOAD_MB} MB upload cap.")
    name = PurePosixPath(filename.replace("\\", "/")).name or "upload.bin"
    folder = state.workspace("uploads", state.fingerprint(name, len(data), data[:4096].hex(), data[-4096:].hex()))
    path = folder / name
    if not path.exists() or path.stat().st_size != len(data):
        path.write_bytes(data)
    return path


def extract_zip(filename: str, data: bytes) -> Path:
    """Extract an uploaded zip into the workspace, refusing unsafe member names."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ManifestError(f"{filename}: not a valid zip archive.") from None
    total = sum(i.file_size for i in zf.infolist())
    if total > MAX_ZIP_UNPACKED_MB * 1024 * 1024:
        raise ManifestError(f"{filename}: unpacks to {total / 1e6:.0f} MB, over the {MAX_ZIP_UNPACKED_MB} MB limit.")
    folder = state.workspace("uploads", state.fingerprint(filename, len(data), data[:4096].hex()))
    for info in zf.infolist():
        parts = PurePosixPath(info.filename).parts
        if info.filename.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
            raise ManifestError(f"{filename}: member '{info.filename}' has an unsafe path; refusing to extract.")
        if info.is_dir():
            continue
        target = folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.stat().st_size != info.file_size:
            target.write_bytes(zf.read(info))
    return folder


def demo_manifest(kind: str) -> Path:
    """The built-in demo's manifest (generated offline on first use)."""
    fn = engine("data.demo", "demo_manifest", feature="The built-in demo")
    return Path(fn(kind, seed=0))


def manifest_rows(manifest: Any) -> list[dict]:
    """The manifest's rows as JSON-ready dicts (``Manifest.content()``)."""
    return list(manifest.content())


def manifest_for_files(files: Sequence[Path], *, subject: str, old_channels: Sequence[str],
                       new_channels: Sequence[str], label: str = "") -> Path:
    """Write a one-row manifest for uploaded recordings (one file with both signals, or two files)."""
    write_manifest = engine("data.manifest", "write_manifest", feature="Writing manifests")
    if not old_channels or not new_channels:
        raise ManifestError("Choose at least one channel for the old and for the new signal.")
    files = [Path(f).resolve() for f in files]
    row: dict[str, Any] = {"subject": subject.strip() or files[0].stem, "old_channels": list(old_channels),
                           "new_channels": list(new_channels), "label": label.strip()}
    if len(files) == 1:
        row["path"] = str(files[0])
    else:
        row["old_path"], row["new_path"] = str(files[0]), str(files[1])
    folder = state.workspace("manifests", state.fingerprint(row))
    return Path(write_manifest([row], folder / "manifest.csv"))
