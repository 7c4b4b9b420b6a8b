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
                       new_channels: Sequence[str], label: str = "", label_source: str = "fixed",
                       annotation_map: dict | None = None, label_table: Any = None) -> Any:
    """Manifest for one upload with both signals, or two synchronised files (old first).

    ``label_source``: ``"fixed"`` (the typed ``label``), ``"annotations"``, ``"table"`` or ``"none"``.
    Returns the engine's ``UploadManifest`` (``.path``, ``.rows``, ``.notes``).
    """
    files = [Path(f).resolve() for f in files]
    return manifest_for_uploads(files[:1], new_files=files[1:2] or None, subject=subject.strip() or files[0].stem,
                                old_channels=old_channels, new_channels=new_channels, label_source=label_source,
                                label=label, annotation_map=annotation_map, label_table=label_table)


def manifest_for_uploads(files: Sequence[Path], **kw: Any) -> Any:
    """``data.uploads.manifest_from_files`` written into a workspace folder keyed by files and settings."""
    fn = engine("data.uploads", "manifest_from_files", feature="Building manifests from uploads")
    files = [Path(f).resolve() for f in files]
    table = kw.get("label_table")
    key = state.fingerprint([str(f) for f in files], [state.mtime(f) for f in files],
                            {k: v for k, v in kw.items() if k != "label_table"},
                            None if table is None else table.to_dict("list"))
    folder = state.workspace("manifests", key)
    return fn(files, out_path=folder / "manifest.csv", segments_dir=folder / "segments", **kw)


def parse_label_map(text: str) -> dict[str, str] | None:
    """``"_1=rest, _2=task"`` -> ``{"_1": "rest", "_2": "task"}`` (None for blank text)."""
    if not (text or "").strip():
        return None
    return engine("data.uploads", "parse_label_map", feature="Label mappings")(text)


def read_label_table(filename: str, data: bytes) -> Any:
    """An uploaded label CSV (``file,label[,label_start,label_end]``) as the engine reads it."""
    fn = engine("data.uploads", "read_label_table", feature="Label tables")
    return fn(data, name=filename)


def upload_plan(names: Sequence[str], *, subject_pattern: str, label_source: str,
                label_map: dict | None = None, label_table: Any = None) -> list[dict]:
    """Preview rows (file, subject, label) before the manifest is written; problems shown per file."""
    subject_from_name, label_from_name = engine("data.uploads", "subject_from_name", "label_from_name",
                                                feature="Building manifests from uploads")
    rows = []
    for name in names:
        try:
            subject = subject_from_name(name, subject_pattern)
        except ManifestError as exc:
            subject = f"✗ {exc}"
        if label_source == "filename":
            label = label_from_name(name, label_map or {}) or "— (unlabelled)"
        elif label_source == "table" and label_table is not None:
            stem = Path(name).stem
            hit = label_table[(label_table["file"] == name) | (label_table["file"] == stem)]
            label = ", ".join(dict.fromkeys(hit["label"])) if len(hit) else "— (not in the table)"
        elif label_source == "annotations":
            label = "from the file's annotations"
        else:
            label = "— (unlabelled)"
        rows.append({"file": name, "subject": subject, "label": label})
    return rows
