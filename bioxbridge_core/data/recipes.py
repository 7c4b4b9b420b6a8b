"""Manifests for the two public development databases (see ``/work/shared/data/README.md``).

- ``eegmat_manifest``: PhysioNet "EEG During Mental Arithmetic Tasks". One EDF per
  subject and condition (``SubjectNN_1.edf`` rest, ``SubjectNN_2.edf`` task), both
  modalities in one file: the 10-20 EEG channels (``EEG Fp1`` ... ``EEG Pz``; the
  reference ``EEG A2-A1`` is left out) and ``ECG ECG``. Label per recording.
- ``cinc2015_manifest``: PhysioNet/CinC Challenge 2015 VT alarms. One WFDB record per
  subject; old = the first ECG lead of each header (names vary: II, V, aVF...),
  new = ``PLETH``. The alarm verdict (``alarms.csv``) labels only the span before the
  alarm (284-300 s by default; with 16 s windows exactly one labelled window per
  record); the rest of each record is unlabelled pair data. Records without PLETH are
  left out and listed in a ``.notes.json`` beside the manifest (and logged).
- ``stress_predict_manifest``: Stress-Predict (Iqbal et al. 2022), Empatica E4 exports.
  Per subject ``SNN/EDA.csv`` and ``SNN/BVP.csv`` are two synchronised files (E4 layout:
  row 1 start time in unix seconds, row 2 rate, then samples); ``labels.csv``
  (``participant,time_unix_s,label``, one row per second) becomes one BIDS-style events
  file per subject (``rest``/``stress`` spans, onsets from the old file's start).

The data folder may be read-only, so manifests (with absolute paths) go to
``out_dir`` or ``paths.cache_dir("recipes")``.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from .._check import check_option, soft_import
from .._io import atomic_write_bytes, atomic_write_json
from ..errors import ManifestError, RecordingError
from .manifest import write_manifest
from .recording import eeg_position, infer_ch_type

logger = logging.getLogger(__name__)

EEGMAT_LABELS = {"1": "rest", "2": "task"}
_EEGMAT_NAME = re.compile(r"^(?P<subject>.+)_(?P<part>[12])\.edf$", re.IGNORECASE)
_REFERENCES = {"A1", "A2", "M1", "M2"}


def _out_path(out_dir: str | Path | None, name: str) -> Path:
    from ..paths import cache_dir

    folder = Path(out_dir) if out_dir is not None else cache_dir("recipes")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def edf_channel_names(path: str | Path) -> list[str]:
    """Signal labels from an EDF/BDF header (reads only the header bytes)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
            n = int(head[252:256].decode("ascii").strip())
            labels = fh.read(16 * n)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: not a readable EDF header ({exc}).") from None
    if len(labels) != 16 * n:
        raise RecordingError(f"{path}: EDF header is truncated.")
    return [labels[16 * i: 16 * (i + 1)].decode("latin-1").strip() for i in range(n)]


def eegmat_manifest(root: str | Path, *, out_dir: str | Path | None = None, old: str = "EEG") -> Path:
    """Write a manifest for the eegmat EDF files in ``root``; returns its path.

    Parameters
    ----------
    root : folder with ``SubjectNN_1.edf`` (rest) and ``SubjectNN_2.edf`` (task).
    out_dir : where to write ``eegmat_old-<old>.csv`` (default ``cache_dir("recipes")``).
    old : ``"EEG"`` (old = the EEG channels, new = ``ECG ECG``) or ``"ECG"`` (the reverse).
    """
    check_option("old", old, ("EEG", "ECG"), owner="eegmat_manifest")
    root = Path(root).expanduser()
    files = sorted(p for p in root.glob("*") if p.is_file() and _EEGMAT_NAME.match(p.name))
    if not files:
        raise ManifestError(f"{root}: no eegmat files (SubjectNN_1.edf / SubjectNN_2.edf) found.")
    rows, skipped = [], []
    for f in files:
        m = _EEGMAT_NAME.match(f.name)
        names = edf_channel_names(f)
        eeg = [c for c in names if infer_ch_type(c) == "EEG" and eeg_position(c) not in _REFERENCES
               and eeg_position(c) is not None]
        ecg = [c for c in names if infer_ch_type(c) == "ECG"]
        if not eeg or not ecg:
            skipped.append(f"{f.name}: {'no EEG channels' if not eeg else 'no ECG channel'}")
            continue
        old_ch, new_ch = (eeg, ecg[:1]) if old == "EEG" else (ecg[:1], eeg)
        rows.append({"path": str(f.resolve()), "subject": m["subject"], "old_channels": old_ch,
                     "new_channels": new_ch, "label": EEGMAT_LABELS[m["part"]]})
    if skipped:
        logger.warning("eegmat: left out %d file(s): %s", len(skipped), "; ".join(skipped))
    if not rows:
        raise ManifestError(f"{root}: no eegmat file has both EEG and ECG channels ({'; '.join(skipped)}).")
    return write_manifest(rows, _out_path(out_dir, f"eegmat_old-{old.lower()}.csv"))


