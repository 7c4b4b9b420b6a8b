"""Uploads: several files that make records (``read_uploads``), and a manifest from files plus naming rules.

``read_uploads`` / ``stage_uploads`` (end of this module) take several uploaded files -- a WFDB
header with its data files, several records at once, a zip of a folder, an Empatica E4 set -- group
those that belong together and read (or stage) each record, with one-line errors that name only
uploaded files.

``manifest_from_files`` builds a manifest from a list of recording files plus naming rules (the app's
multi-file upload).

Each file holds one recording of both modalities (or, with ``new_files``, the old
side only, its new-side partner given at the same index). The subject comes from
the file name by a regular expression; the label from one of:

- ``"filename"``: a mapping of file-name endings to labels (``{"_1": "rest", "_2": "task"}``);
- ``"annotations"``: the file's annotations with a duration (EDF+ / BDF+), optionally
  renamed or filtered by ``annotation_map``;
- ``"table"``: a label table with columns ``file,label[,label_start,label_end]``
  (``read_label_table``);
- ``"fixed"``: one label for every file; ``"none"``: unlabelled pairs.

A file with one labelled span becomes one manifest row with ``label_start``/``label_end``
(the rest of the file stays unlabelled pair data). A file with several spans is cut into
one NPZ segment per span in ``segments_dir`` (one row each), because a manifest row
windows its whole file and several rows on one file would repeat its windows.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .._check import check_option
from ..errors import BioXError, ManifestError, RecordingError
from .manifest import read_manifest, write_manifest

logger = logging.getLogger(__name__)

#: the part of the file stem before its last ``_`` (``Subject00_1.edf`` -> ``Subject00``); a stem
#: without ``_`` is its own subject
DEFAULT_SUBJECT_PATTERN = r"(?P<subject>.+?)(?:_[^_]*)?"
LABEL_SOURCES = ("filename", "annotations", "table", "fixed", "none")
_SPAN_TOL_S = 1e-6

Span = tuple[float, float, str]  # (start_s, end_s, label); end_s = inf means "to the end of the file"


@dataclass
class UploadManifest:
    """What ``manifest_from_files`` wrote: the manifest path, its rows and notes for the user."""

    path: Path
    rows: list[dict]
    notes: list[str] = field(default_factory=list)

    @property
    def n_labelled(self) -> int:
        return sum(1 for r in self.rows if r.get("label"))


def subject_from_name(filename: str | Path, pattern: str = DEFAULT_SUBJECT_PATTERN) -> str:
    """Subject id from a file name: ``pattern`` must match the whole stem (name without extension).

    The subject is the named group ``subject``, else the first group, else the whole stem.
    Raises ``ManifestError`` naming the file when the pattern is invalid or does not match.
    """
    stem = Path(str(filename)).stem
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ManifestError(f"Subject pattern {pattern!r} is not a valid regular expression ({exc}).") from None
    m = rx.fullmatch(stem)
    if m is None:
        raise ManifestError(f"{Path(str(filename)).name}: the subject pattern {pattern!r} does not match the "
                            f"file name '{stem}' (it must match the whole name without extension).")
    if "subject" in rx.groupindex:
        subject = m.group("subject")
    elif rx.groups:
        subject = m.group(1)
    else:
        subject = m.group(0)
    if not subject or not subject.strip():
        raise ManifestError(f"{Path(str(filename)).name}: the subject pattern {pattern!r} gives an empty subject.")
    return subject.strip()


def parse_label_map(text: str) -> dict[str, str]:
    """``"_1=rest, _2=task"`` (or one ``key=label`` / ``key -> label`` per line) -> ``{"_1": "rest", ...}``."""
    out: dict[str, str] = {}
    for part in re.split(r"[,\n;]", text or ""):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("->") if "->" in part else part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ManifestError(f"Label mapping entry {part!r}: write it as 'ENDING=LABEL', e.g. '_1=rest'.")
        if key in out and out[key] != value:
            raise ManifestError(f"Label mapping: '{key}' is mapped to both '{out[key]}' and '{value}'.")
        out[key] = value
    return out


def label_from_name(filename: str | Path, mapping: Mapping[str, str]) -> str | None:
    """The label whose key ends the file stem (the longest matching key wins); None if none does."""
    stem = Path(str(filename)).stem
    hits = [k for k in mapping if k and stem.endswith(k)]
    return str(mapping[max(hits, key=len)]) if hits else None


def read_label_table(source: str | Path | bytes, *, name: str | None = None) -> pd.DataFrame:
    """Read a label table CSV (``file,label[,label_start,label_end]``) from a path or bytes.

    Returns a frame with columns ``file, label, label_start, label_end`` (NaN span = whole file).
    """
    where = name or (str(source) if not isinstance(source, bytes) else "label table")
    try:
        buf = io.BytesIO(source) if isinstance(source, bytes) else source
        frame = pd.read_csv(buf, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ManifestError(f"{where}: the label table is empty.") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where}: not a readable CSV file ({exc}).") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("file", "label") if c not in frame.columns]
    if missing:
        raise ManifestError(f"{where}: missing column(s) {missing}; columns are {list(frame.columns)}. "
                            "Expected file,label[,label_start,label_end].")
    has_span = "label_start" in frame.columns or "label_end" in frame.columns
    if has_span and not ("label_start" in frame.columns and "label_end" in frame.columns):
        raise ManifestError(f"{where}: 'label_start' and 'label_end' need each other.")
    rows = []
    for i, rec in enumerate(frame.to_dict("records"), start=1):
        file, label = str(rec["file"]).strip(), str(rec["label"]).strip()
        if not file:
            raise ManifestError(f"{where}, row {i}: 'file' is empty.")
        start = end = np.nan
        if has_span and (str(rec["label_start"]).strip() or str(rec["label_end"]).strip()):
            try:
                start, end = float(rec["label_start"]), float(rec["label_end"])
            except ValueError:
                raise ManifestError(f"{where}, row {i}: label_start/label_end must be seconds, got "
                                    f"{rec['label_start']!r} and {rec['label_end']!r}.") from None
            if not (np.isfinite(start) and np.isfinite(end) and 0 <= start < end):
                raise ManifestError(f"{where}, row {i}: need 0 <= label_start < label_end, got {start} and {end}.")
        rows.append({"file": Path(file.replace("\\", "/")).name, "label": label, "label_start": start,
                     "label_end": end})
    return pd.DataFrame(rows, columns=["file", "label", "label_start", "label_end"])


def annotation_spans(rec, mapping: Mapping[str, str] | None = None) -> list[Span]:
    """Labelled spans from a Recording's annotations that have a duration.

    With ``mapping``, only annotations whose description is a key are kept, renamed to the value;
    without it every annotation with a duration counts, labelled by its description.
    """
    spans = []
    for a in rec.annotations:
        desc = str(a.description).strip()
        if mapping is not None:
            if desc not in mapping:
                continue
            desc = str(mapping[desc]).strip()
        if a.duration_s <= 0 or not desc:
            continue
        spans.append((float(a.onset_s), float(a.onset_s + a.duration_s), desc))
    return sorted(spans)


def _channels_of(path: Path) -> list[str] | None:
    """Channel names, cheaply for EDF/BDF (header only); None for other formats (pairing checks them)."""
    if path.suffix.lower() not in (".edf", ".bdf"):
        return None
    from .recipes import edf_channel_names

    return edf_channel_names(path)


def _check_channels(path: Path, wanted: Sequence[str], side: str) -> None:
    names = _channels_of(path)
    if names is None:
        return
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ManifestError(f"{path.name}: {side} channel(s) {missing} not found; the file has {names}.")


def manifest_from_files(
    files: Sequence[str | Path],
    *,
    old_channels: Sequence[str],
    new_channels: Sequence[str],
    out_path: str | Path,
    new_files: Sequence[str | Path] | None = None,
    subject_pattern: str = DEFAULT_SUBJECT_PATTERN,
    subject: str | None = None,
    label_source: str = "filename",
    label_map: Mapping[str, str] | None = None,
    label_table: pd.DataFrame | None = None,
    annotation_map: Mapping[str, str] | None = None,
    label: str | None = None,
    segments_dir: str | Path | None = None,
) -> UploadManifest:
    """Write a manifest CSV for ``files`` at ``out_path`` and validate it with ``read_manifest``.

    Parameters
    ----------
    files : recordings holding both modalities (or only the old one when ``new_files`` is given).
    old_channels, new_channels : channel names of each side, the same in every file.
    out_path : manifest CSV to write (absolute file paths inside).
    new_files : optional new-modality partner of each file (same length as ``files``).
    subject_pattern : regex matching the whole file stem; group ``subject`` (or the first group) is the
        subject. Default: the part before the last ``_``.
    subject : one subject id for every file (overrides ``subject_pattern``).
    label_source : ``"filename"`` (``label_map``), ``"annotations"`` (``annotation_map``), ``"table"``
        (``label_table`` from ``read_label_table``), ``"fixed"`` (``label``) or ``"none"``.
    segments_dir : where files with several labelled spans are cut into NPZ segments
        (default: a ``segments`` folder beside ``out_path``).

    Returns an ``UploadManifest`` (path, rows, notes: files left unlabelled, ignored table rows...).
    Raises ``ManifestError`` naming the file when a name, channel or label cannot be used.
    """
    check_option("label_source", label_source, LABEL_SOURCES, owner="manifest_from_files")
    files = [Path(f).expanduser().resolve() for f in files]
    if not files:
        raise ManifestError("No recording files were given.")
    partners = None if new_files is None else [Path(f).expanduser().resolve() for f in new_files]
    if partners is not None and len(partners) != len(files):
        raise ManifestError(f"{len(files)} old-side file(s) but {len(partners)} new-side file(s); give one each.")
    names = [f.name for f in files]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ManifestError(f"The same file name appears twice: {dup}; file names must be unique.")
    old_channels, new_channels = [str(c) for c in old_channels], [str(c) for c in new_channels]
    if not old_channels or not new_channels:
        raise ManifestError("Choose at least one channel for the old and for the new signal.")
    if label_source == "filename" and not label_map:
        raise ManifestError("Label from the file name needs a mapping such as '_1=rest, _2=task'.")
    if label_source == "table" and label_table is None:
        raise ManifestError("Label from a table needs a label CSV (file,label[,label_start,label_end]).")
    if label_source == "fixed" and not (label or "").strip():
        label_source = "none"
    out_path = Path(out_path)
    seg_dir = Path(segments_dir) if segments_dir is not None else out_path.parent / "segments"
    notes: list[str] = []

    if label_source == "table":
        known = set(names) | {f.stem for f in files}
        unknown = sorted(set(label_table["file"]) - known)
        if unknown:
            notes.append(f"Label table rows for file(s) not uploaded were ignored: {', '.join(unknown[:10])}"
                         + (" …" if len(unknown) > 10 else ""))

    rows: list[dict] = []
    unlabelled: list[str] = []
    for i, f in enumerate(files):
        if not f.is_file():
            raise ManifestError(f"File not found: {f}")
        partner = partners[i] if partners is not None else None
        _check_channels(f, old_channels, "old")
        _check_channels(partner or f, new_channels, "new")
        subj = subject.strip() if subject and subject.strip() else subject_from_name(f.name, subject_pattern)
        spans = _spans_for(f, label_source, label_map=label_map, label_table=label_table,
                           annotation_map=annotation_map, label=label)
        base = {"subject": subj, "old_channels": old_channels, "new_channels": new_channels}
        where = {"path": str(f)} if partner is None else {"old_path": str(f), "new_path": str(partner)}
        if not spans:
            unlabelled.append(f.name)
            rows.append({**where, **base, "label": "", "label_start": "", "label_end": ""})
        elif len(spans) == 1:
            start, end, lab = spans[0]
            whole = start <= _SPAN_TOL_S and not np.isfinite(end)
            rows.append({**where, **base, "label": lab, "label_start": "" if whole else start,
                         "label_end": "" if whole else end})
        else:
            rows.extend(_segment_rows(f, partner, spans, base, seg_dir, notes))
    if unlabelled and label_source != "none":
        notes.append(f"{len(unlabelled)} file(s) got no label and are used as unlabelled pairs: "
                     + ", ".join(unlabelled[:10]) + (" …" if len(unlabelled) > 10 else ""))
    if not any(str(r.get("label_start", "")) != "" for r in rows):  # no spans: drop the empty columns
        for r in rows:
            del r["label_start"], r["label_end"]
    path = write_manifest(rows, out_path)
    read_manifest(path)  # validate now, so errors name the manifest row at upload time
    for n in notes:
        logger.info("%s: %s", path.name, n)
    return UploadManifest(path=Path(path), rows=rows, notes=notes)


def _spans_for(f: Path, source: str, *, label_map, label_table, annotation_map, label) -> list[Span]:
    """The labelled spans of one file, sorted, non-overlapping (overlaps raise)."""
    if source == "none":
        return []
    if source == "fixed":
        return [(0.0, np.inf, str(label).strip())]
    if source == "filename":
        lab = label_from_name(f.name, label_map or {})
        return [(0.0, np.inf, lab)] if lab else []
    if source == "table":
        sel = label_table[(label_table["file"] == f.name) | (label_table["file"] == f.stem)]
        spans = [(0.0 if np.isnan(s) else float(s), np.inf if np.isnan(e) else float(e), str(lab))
                 for lab, s, e in zip(sel["label"], sel["label_start"], sel["label_end"]) if str(lab).strip()]
    else:  # annotations
        from .readers import read_recording

        spans = annotation_spans(read_recording(f), annotation_map)
    spans = sorted(spans)
    for (s0, e0, l0), (s1, e1, l1) in zip(spans, spans[1:]):
        if s1 < e0 - _SPAN_TOL_S:
            raise ManifestError(f"{f.name}: labelled spans overlap ('{l0}' {s0:g}-{e0:g} s and '{l1}' "
                                f"{s1:g}-{e1:g} s); a window can have only one label.")
    return spans


def _segment_rows(f: Path, partner: Path | None, spans: list[Span], base: dict, seg_dir: Path,
                  notes: list[str]) -> list[dict]:
    """Cut one file (and its partner) into one NPZ per labelled span; one manifest row per segment."""
    from .readers import read_recording, write_recording

    try:
        rec = read_recording(f)
        rec_new = read_recording(partner) if partner is not None else None
    except RecordingError as exc:
        raise ManifestError(f"{f.name}: cannot cut it into labelled segments ({exc}).") from None
    offset = 0.0
    if rec_new is not None and rec.start_time is not None and rec_new.start_time is not None:
        offset = rec.start_offset_s(rec_new)
    folder = seg_dir / f.stem
    folder.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], 0
    for k, (start, end, lab) in enumerate(spans):
        end = min(end, rec.duration_s)
        if rec_new is not None:
            end = min(end, rec_new.duration_s + offset)
        lo = max(start, offset if rec_new is not None else 0.0)
        if end - lo <= _SPAN_TOL_S:
            skipped += 1
            continue
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", lab)[:40] or "label"
        seg = write_recording(rec.crop(lo, end), folder / f"{k:03d}_{safe}.npz")
        row = {**base, "label": lab, "label_start": "", "label_end": ""}
        if rec_new is None:
            row["path"] = str(seg)
        else:
            seg_new = write_recording(rec_new.crop(lo - offset, end - offset), folder / f"{k:03d}_{safe}_new.npz")
            row["old_path"], row["new_path"] = str(seg), str(seg_new)
        rows.append(row)
    notes.append(f"{f.name}: {len(spans)} labelled spans, cut into {len(rows)} segment(s); the unlabelled "
                 "rest of the file is left out." + (f" {skipped} span(s) outside the recording." if skipped else ""))
    if not rows:
        raise ManifestError(f"{f.name}: none of its {len(spans)} labelled spans lies inside the recording.")
    return rows


# == several uploaded files that belong together ==================================================
#: most members a zip may hold, and most bytes its members may unpack to (zip-bomb guard)
MAX_ZIP_MEMBERS = 2000
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024
_JUNK = re.compile(r"(^|/)(__MACOSX|\.DS_Store|Thumbs\.db|desktop\.ini|\._[^/]*)(/|$)")
_E4_SIGNALS = {"ACC", "BVP", "EDA", "HR", "TEMP"}
_E4_OTHERS = {"IBI", "TAGS", "INFO"}


@dataclass
class UploadedRecord:
    """One recording made of one or more uploaded files.

    name : what to show (``'bedside01.hea'``, ``'session.zip/e4/BVP.csv'``); also ``recording.source``.
    files : the uploaded names that make it (a WFDB header, its data and annotation files...).
    path : where it was written, for ``stage_uploads`` (None after ``read_uploads``, whose folder is gone).
    recording : the Recording, for ``read_uploads`` (None for ``stage_uploads``).
    """

    name: str
    files: list[str]
    path: Path | None = None
    recording: object | None = None


@dataclass
class UploadResult:
    """What became of a multi-file upload: records that read, one-line errors per file, notes.

    errors : ``(uploaded name, message)``; messages name only uploaded files, never a server path.
    notes : files left out on purpose (``__MACOSX``, an E4 ``tags.csv``...), one line each.
    """

    records: list[UploadedRecord] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def recordings(self) -> dict:
        """``{name: Recording}`` of the records that read."""
        return {r.name: r.recording for r in self.records if r.recording is not None}

    @property
    def ok(self) -> bool:
        return bool(self.records) and not self.errors


def _as_items(items) -> list[tuple[str, bytes]]:
    """(name, bytes) pairs from pairs, a {name: bytes} mapping, or objects with .name and .getvalue()/.read()."""
    if isinstance(items, Mapping):
        items = list(items.items())
    out = []
    for it in items:
        if isinstance(it, tuple) and len(it) == 2:
            name, data = it
        elif hasattr(it, "name") and (hasattr(it, "getvalue") or hasattr(it, "read")):
            name, data = it.name, (it.getvalue() if hasattr(it, "getvalue") else it.read())
        else:
            raise RecordingError(f"Uploads must be (file name, bytes) pairs; got {type(it).__name__}.")
        out.append((Path(str(name).replace("\\", "/")).name, bytes(data)))
    return out


def _safe_member(name: str) -> str | None:
    """A zip member's relative path, or None when it is absolute or climbs out ('..')."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _unzip(name: str, data: bytes, budget: list[int], result: UploadResult) -> list[tuple[str, bytes]]:
    """Members of an uploaded zip as (``zipname/member``, bytes), refusing bombs and unsafe paths."""
    import stat
    import zipfile

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        result.errors.append((name, f"{name}: not a readable zip archive (damaged or not a zip)."))
        return []
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_ZIP_MEMBERS:
            result.errors.append((name, f"{name}: holds {len(infos)} files, more than the {MAX_ZIP_MEMBERS} "
                                        "a zip may hold here."))
            return []
        declared = sum(i.file_size for i in infos)
        if declared > budget[0]:
            result.errors.append((name, f"{name}: unpacks to {declared / 1e6:.0f} MB, more than the limit of "
                                        f"{MAX_UNZIPPED_BYTES / 1e6:.0f} MB for unpacked uploads."))
            return []
        out = []
        for info in infos:
            rel = _safe_member(info.filename)
            if rel is None:
                result.errors.append((name, f"{name}: member '{info.filename}' has an absolute path or '..'; "
                                            "the archive was refused."))
                return []
            if _JUNK.search(rel):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                result.errors.append((name, f"{name}: member '{rel}' is a symbolic link; the archive was refused."))
                return []
            if info.flag_bits & 0x1:
                result.errors.append((name, f"{name}: member '{rel}' is encrypted; upload an archive without a "
                                            "password."))
                return []
            chunks, size = [], 0
            with zf.open(info) as fh:  # the declared size can lie: count what really comes out
                while True:
                    chunk = fh.read(1 << 20)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > budget[0]:
                        result.errors.append((name, f"{name}: unpacks to more than the limit of "
                                                    f"{MAX_UNZIPPED_BYTES / 1e6:.0f} MB for unpacked uploads."))
                        return []
                    chunks.append(chunk)
            budget[0] -= size
            if rel.lower().endswith(".zip"):
                result.notes.append(f"{name}/{rel}: a zip inside a zip is not opened; upload it on its own.")
                continue
            out.append((f"{name}/{rel}", b"".join(chunks)))
    if not out:
        result.errors.append((name, f"{name}: the archive holds no files."))
    return out


