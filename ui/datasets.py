"""Turning what the user chose on the Data page into a manifest path the engine can read.

Uploads are written to the app workspace (so a training subprocess can read them
from disk), zips are extracted safely (no absolute paths, no ``..``, size-capped).
Files uploaded together land in one folder, so a WFDB header finds its signal file
(``save_upload_batch``), and a zip of a folder unpacks beside them.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
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


def extract_zip(filename: str, data: bytes, folder: Path | None = None) -> Path:
    """Extract an uploaded zip into the workspace (or ``folder``), refusing unsafe member names."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ManifestError(f"{filename}: not a valid zip archive.") from None
    total = sum(i.file_size for i in zf.infolist())
    if total > MAX_ZIP_UNPACKED_MB * 1024 * 1024:
        raise ManifestError(f"{filename}: unpacks to {total / 1e6:.0f} MB, over the {MAX_ZIP_UNPACKED_MB} MB limit.")
    if folder is None:
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


#: uploaded files that only accompany a record (WFDB signal/annotation files)
COMPANIONS = (".dat", ".mat", ".atr", ".qrs", ".ecg")
RECORD_SUFFIXES = (".edf", ".bdf", ".hea", ".csv", ".tsv", ".txt", ".parquet", ".npz")


@dataclass
class UploadBatch:
    """Files uploaded together, grouped into recordings: what to use, what was refused, what was left out."""

    records: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def save_upload_batch(files: Sequence[tuple[str, bytes]]) -> UploadBatch:
    """Save files uploaded together into one workspace folder, grouped into recordings by the engine
    (``data.uploads.stage_uploads``: a WFDB ``.hea`` with the files it names, a zip of a folder opened,
    an Empatica E4 set split per signal). Messages name uploaded files only, never a server path.
    """
    if not files:
        return UploadBatch()
    stage_uploads = engine("data.uploads", "stage_uploads", feature="Grouping uploaded files")
    key = state.fingerprint([(n, len(d), d[:2048].hex(), d[-2048:].hex()) for n, d in files])
    folder = state.workspace("uploads", "batch-" + key)
    result = stage_uploads(list(files), folder)
    return UploadBatch(records=[Path(r.path) for r in result.records],
                       errors=[msg for _, msg in result.errors], notes=list(result.notes))