def _read_alarms(root: Path) -> dict[str, int]:
    path = root / "alarms.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        out = {}
        for row in csv.DictReader(fh):
            try:
                out[str(row["recordname"]).strip()] = int(str(row["result"]).strip())
            except (KeyError, ValueError):
                raise ManifestError(f"{path}: expected columns 'recordname,result' with 0/1 results.") from None
    return out


def _verdict_from_comments(comments: list[str]) -> int | None:
    text = " ".join(comments).lower()
    if "true alarm" in text:
        return 1
    if "false alarm" in text:
        return 0
    return None


def cinc2015_manifest(root: str | Path, *, out_dir: str | Path | None = None, old: str = "ECG",
                      label_start: float = 284.0, label_end: float = 300.0,
                      records: Sequence[str] | None = None) -> Path:
    """Write a manifest for the CinC 2015 VT-alarm WFDB records in ``root``; returns its path.

    Parameters
    ----------
    root : folder with ``<record>.hea`` + signal files and ``alarms.csv``.
    out_dir : where to write ``cinc2015_vt_old-<old>.csv`` (default ``cache_dir("recipes")``).
    old : ``"ECG"`` (old = first ECG lead, new = PLETH) or ``"PPG"`` (the reverse).
    label_start, label_end : seconds of the labelled span before the alarm (284-300 s in the
        full records; 44-60 s in the 60 s test fixtures cut at 240-300 s).
    records : only these record names (e.g. a quick subset); default every record.

    Labels are ``true_alarm`` / ``false_alarm`` from ``alarms.csv`` (else the header comments).
    Records without PLETH or without an ECG lead are left out and listed in
    ``<manifest>.notes.json``.
    """
    check_option("old", old, ("ECG", "PPG"), owner="cinc2015_manifest")
    if not (0 <= label_start < label_end):
        raise ManifestError(f"cinc2015_manifest: need 0 <= label_start < label_end, got {label_start}, {label_end}.")
    wfdb = soft_import("wfdb", "reading WFDB headers")
    root = Path(root).expanduser()
    headers = sorted(root.glob("*.hea"))
    if records is not None:
        wanted = {str(r) for r in records}
        unknown = sorted(wanted - {h.stem for h in headers})
        if unknown:
            raise ManifestError(f"{root}: no record(s) {unknown[:5]} (no .hea file).")
        headers = [h for h in headers if h.stem in wanted]
    if not headers:
        raise ManifestError(f"{root}: no WFDB headers (*.hea) found.")
    alarms = _read_alarms(root)
    rows, left_out = [], []
    for hea in headers:
        name = hea.stem
        try:
            h = wfdb.rdheader(str(hea.with_suffix("")))
        except Exception as exc:  # wfdb raises many kinds
            left_out.append({"record": name, "reason": f"unreadable header ({exc})"})
            continue
        sig = list(h.sig_name or [])
        ecg = [c for c in sig if infer_ch_type(c) == "ECG"]
        ppg = [c for c in sig if infer_ch_type(c) == "PPG"]
        if not ppg or not ecg:
            left_out.append({"record": name, "reason": "no PLETH channel" if not ppg else "no ECG lead",
                             "channels": sig})
            continue
        verdict = alarms.get(name, _verdict_from_comments(list(h.comments or [])))
        duration_s = (h.sig_len or 0) / float(h.fs)
        label = None if verdict is None else ("true_alarm" if verdict == 1 else "false_alarm")
        if label is not None and duration_s + 1e-6 < label_end:
            logger.warning("cinc2015: %s lasts %.1f s, shorter than the label span end %.1f s; unlabelled.",
                           name, duration_s, label_end)
            label = None
        old_ch, new_ch = (ecg[:1], ppg[:1]) if old == "ECG" else (ppg[:1], ecg[:1])
        rows.append({"path": str(hea.resolve()), "subject": name, "old_channels": old_ch, "new_channels": new_ch,
                     "label": label or "", "label_start": label_start if label else "",
                     "label_end": label_end if label else ""})
    out = _out_path(out_dir, f"cinc2015_vt_old-{old.lower()}.csv")
    notes = out.with_suffix(".notes.json")
    if left_out:
        logger.warning("cinc2015: left out %d record(s): %s", len(left_out),
                       ", ".join(f"{d['record']} ({d['reason']})" for d in left_out))
    if not rows:
        raise ManifestError(f"{root}: no record has both an ECG lead and PLETH.")
    atomic_write_json(notes, {"root": str(root), "n_records": len(rows), "left_out": left_out})
    return write_manifest(rows, out)