def _wfdb_members(hea_name: str, text: str, folder: dict[str, str]) -> tuple[list[str], list[str]]:
    """Files a WFDB header needs (found, missing): signal files, or segment headers and their files."""
    from .readers.wfdb_reader import ANNOTATION_EXTENSIONS

    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    found, missing = [], []
    if not lines or len(lines[0]) < 2:
        return found, missing
    base = Path(hea_name).stem
    needed: list[str] = []
    if "/" in lines[0][0]:  # multi-segment: segment records listed one per line
        for parts in lines[1:]:
            if parts and parts[0] != "~":
                needed.append(f"{parts[0]}.hea")
    else:
        n_sig = int(lines[0][1]) if lines[0][1].isdigit() else 0
        needed = [p[0] for p in lines[1:1 + n_sig] if p and p[0] != "-"]
    for f in dict.fromkeys(needed):
        (found if f in folder else missing).append(f)
    for ext in ANNOTATION_EXTENSIONS:
        if f"{base}.{ext}" in folder:
            found.append(f"{base}.{ext}")
    return found, missing


def _group(files: list[tuple[str, bytes]], result: UploadResult) -> list[tuple[str, list[str]]]:
    """(primary file, member files) per record; errors and notes for the rest. Names are upload paths."""
    from .readers import SUPPORTED_SUFFIXES
    from .readers.wfdb_reader import ANNOTATION_EXTENSIONS

    by_folder: dict[str, dict[str, str]] = {}
    for full, _ in files:
        folder, _, base = full.rpartition("/")
        by_folder.setdefault(folder, {})[base] = full
    groups: list[tuple[str, list[str]]] = []
    used: set[str] = set()
    data = dict(files)
    for folder, names in by_folder.items():
        upper = {Path(n).stem.upper() for n in names if n.lower().endswith(".csv")}
        e4 = len(upper & _E4_SIGNALS) >= 2
        segment_headers: set[str] = set()
        heads = sorted(n for n in names if n.lower().endswith(".hea"))
        for n in heads:  # multi-segment masters first claim their segment headers
            text = data[names[n]].decode("latin-1")
            first = next((ln.split() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), [])
            if first and "/" in first[0]:
                found, _ = _wfdb_members(n, text, names)
                segment_headers.update(f for f in found if f.endswith(".hea"))
        for n in heads:
            if n in segment_headers:
                continue
            text = data[names[n]].decode("latin-1")
            found, missing = _wfdb_members(n, text, names)
            members = [names[n]]
            for f in found:
                members.append(names[f])
                if f.endswith(".hea"):  # a segment: its own data files come along
                    seg_found, seg_missing = _wfdb_members(f, data[names[f]].decode("latin-1"), names)
                    members += [names[s] for s in seg_found]
                    missing += seg_missing
            used.update(members)
            if missing:
                result.errors.append((names[n], f"{names[n]}: the WFDB header needs {', '.join(missing)}, which "
                                                "{} not uploaded; upload {} together with the header.".format(
                                                    "was" if len(missing) == 1 else "were",
                                                    "it" if len(missing) == 1 else "them")))
                continue
            groups.append((names[n], list(dict.fromkeys(members))))
        for n, full in sorted(names.items()):
            if full in used:
                continue
            suffix = Path(n).suffix.lower()
            stem = Path(n).stem.upper()
            if e4 and (stem in _E4_OTHERS or n.lower() == "info.txt"):
                why = {"IBI": "inter-beat intervals (irregular events), not a sampled signal",
                       "TAGS": "event marks, not a signal"}.get(stem, "device information, not a signal")
                result.notes.append(f"{full}: Empatica {why}; left out.")
                continue
            if suffix in (".dat", ".mat") or suffix[1:] in ANNOTATION_EXTENSIONS:
                hea = f"{Path(n).stem}.hea"
                result.errors.append((full, f"{full}: WFDB {'signal data' if suffix in ('.dat', '.mat') else 'annotations'}"
                                            f" need their header {hea}; upload both together."))
                continue
            if suffix not in SUPPORTED_SUFFIXES:
                if "/" in full:  # inside a zip: other files are fine to leave
                    result.notes.append(f"{full}: not a recording file; left out.")
                else:
                    result.errors.append((full, f"{full}: unsupported file type '{suffix or '(no extension)'}'. "
                                                f"Supported: {', '.join(SUPPORTED_SUFFIXES)}."))
                continue
            groups.append((full, [full]))
    return groups


