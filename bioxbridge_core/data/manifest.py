"""Dataset manifests: one CSV row per recording, with subject, channels, label and split.

Columns (paths relative to the manifest's folder, or absolute):

- ``path`` (one file holding both modalities) **or** ``old_path`` + ``new_path``
  (two time-synchronised files);
- ``subject``;
- ``old_channels``, ``new_channels``: channel names separated by ``;`` (per row,
  since names can differ between files, e.g. ECG lead ``II`` vs ``V``);
- ``label`` (optional): class of the recording, or of the span
  [``label_start``, ``label_end``) seconds (from the start of the old-modality
  file) when those columns exist; windows outside the span are unlabelled.
  A blank label means an unlabelled recording;
- ``events`` (optional): a BIDS-style events file (TSV/CSV: ``onset``, ``duration``
  in seconds from the start of the old-modality file, ``trial_type`` or ``label``)
  giving the recording's labelled spans (``data.events``);
- ``split`` (optional): ``train``, ``pair``, ``val`` or ``test``. Subjects
  without one are assigned by ``data.splits.assign_splits`` from the seed.

Several rows may name the same recording (same ``path``, or same ``old_path`` and
``new_path``), one per labelled span: they must agree on subject and channels, and
the recording is read and windowed once (``Manifest.recordings``). Spans with the
same label that overlap or touch are joined; spans with different labels that
overlap are refused, naming both rows (or events lines).
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from ..errors import BioXError, ManifestError
from .events import Span, merge_spans, read_events, spans_from_events
from .splits import assign_splits, check_fractions
from .windows import SPLITS

logger = logging.getLogger(__name__)

REQUIRED = ("subject", "old_channels", "new_channels")
OPTIONAL = ("label", "label_start", "label_end", "events", "split")
#: columns of ``Manifest.table``, in order
TABLE_COLUMNS = ("row", "old_path", "new_path", "old_file", "new_file", "subject", "old_channels",
                 "new_channels", "label", "label_start", "label_end", "split", "events", "events_file")


def split_channels(text: str) -> list[str]:
    """``'EEG Fp1; EEG Fp2'`` -> ``['EEG Fp1', 'EEG Fp2']`` (blank parts dropped)."""
    return [c.strip() for c in str(text).split(";") if c.strip()]


@dataclass
class ManifestRecording:
    """One recording of a manifest: every row naming the same file(s), with all its spans.

    rows : 1-based manifest rows that name it.
    spans : labelled spans (rows and events files), sorted and disjoint (``events.merge_spans``);
        ``end_s`` is inf for a whole-recording label.
    skipped : events that cannot label a window (``{origin, label, start_s, end_s, reason}``).
    """

    rows: tuple[int, ...]
    old_path: str
    new_path: str
    old_file: str
    new_file: str
    subject: str
    old_channels: tuple[str, ...]
    new_channels: tuple[str, ...]
    split: str | None
    spans: list[Span] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    @property
    def one_file(self) -> bool:
        return self.old_path == self.new_path

    @property
    def name(self) -> str:
        """``file`` or ``old_file+new_file`` (the ``recording`` column of window metadata)."""
        return self.old_file if self.one_file else f"{self.old_file}+{self.new_file}"

    @property
    def labels(self) -> set[str]:
        return {s.label for s in self.spans}


@dataclass(eq=False)
class Manifest:
    """A validated manifest.

    Attributes
    ----------
    table : DataFrame, one row per recording, columns ``TABLE_COLUMNS``: ``row``
        (1-based data row in the CSV), ``old_path``/``new_path`` absolute paths (equal
        for one-file rows), ``old_file``/``new_file`` as written in the CSV,
        ``subject``, ``old_channels``/``new_channels`` (tuples of names), ``label``
        (str or None), ``label_start``/``label_end`` (float seconds or NaN for the whole
        recording) and ``split``.
    root : folder that relative paths are resolved against.
    source : the CSV file, or a description for in-memory manifests.
    seed : seed used for the subject splits.
    """

    table: pd.DataFrame
    root: Path
    source: str
    seed: int = 0
    fractions: dict = field(default_factory=dict)
    groups: list[ManifestRecording] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        per = self.table.groupby("split")["subject"].nunique().to_dict()
        return f"<Manifest | {Path(self.source).name} | {len(self)} recordings | subjects per split {per}>"

    @property
    def subjects(self) -> list[str]:
        return sorted(self.table["subject"].unique().tolist())

    @property
    def label_names(self) -> list[str]:
        """Class names from the ``label`` column and the events files."""
        names = set(self.table["label"].dropna().tolist())
        for g in self.recordings():
            names |= g.labels
        return sorted(names)

    def recordings(self) -> list[ManifestRecording]:
        """One entry per distinct recording (rows naming the same files are joined), in row order."""
        return list(self.groups)

    def files(self) -> list[Path]:
        """Every distinct file the manifest refers to (recordings and events files)."""
        paths = pd.concat([self.table["old_path"], self.table["new_path"], self.table["events"].dropna()])
        return sorted({Path(p) for p in paths})

    def subjects_per_split(self) -> dict[str, list[str]]:
        return {s: sorted(g["subject"].unique().tolist()) for s, g in self.table.groupby("split")}

    def content(self) -> list[dict]:
        """JSON-ready rows (for hashing and reports)."""
        rows = []
        for r in self.table.itertuples(index=False):
            d = r._asdict()
            d["old_channels"], d["new_channels"] = list(d["old_channels"]), list(d["new_channels"])
            for k in ("label_start", "label_end"):
                d[k] = None if pd.isna(d[k]) else float(d[k])
            rows.append(d)
        return rows

    def spans_table(self) -> pd.DataFrame:
        """Every labelled span per recording: ``recording, subject, split, label, start_s, end_s, origin``."""
        rows = [{"recording": g.name, "subject": g.subject, "split": g.split, "label": s.label,
                 "start_s": s.start_s, "end_s": s.end_s, "origin": s.origin}
                for g in self.recordings() for s in g.spans]
        return pd.DataFrame(rows, columns=["recording", "subject", "split", "label", "start_s", "end_s", "origin"])


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""


def manifest_from_frame(frame: pd.DataFrame, *, root: str | Path, source: str = "<memory>", seed: int = 0,
                        fractions: Mapping[str, float] | None = None, check_files: bool = True) -> Manifest:
    """Validate a manifest table (as read from CSV, all cells strings) and assign splits."""
    where = source
    df = frame.copy()
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise ManifestError(f"{where}: the manifest has no rows.")
    has_path = "path" in df.columns
    has_pair = "old_path" in df.columns or "new_path" in df.columns
    if has_path and has_pair:
        raise ManifestError(f"{where}: use either a 'path' column or 'old_path' + 'new_path', not both.")
    if not has_path and not ("old_path" in df.columns and "new_path" in df.columns):
        missing = ["old_path" if "old_path" not in df.columns else "new_path"] if has_pair else ["path"]
        raise ManifestError(f"{where}: missing column(s) {missing}; columns are {list(df.columns)}. "
                            "Give 'path' (one file with both modalities) or 'old_path' and 'new_path'.")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ManifestError(f"{where}: missing column(s) {missing}; columns are {list(df.columns)}.")
    has_span = "label_start" in df.columns or "label_end" in df.columns
    if has_span and not ("label_start" in df.columns and "label_end" in df.columns and "label" in df.columns):
        raise ManifestError(f"{where}: 'label_start' and 'label_end' need each other and a 'label' column.")
    fr = check_fractions(fractions)
    root = Path(root)

    def resolve(value, i: int, column: str) -> tuple[str, str]:
        if _blank(value):
            raise ManifestError(f"{where}, row {i}: '{column}' is empty.")
        p = Path(str(value).strip()).expanduser()
        full = p if p.is_absolute() else root / p
        if check_files and not full.exists():
            raise ManifestError(f"{where}, row {i}: file not found: {full}")
        return str(value).strip(), str(full.resolve() if full.exists() else full.absolute())

    rows = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        if has_path:
            old_file, old_path = resolve(rec["path"], i, "path")
            new_file, new_path = old_file, old_path
        else:
            old_file, old_path = resolve(rec["old_path"], i, "old_path")
            new_file, new_path = resolve(rec["new_path"], i, "new_path")
        if _blank(rec["subject"]):
            raise ManifestError(f"{where}, row {i}: 'subject' is empty.")
        chans = {}
        for side in ("old_channels", "new_channels"):
            names = split_channels("" if _blank(rec[side]) else rec[side])
            if not names:
                raise ManifestError(f"{where}, row {i}: '{side}' is empty; list channel names separated by ';'.")
            if len(set(names)) != len(names):
                raise ManifestError(f"{where}, row {i}: '{side}' repeats a channel: {names}.")
            chans[side] = tuple(names)
        label = None if _blank(rec.get("label")) else str(rec["label"]).strip()
        start = end = np.nan
        if has_span and not (_blank(rec["label_start"]) and _blank(rec["label_end"])):
            try:
                start, end = float(rec["label_start"]), float(rec["label_end"])
            except (TypeError, ValueError):
                raise ManifestError(f"{where}, row {i}: label_start/label_end must be seconds, got "
                                    f"{rec['label_start']!r} and {rec['label_end']!r}.") from None
            if not (np.isfinite(start) and np.isfinite(end) and 0 <= start < end):
                raise ManifestError(f"{where}, row {i}: need 0 <= label_start < label_end, got {start} and {end}.")
        events_file = events_path = None
        if "events" in df.columns and not _blank(rec["events"]):
            events_file, events_path = resolve(rec["events"], i, "events")
        split = None
        if "split" in df.columns and not _blank(rec["split"]):
            split = str(rec["split"]).strip().lower()
            if split not in SPLITS:
                raise ManifestError(f"{where}, row {i}: unknown split {rec['split']!r}; allowed: {', '.join(SPLITS)} "
                                    "(or blank to assign from the seed).")
        rows.append({"row": i, "old_path": old_path, "new_path": new_path, "old_file": old_file,
                     "new_file": new_file, "subject": str(rec["subject"]).strip(), **chans, "label": label,
                     "label_start": start, "label_end": end, "split": split, "events": events_path,
                     "events_file": events_file})
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for col in ("label", "split", "events", "events_file"):  # missing values as None, never NaN
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    groups = _group_rows(table, Path(str(source)).name, check_files=check_files)

    # subjects given a split in one row keep it everywhere; a subject in two splits is an error
    given: dict[str, tuple[str, int]] = {}
    for r in table.itertuples():
        if r.split is None or pd.isna(r.split):
            continue
        if r.subject in given and given[r.subject][0] != r.split:
            s0, i0 = given[r.subject]
            raise ManifestError(f"{where}: subject '{r.subject}' is in split '{s0}' (row {i0}) and '{r.split}' "
                                f"(row {r.row}); a subject must stay in one split to avoid leakage.")
        given.setdefault(r.subject, (r.split, r.row))
    todo = sorted(set(table["subject"]) - set(given))
    if todo:
        classes: dict[str, set[str]] = {}
        for g in groups:
            if g.subject in todo:
                classes.setdefault(g.subject, set()).update(g.labels)
        assigned = assign_splits(todo, seed=seed, fractions=fr, classes=classes)
        if given:
            logger.info("%s: %d subject(s) without a split were assigned from seed %d.", where, len(todo), seed)
    else:
        assigned = {}
    mapping = {**{s: v[0] for s, v in given.items()}, **assigned}
    table["split"] = table["subject"].map(mapping)
    for g in groups:
        g.split = mapping[g.subject]
    return Manifest(table=table, root=root, source=str(source), seed=int(seed), fractions=fr, groups=groups)


def _group_rows(table: pd.DataFrame, where: str, *, check_files: bool = True) -> list[ManifestRecording]:
    """Join rows naming the same recording; collect, merge and check their labelled spans."""
    groups: dict[tuple[str, str], ManifestRecording] = {}
    first_row: dict[tuple[str, str], object] = {}
    events_cache: dict[str, tuple[list[Span], list[dict]]] = {}
    raw: dict[tuple[str, str], list[Span]] = {}
    for r in table.itertuples(index=False):
        key = (r.old_path, r.new_path)
        g = groups.get(key)
        if g is None:
            g = groups[key] = ManifestRecording(
                rows=(), old_path=r.old_path, new_path=r.new_path, old_file=r.old_file, new_file=r.new_file,
                subject=r.subject, old_channels=r.old_channels, new_channels=r.new_channels, split=r.split)
            first_row[key] = r
            raw[key] = []
        else:
            f = first_row[key]
            for col, what in (("subject", "subject"), ("old_channels", "old channels"),
                              ("new_channels", "new channels")):
                if getattr(r, col) != getattr(f, col):
                    raise ManifestError(
                        f"{where}: rows {f.row} and {r.row} name the same recording ({g.name}) with different "
                        f"{what} ({getattr(f, col)!r} and {getattr(r, col)!r}); rows of one recording must agree.")
        g.rows = g.rows + (int(r.row),)
        if r.label is not None:
            whole = pd.isna(r.label_start)
            raw[key].append(Span(0.0 if whole else float(r.label_start), math.inf if whole else float(r.label_end),
                                 str(r.label), f"{where} row {r.row}"))
        if r.events is not None and (check_files or Path(r.events).is_file()):
            if r.events not in events_cache:
                ev_name = Path(r.events_file).name
                events_cache[r.events] = spans_from_events(read_events(r.events, name=ev_name), where=ev_name)
            spans, skipped = events_cache[r.events]
            raw[key].extend(spans)
            g.skipped.extend(dict(d, row=int(r.row)) for d in skipped)
    for key, g in groups.items():
        g.spans = merge_spans(raw[key], where=f"{where} ({g.name})")
    return list(groups.values())


def row_where(manifest: Manifest, side: str | None = None, index: int = 0) -> str:
    """How messages name a manifest row: ``"m.csv, row 2 (rec.edf), old side"`` (file names only, never
    a folder path a server would reveal); ``side`` is ``"old"``, ``"new"`` or None."""
    row = manifest.table.iloc[index]
    file = row["old_file"] if side != "new" else row["new_file"]
    where = f"{Path(str(manifest.source)).name}, row {row['row']} ({Path(str(file)).name})"
    return f"{where}, {side} side" if side else where


@contextmanager
def naming(where: str) -> Iterator[None]:
    """Re-raise a ``BioXError`` from the block with ``where`` (file, manifest row) in front of its message,
    same type, unless the message already starts with it. For checks that know no file, such as an
    encoder refusing a manifest row's channel names."""
    try:
        yield
    except BioXError as exc:
        msg = str(exc)
        if msg.startswith(where):
            raise
        try:
            err = type(exc)(f"{where}: {msg}")
        except Exception:  # an error type with other arguments: keep it as it is
            raise exc from None
        raise err from None


def read_manifest(path: str | Path, *, seed: int = 0, fractions: Mapping[str, float] | None = None) -> Manifest:
    """Read and validate a manifest CSV; subjects without a ``split`` are split from ``seed``.

    Raises ``ManifestError`` naming the manifest, the row and the problem
    (missing column or file, unknown split, a subject in two splits, no rows).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ManifestError(f"Manifest not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, comment=None)
    except pd.errors.EmptyDataError:
        raise ManifestError(f"{path}: the manifest is empty.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a readable CSV file ({exc}).") from None
    return manifest_from_frame(frame, root=path.resolve().parent, source=str(path), seed=seed, fractions=fractions)


def write_manifest(rows: list[dict], path: str | Path) -> Path:
    """Write manifest rows (dicts; channel lists are joined with ';') to CSV atomically."""
    from .._io import atomic_write_bytes

    out = []
    for r in rows:
        r = dict(r)
        for k in ("old_channels", "new_channels"):
            if isinstance(r.get(k), (list, tuple)):
                r[k] = ";".join(r[k])
        out.append(r)
    text = pd.DataFrame(out).to_csv(index=False)
    return atomic_write_bytes(path, text.encode("utf-8"))