# -- Stress-Predict ---------------------------------------------------------------------------------
STRESS_PREDICT_LABELS = {"0": "rest", "1": "stress"}
_E4_SUBJECT = re.compile(r"^S\d+$")


def e4_start_s(path: str | Path) -> float:
    """Start time (unix seconds, UTC) from row 1 of an Empatica E4 CSV export (reads one line)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        return float(first.split(",")[0].strip())
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path}: row 1 is not an E4 start time in unix seconds ({exc}).") from None


def labels_to_events(times_unix_s: Sequence[float], labels: Sequence, *, start_unix_s: float,
                     names: dict[str, str] | None = None, where: str = "labels") -> pd.DataFrame:
    """Per-second labels (``time_unix_s``, ``label``) -> a BIDS-style events table for one recording.

    Each label covers ``[t, t + 1 s)`` (the period is the median spacing); onsets are seconds from
    ``start_unix_s`` (the old-modality file's start). ``names`` maps raw label values to class
    names (``{"0": "rest", "1": "stress"}``). Returns ``onset, duration, trial_type`` rows.
    """
    from .events import spans_from_samples, spans_to_events

    names = names or {}
    mapped = [names.get(str(v).strip(), str(v).strip()) for v in labels]
    t = [float(x) - float(start_unix_s) for x in times_unix_s]
    return spans_to_events(spans_from_samples(t, mapped, where=where))


def stress_predict_manifest(root: str | Path, *, out_dir: str | Path | None = None, old: str = "EDA",
                            subjects: Sequence[str] | None = None) -> Path:
    """Write a manifest (and one events file per subject) for Stress-Predict in ``root``; returns its path.

    Parameters
    ----------
    root : folder with ``SNN/EDA.csv``, ``SNN/BVP.csv`` (Empatica E4 exports) and ``labels.csv``.
    out_dir : where to write ``stress_predict_old-<old>.csv`` and ``stress_predict_events/SNN_events.tsv``
        (default ``cache_dir("recipes")``).
    old : ``"EDA"`` (old = ``EDA.csv``, new = ``BVP.csv``, the PPG) or ``"PPG"`` (the reverse).
    subjects : only these subject folders (``["S02", "S04"]``); default every subject.

    Labels: ``labels.csv`` (``participant,time_unix_s,label``; 1 = stress task, 0 = rest; one row
    per second) is turned into ``rest``/``stress`` spans per subject, written as events files with
    onsets in seconds from the old file's start (row 1 of the E4 file). Subjects without labels
    stay unlabelled pair data; subjects missing a file are left out (``<manifest>.notes.json``).
    The files are paired by their E4 start times (``data.pairing``), which agree in this dataset.
    """
    check_option("old", old, ("EDA", "PPG"), owner="stress_predict_manifest")
    root = Path(root).expanduser()
    folders = sorted(p for p in root.glob("S*") if p.is_dir() and _E4_SUBJECT.match(p.name))
    if subjects is not None:
        wanted = {str(s) for s in subjects}
        unknown = sorted(wanted - {f.name for f in folders})
        if unknown:
            raise ManifestError(f"{root}: no subject folder(s) {unknown[:5]}.")
        folders = [f for f in folders if f.name in wanted]
    if not folders:
        raise ManifestError(f"{root}: no Stress-Predict subject folders (S02, S04, ...) found.")
    labels_path = root / "labels.csv"
    per_subject: dict[str, pd.DataFrame] = {}
    if labels_path.is_file():
        table = pd.read_csv(labels_path, dtype=str, keep_default_na=False)
        missing = [c for c in ("participant", "time_unix_s", "label") if c not in table.columns]
        if missing:
            raise ManifestError(f"{labels_path}: missing column(s) {missing}; expected participant,time_unix_s,label.")
        for part, g in table.groupby("participant"):
            try:
                per_subject[f"S{int(part):02d}"] = g
            except ValueError:
                raise ManifestError(f"{labels_path}: participant {part!r} is not a number.") from None
    else:
        logger.warning("stress_predict: %s not found; every subject is unlabelled pair data.", labels_path)

    out = _out_path(out_dir, f"stress_predict_old-{old.lower()}.csv")
    events_dir = out.parent / "stress_predict_events"
    events_dir.mkdir(parents=True, exist_ok=True)
    rows, left_out = [], []
    for f in folders:
        eda, bvp = f / "EDA.csv", f / "BVP.csv"
        if not eda.is_file() or not bvp.is_file():
            left_out.append({"subject": f.name, "reason": f"no {'EDA.csv' if not eda.is_file() else 'BVP.csv'}"})
            continue
        old_file, new_file = (eda, bvp) if old == "EDA" else (bvp, eda)
        row = {"old_path": str(old_file.resolve()), "new_path": str(new_file.resolve()), "subject": f.name,
               "old_channels": [old_file.stem], "new_channels": [new_file.stem], "events": ""}
        lab = per_subject.get(f.name)
        if lab is not None and len(lab):
            try:
                times = lab["time_unix_s"].astype(float).tolist()
            except ValueError:
                raise ManifestError(f"{labels_path}: non-numeric time_unix_s for {f.name}.") from None
            ev = labels_to_events(times, lab["label"].tolist(), start_unix_s=e4_start_s(old_file),
                                  names=STRESS_PREDICT_LABELS, where=f"labels.csv ({f.name})")
            ev_path = events_dir / f"{f.name}_events.tsv"
            atomic_write_bytes(ev_path, ev.to_csv(sep="\t", index=False).encode("utf-8"))
            row["events"] = str(ev_path.resolve())
        else:
            logger.info("stress_predict: no labels for %s; its windows are unlabelled pairs.", f.name)
        rows.append(row)
    if left_out:
        logger.warning("stress_predict: left out %d subject(s): %s", len(left_out),
                       ", ".join(f"{d['subject']} ({d['reason']})" for d in left_out))
    if not rows:
        raise ManifestError(f"{root}: no subject has both EDA.csv and BVP.csv.")
    atomic_write_json(out.with_suffix(".notes.json"), {"root": str(root), "n_subjects": len(rows),
                                                       "left_out": left_out})
    return write_manifest(rows, out)


# -- a data folder -> its recipe's manifest -----------------------------------------------------------
#: folder recipes: name -> (description, function of this module, old-side options); the app (``ui/server_data.py``)
#: and the CLI (``--manifest FOLDER``) offer them
RECIPES = {
    "eegmat": ("PhysioNet EEG during mental arithmetic (SubjectNN_1/2.edf)", "eegmat_manifest", ("EEG", "ECG")),
    "cinc2015": ("PhysioNet/CinC 2015 VT alarms (WFDB records + alarms.csv)", "cinc2015_manifest", ("ECG", "PPG")),
    "stress_predict": ("Stress-Predict (Empatica E4 BVP/EDA per subject + labels.csv)", "stress_predict_manifest",
                       ("EDA", "PPG")),
}


def detect_recipe(folder: str | Path) -> str | None:
    """Which dataset recipe fits ``folder`` (by its file layout), or None."""
    folder = Path(folder)
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return None
    if any(re.fullmatch(r".+_[12]\.edf", n, re.IGNORECASE) for n in names) and \
            sum(n.lower().endswith(".edf") for n in names) >= 2:
        return "eegmat"
    if "alarms.csv" in names and any(n.endswith(".hea") for n in names):
        return "cinc2015"
    if "labels.csv" in names and any((folder / n / "BVP.csv").is_file() for n in names):
        return "stress_predict"
    return None


def recipe_manifest(folder: str | Path, *, old: str, out_dir: str | Path | None = None) -> tuple[Path, str]:
    """``(manifest path, recipe name)`` for a data folder: the recipe that fits it (``detect_recipe``), run
    with ``old`` as its old side (a modality: ``"ECG"``, ``"EEG"``...). The manifest goes to ``out_dir``,
    by default a cache folder of its own for each data folder (``cache_dir("recipes", "<name>-<hash>")``).

    Raises ManifestError naming the folder (its name only) when no recipe fits, listing the recipes
    known, or when the recipe has no ``old`` side (listing the sides it has).
    """
    folder = Path(folder)
    recipe = detect_recipe(folder)
    if recipe is None:
        known = "; ".join(f"{k}: {v[0]}" for k, v in RECIPES.items())
        raise ManifestError(f"{folder.name}: a folder, but no dataset recipe fits its files (recipes known: "
                            f"{known}). Give a manifest CSV instead.")
    desc, fn_name, sides = RECIPES[recipe]
    if old not in sides:
        raise ManifestError(f"{folder.name}: the {recipe} recipe ({desc}) takes {' or '.join(sides)} as the old "
                            f"side, not {old}.")
    if out_dir is None:  # one cache folder per data folder: two eegmat folders never share a manifest
        import hashlib

        from ..paths import cache_dir

        key = hashlib.blake2b(str(folder.resolve()).encode(), digest_size=6).hexdigest()
        out_dir = cache_dir("recipes", f"{folder.name}-{key}")
    return Path(globals()[fn_name](folder, out_dir=out_dir, old=old)), recipe