def stage_uploads(items, folder: str | Path, *, max_bytes: int | None = None) -> UploadResult:
    """Write uploaded files into ``folder``, grouped into records; nothing is read yet.

    Same grouping and checks as :func:`read_uploads`; each record's ``path`` is the staged
    primary file (a ``.hea``, ``.edf``, ``.csv``...), ready for ``read_recording`` or
    ``manifest_from_files``. Zip members keep their folders under ``folder/<zip name>/``.
    """
    from .readers import DEFAULT_MAX_UPLOAD_BYTES

    max_bytes = DEFAULT_MAX_UPLOAD_BYTES if max_bytes is None else int(max_bytes)
    result = UploadResult()
    pairs = _as_items(items)
    if not pairs:
        result.errors.append(("", "No files were uploaded."))
        return result
    total = sum(len(b) for _, b in pairs)
    if total > max_bytes:
        result.errors.append(("", f"The upload is {total / 1e6:.1f} MB, more than the limit of "
                                  f"{max_bytes / 1e6:.0f} MB. Upload fewer files or read them from disk."))
        return result
    names = [n for n, _ in pairs]
    dup = sorted({n for n in names if names.count(n) > 1})
    for n in dup:
        result.errors.append((n, f"{n}: uploaded twice; file names must be unique."))
    files: list[tuple[str, bytes]] = []
    budget = [MAX_UNZIPPED_BYTES]
    for name, data in pairs:
        if name in dup:
            continue
        if not name:
            result.errors.append(("", "An uploaded file has no name (its extension gives the format)."))
        elif not data:
            result.errors.append((name, f"{name}: the uploaded file is empty."))
        elif name.lower().endswith(".zip"):
            files.extend(_unzip(name, data, budget, result))
        else:
            files.append((name, data))
    root = Path(folder)
    for primary, members in _group(files, result):
        data = dict(files)
        for m in members:
            dest = root / m
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data[m])
        result.records.append(UploadedRecord(name=primary, files=members, path=root / primary))
    return result