def group_recordings(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Recordings in a server folder: one per WFDB record (its ``.hea``), one per other file; label tables
    and manifests (CSV files whose header names ``file``/``label``/``path``…) are not recordings.
    (Uploads are grouped by the engine's ``stage_uploads``; this reads a folder already on disk.)

    Signal files without their header and headers without their signal files are refused.
    """
    from .server_data import is_table

    found = folder.rglob("*") if recursive else folder.glob("*")
    files = sorted(p for p in found if p.is_file() and not p.name.startswith(("._", "."))
                   and "__MACOSX" not in p.parts)
    headers = {p.with_suffix("") for p in files if p.suffix.lower() == ".hea"}
    out = []
    for p in files:
        suf = p.suffix.lower()
        if suf == ".hea":
            _check_wfdb_files(p)
            out.append(p)
        elif suf in COMPANIONS:
            if p.with_suffix("") not in headers and suf in (".dat", ".mat"):
                raise RecordingError(f"{p.name}: a WFDB signal file needs its header ({p.stem}.hea); "
                                     "upload both together (or a zip holding both).")
        elif suf in RECORD_SUFFIXES and not (suf == ".csv" and is_table(p)):
            out.append(p)
    if not out:
        raise RecordingError("No recording among the uploaded files (EDF/BDF, WFDB .hea + .dat, CSV/TSV, "
                             "Parquet, NPZ, or a zip of those).")
    return out


def _check_wfdb_files(hea: Path) -> None:
    """Refuse a WFDB header whose signal files were not uploaded with it (named, without server paths)."""
    try:
        import wfdb

        header = wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as exc:  # wfdb raises many kinds; the reader gives the full message later
        raise RecordingError(f"{hea.name}: not a readable WFDB header ({type(exc).__name__}).") from None
    names = [n for n in (getattr(header, "file_name", None) or []) if n and n != "~"]
    if getattr(header, "seg_name", None):  # multi-segment: segment headers must be there too
        names = [f"{s}.hea" for s in header.seg_name if s and s != "~"]
    missing = sorted({n for n in names if not (hea.parent / n).exists()})
    if missing:
        raise RecordingError(f"{hea.name}: its file(s) {', '.join(missing)} were not uploaded; select the "
                             f".hea together with {', '.join(missing)} (or upload a zip holding all of them).")


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


def read_label_table(filename: str, data: bytes, columns: dict[str, str] | None = None,
                     values: dict[str, str] | None = None, span: tuple[float, float] | None = None) -> Any:
    """An uploaded label CSV as the engine reads it (``file,label[,label_start,label_end]``).

    ``columns`` maps those names to the table's own (``{"file": "recordname", "label": "result"}``),
    ``values`` renames label values (``{"1": "true_alarm"}``), ``span`` labels only
    ``[start, end)`` seconds of each file when the table has no span columns.
    """
    fn = engine("data.uploads", "read_label_table", feature="Label tables")
    if columns or values or span:
        data = remap_label_table(filename, data, columns or {}, values or {}, span)
    return fn(data, name=filename)


#: known label-table layouts: columns -> (file column, label column, value names, note)
KNOWN_TABLES = {
    frozenset({"recordname", "result"}): ("recordname", "result", {"1": "true_alarm", "0": "false_alarm"},
                                           "PhysioNet/CinC 2015 alarms.csv: 1 = true alarm, 0 = false alarm"),
}


def table_columns(filename: str, data: bytes) -> list[str]:
    """The header of an uploaded table (to offer a column mapping)."""
    import pandas as pd

    try:
        return [str(c).strip() for c in pd.read_csv(io.BytesIO(data), nrows=0, sep=None, engine="python").columns]
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds on bad tables
        raise ManifestError(f"{filename}: not a readable table ({type(exc).__name__}).") from None


def known_table(columns: Sequence[str]) -> tuple[str, str, dict, str] | None:
    return KNOWN_TABLES.get(frozenset(c.lower() for c in columns))


def remap_label_table(filename: str, data: bytes, columns: dict[str, str], values: dict[str, str],
                      span: tuple[float, float] | None) -> bytes:
    """The table rewritten with the engine's column names (renaming only: rows and values are kept)."""
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, sep=None, engine="python")
    frame.columns = [str(c).strip() for c in frame.columns]
    wanted = {k: v for k, v in columns.items() if v}
    missing = [v for v in wanted.values() if v not in frame.columns]
    if missing:
        raise ManifestError(f"{filename}: no column {', '.join(map(repr, missing))}; columns are "
                            f"{', '.join(frame.columns)}.")
    out = pd.DataFrame({k: frame[v].str.strip() for k, v in wanted.items()})
    if values:
        out["label"] = out["label"].map(lambda v: values.get(v, v))
    if span is not None and "label_start" not in out:
        out["label_start"], out["label_end"] = str(float(span[0])), str(float(span[1]))
    return out.to_csv(index=False).encode()


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


# -- server folders (only under the configured roots; see ui/server_data.py) ---------------------------
#: recipe -> old side -> (old encoder, new encoder) offered by default
RECIPE_ENCODERS = {
    ("eegmat", "EEG"): ("builtin:eeg", "builtin:ecg"), ("eegmat", "ECG"): ("builtin:ecg", "builtin:eeg"),
    ("cinc2015", "ECG"): ("builtin:ecg", "builtin:ppg"), ("cinc2015", "PPG"): ("builtin:ppg", "builtin:ecg"),
}


def manifest_from_recipe(recipe: str, folder: Path, old: str) -> Path:
    """Run the dataset recipe matching a server folder; the manifest goes to the app workspace."""
    from .server_data import RECIPES

    _, fn_name, _ = RECIPES[recipe]
    fn = engine("data.recipes", fn_name, feature=f"The {recipe} recipe")
    out = state.workspace("recipes", state.fingerprint(recipe, str(folder), old))
    return Path(fn(folder, out_dir=out, old=old))


def server_manifest(path: Path, roots: Sequence[Any]) -> Any:
    """Read a manifest CSV chosen under a data root; refuse one that points outside the roots."""
    from .cache import load_manifest
    from .server_data import check_manifest_files

    manifest = load_manifest(str(path), state.mtime(path))
    check_manifest_files(manifest.files(), roots, manifest_name=path.name)
    return manifest