def read_uploads(items, *, max_bytes: int | None = None, **read_kw) -> UploadResult:
    """Read several uploaded files at once, grouping those that make one record.

    Parameters
    ----------
    items : the uploads, as ``[(file name, bytes), ...]``, ``{file name: bytes}``, or objects with
        ``.name`` and ``.getvalue()`` (Streamlit ``UploadedFile``) -- pass ``st.file_uploader(...,
        accept_multiple_files=True)``'s list directly.
    max_bytes : limit on the uploaded bytes in total (default 200 MB, ``DEFAULT_MAX_UPLOAD_BYTES``);
        zips may unpack to at most ``MAX_UNZIPPED_BYTES`` and hold at most ``MAX_ZIP_MEMBERS`` files,
        and members with absolute paths, ``..``, links or passwords are refused.
    **read_kw : passed to ``read_recording`` for every record (``channels=``, ``sfreq=``...).

    What makes one record: a WFDB ``.hea`` with the ``.dat``/``.mat`` files it names, its annotation
    files (``.atr``...) and, for a multi-segment record, its segment headers and their files; any
    other recording file (EDF/BDF, CSV/TSV/TXT, Parquet, NPZ) on its own. A ``.zip`` is opened and
    its files grouped folder by folder. In an Empatica E4 set (``ACC/BVP/EDA/HR/TEMP.csv``) each
    signal is its own record; ``IBI.csv``, ``tags.csv`` and ``info.txt`` are left out with a note.

    Returns an ``UploadResult``: ``records`` (``name``, ``files``, ``recording``; ``recordings`` maps
    names to Recordings, each with ``source`` = its name), ``errors`` as ``(uploaded name, one-line
    message)`` for what could not be read (a header without its data file, a refused file...), and
    ``notes``. Nothing raises for a bad file: one bad file never hides the good ones. Messages never
    contain server or temporary paths, only uploaded names. The files are written to a private
    temporary folder that is removed before returning.
    """
    from .readers import read_recording, scrub_path

    tmp = tempfile.mkdtemp(prefix="bioxbridge-uploads-")
    try:
        os.chmod(tmp, 0o700)
        staged = stage_uploads(items, tmp, max_bytes=max_bytes)
        result = UploadResult(errors=list(staged.errors), notes=list(staged.notes))
        for rec in staged.records:
            try:
                recording = read_recording(rec.path, **read_kw)
            except BioXError as exc:
                result.errors.append((rec.name, scrub_path(str(exc), tmp, rec.name)))
                continue
            recording.source = rec.name
            recording.warnings = [scrub_path(w, tmp, rec.name) for w in recording.warnings]
            result.records.append(UploadedRecord(name=rec.name, files=rec.files, recording=recording))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
