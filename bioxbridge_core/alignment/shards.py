"""Sharded feature extraction: many independent processes, one union the trainers read.

``extract_shard(config, out, index=I, count=N)`` takes the recordings of the manifest's
``pair``/``val`` splits (``Manifest.recordings()``: rows naming the same files are one
recording), keeps every N-th one starting at I (manifest order; whole subjects instead when
windows are z-scored per subject), pairs and windows them exactly as one process would (same
label spans, same grid), runs both frozen encoders once and writes into
``out/shard-0000I-of-0000N/``:

- ``new/out.<m>.npy`` pooled new-model outputs at every read position (alignment; the
  bridge's input z at m),
- ``old/in.<l>.npy`` pooled old-model inputs at every write position (alignment),
  ``old/out.<last>.npy`` the pooled last layer (the old task head's input: pseudo labels) and
  ``old/last.<dtype>.npy`` the full last-layer output (the bridge's targets),
- ``meta.json`` (window rows with the index of their recording in the manifest) and, last,
  ``DONE`` (settings and counts).

Shards share nothing while they run (a job array, one process per GPU, several machines on a
shared folder). Re-running a finished shard with the same settings does nothing; a shard
killed half-way keeps the files it completed (each written atomically) and finishes the rest.
``open_union(out)`` checks that all N shards are complete and agree, and concatenates them
once, in chunks, into ``out/union-of-0000N/`` in manifest order, the same rows in the same
order as a single process would produce (``PairedWindows.split("pair", "val")``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .. import _npy
from .._io import atomic_write_json, read_json
from ..errors import ConfigError
from .features import TARGET_DTYPES, encoder_key, extract_features, feature_key

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
FORMAT = "bioxbridge-feature-shard/1"
DONE, META, INFO = "DONE", "meta.json", "info.json"
SIDES = ("new", "old")
_SHARD_RE = re.compile(r"^shard-(\d+)-of-(\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N (shards are numbered from 0)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not (0 <= int(m.group(1)) < int(m.group(2))):
        raise ConfigError(f"--shard must be I/N with 0 <= I < N (shards count from 0), got {text!r}.")
    return int(m.group(1)), int(m.group(2))


def shard_folder(out: str | Path, index: int, count: int) -> Path:
    return Path(out) / f"shard-{index:05d}-of-{count:05d}"


def shard_recordings(recordings: Sequence, index: int, count: int, *, splits: Sequence[str],
                     by: str = "recording") -> np.ndarray:
    """Indices (into ``recordings``, objects with ``split`` and ``subject``) that shard ``index`` of
    ``count`` handles.

    Recordings of ``splits`` in manifest order are dealt round-robin (``by="recording"``), or
    whole subjects are (``by="subject"``, needed when windows are z-scored per subject).
    """
    pos = np.array([i for i, r in enumerate(recordings) if r.split in splits], dtype=np.int64)
    if by == "subject":
        subjects = list(dict.fromkeys(str(recordings[i].subject) for i in pos))
        mine = set(subjects[index::count])
        return pos[[str(recordings[i].subject) in mine for i in pos]] if pos.size else pos
    return pos[index::count]


def _positions(config_positions: str, old, new) -> tuple[list[str], list[str]]:
    if config_positions in ("all", "", None):
        return [p.name for p in new.read_positions], [p.name for p in old.write_positions]
    new_part, sep, old_part = str(config_positions).partition(":")
    if not sep:
        raise ConfigError(f"--positions must be 'all' or NEW[,NEW...]:OLD[,OLD...], got {config_positions!r}.")
    news = [new.position(p.strip()).name for p in new_part.split(",") if p.strip()]
    olds = [old.position(p.strip()).name for p in old_part.split(",") if p.strip()]
    return news, olds


def _manifest_hash(manifest) -> str:
    text = json.dumps(manifest.content(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclasses.dataclass
class ShardResult:
    folder: Path
    n_windows: int
    skipped: bool
    seconds: float


def extract_shard(config, out: str | Path, *, index: int = 0, count: int = 1, positions: str = "all",
                  splits: Sequence[str] = ("pair", "val"), target_dtype: str = "float32", batch_size: int = 64,
                  cache_windows: bool = True, on_progress: ProgressFn | None = None) -> ShardResult:
    """Write shard ``index`` of ``count`` for ``config`` (a ``pipeline.PipelineConfig``: data, encoders,
    window, seed, device) into ``out``; see the module docstring. Returns where and how many windows.

    Raises ConfigError when the shard folder was finished with other settings.
    """
    from ..data.manifest import read_manifest
    from ..data.pairing import make_paired_windows
    from ..models.registry import encoder_spec, load_encoder
    from ..pipeline import check_windows, resolve_manifest

    if target_dtype not in TARGET_DTYPES:
        raise ConfigError(f"target_dtype must be one of {TARGET_DTYPES}, got {target_dtype!r}.")
    t0 = time.perf_counter()
    window_s, step_s = check_windows(config.old, config.new, config.window_s, config.step_s)
    manifest = read_manifest(resolve_manifest(config), seed=config.seed)
    first = manifest.table.iloc[0]
    old_ch, new_ch = list(first["old_channels"]), list(first["new_channels"])
    old = load_encoder(config.old, device=config.device, ch_names=old_ch, window_s=window_s)
    new = load_encoder(config.new, device=config.device, ch_names=new_ch, window_s=window_s)
    news, olds = _positions(positions, old, new)
    from ..data.pairing import side_normalisation
    from ..data.preprocess import Preprocessing

    prep = Preprocessing()
    old_spec = encoder_spec(config.old, ch_names=old_ch, window_s=window_s)
    new_spec = encoder_spec(config.new, ch_names=new_ch, window_s=window_s)
    by = "subject" if "zscore-subject" in (side_normalisation(old_spec, prep), side_normalisation(new_spec, prep)) \
        else "recording"
    info = {"format": FORMAT, "count": int(count), "manifest": _manifest_hash(manifest), "seed": config.seed,
            "old": config.old, "new": config.new, "old_key": encoder_key(old), "new_key": encoder_key(new),
            "window_s": window_s, "step_s": step_s, "splits": list(splits),
            "new_positions": news, "old_positions": olds, "last_position": old.positions[-1].name,
            "target_dtype": target_dtype, "shard_by": by}
    folder = shard_folder(out, index, count)
    if (folder / DONE).is_file():
        done = read_json(folder / DONE)
        if done.get("info") != info:
            diff = sorted(k for k in info if done.get("info", {}).get(k) != info[k])
            raise ConfigError(f"{folder} was finished with other settings ({', '.join(diff)}); use another --out.")
        log.info("%s is complete (%d windows): nothing to do", folder, done["n_windows"])
        return ShardResult(folder, int(done["n_windows"]), True, time.perf_counter() - t0)

    recs = manifest.recordings()
    mine = shard_recordings(recs, index, count, splits=splits, by=by)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / INFO, info)
    n = 0
    if mine.size:
        groups = [recs[i] for i in mine]
        rows = {r for g in groups for r in g.rows}
        sub = dataclasses.replace(manifest, table=manifest.table[manifest.table["row"].isin(rows)]
                                  .reset_index(drop=True), groups=groups)
        # same spans (so the same window grid) as the whole manifest; a shard lacks train/test, so no class check
        pw = make_paired_windows(sub, old_spec=old_spec, new_spec=new_spec, window_s=window_s, step_s=step_s,
                                 preprocessing=prep, cache=cache_windows, check_classes=False)
        pw = pw.split(*splits)
        n = len(pw)
    if n:
        keys = {"new": [feature_key("out", p) for p in news],
                "old": [feature_key("in", p) for p in olds] + [feature_key("out", info["last_position"]), "last"]}
        extract_features(new, pw.x_new, keys["new"], batch_size=batch_size, cache=folder / "new",
                         device=config.device, on_progress=on_progress)
        extract_features(old, pw.x_old, keys["old"], batch_size=batch_size, cache=folder / "old",
                         device=config.device, last_dtype=target_dtype, on_progress=on_progress)
        meta = pw.meta.copy()
        where = {(str(recs[i].subject), recs[i].name): int(i) for i in mine}
        if len(where) != mine.size:
            raise ConfigError(f"{manifest.source}: two recordings share a subject and file name; shards need "
                              "each recording named once.")
        meta["recording_index"] = [where[(str(s), str(r))] for s, r in zip(meta["subject"], meta["recording"])]
    else:
        meta = pd.DataFrame(columns=["subject", "recording", "split", "start_s", "label", "recording_index"])
    atomic_write_json(folder / META, json.loads(meta.to_json(orient="records")))
    atomic_write_json(folder / DONE, {"info": info, "n_windows": int(n), "index": int(index),
                                      "seconds": round(time.perf_counter() - t0, 3)})
    log.info("shard %d/%d: %d windows from %d recordings in %s", index, count, n, mine.size, folder)
    return ShardResult(folder, int(n), False, time.perf_counter() - t0)


# -- union --------------------------------------------------------------------------------------
@dataclasses.dataclass
class FeatureUnion:
    """Every shard's features in manifest order.

    meta : one row per window (subject, recording, split, start_s, recording_index).
    arrays : ``"new:out:<m>"``, ``"old:in:<l>"``, ``"old:out:<last>"``, ``"old:last"`` -> memory maps.
    info : the settings the shards were made with.
    """

    folder: Path
    meta: pd.DataFrame
    arrays: dict[str, np.ndarray]
    info: dict

    def __len__(self) -> int:
        return len(self.meta)

    def side(self, side: str, kind: str) -> dict[str, np.ndarray]:
        """``{position: array}`` of one side's pooled features (``kind`` "out" or "in")."""
        prefix = f"{side}:{kind}:"
        return {k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)}

    def check_rows(self, meta: pd.DataFrame, where: str = "the windows") -> None:
        """Raise ConfigError unless ``meta`` lists the same windows (recording, start) in the same order."""
        a = self.meta[["recording", "start_s"]].reset_index(drop=True)
        b = meta[["recording", "start_s"]].reset_index(drop=True)
        same = len(a) == len(b) and (a["recording"].astype(str).to_numpy() == b["recording"].astype(str).to_numpy()
                                     ).all() and np.allclose(a["start_s"].to_numpy(float), b["start_s"].to_numpy(float))
        if not same:
            raise ConfigError(f"{self.folder}: the features hold {len(a)} windows that do not match {where} "
                              f"({len(b)} windows); extract them with the same manifest, seed and window settings.")


def _shard_folders(out: Path) -> dict[int, list[tuple[int, Path]]]:
    """shard count -> [(index, folder)] of the shard folders in ``out``."""
    found: dict[int, list[tuple[int, Path]]] = {}
    for p in sorted(out.glob("shard-*-of-*")):
        m = _SHARD_RE.match(p.name)
        if m and p.is_dir():
            found.setdefault(int(m.group(2)), []).append((int(m.group(1)), p))
    return found


def open_union(out: str | Path) -> FeatureUnion:
    """The union of the complete shards in ``out`` (built once into ``out/union-of-N``, then reused).

    Raises ConfigError naming missing or unfinished shards, or shards made with other settings.
    """
    out = Path(out)
    groups = _shard_folders(out)
    if not groups:
        raise ConfigError(f"{out}: no feature shards here (run `python -m bioxbridge_core features ... --out {out}`).")
    if len(groups) > 1:
        raise ConfigError(f"{out}: shards of several counts {sorted(groups)}; keep one set per folder.")
    (count, shards), = groups.items()
    by_index = dict(shards)
    missing = [i for i in range(count) if i not in by_index or not (by_index[i] / DONE).is_file()]
    if missing:
        shown = ", ".join(f"{i}/{count}" for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ConfigError(f"{out}: {len(missing)} of {count} shards are missing or unfinished ({shown}).")
    dones = [read_json(by_index[i] / DONE) for i in range(count)]
    info = dones[0]["info"]
    for i, d in enumerate(dones):
        if d["info"] != info:
            raise ConfigError(f"{by_index[i]}: made with other settings than shard 0/{count}.")
    stamp = hashlib.sha256(json.dumps(dones, sort_keys=True).encode()).hexdigest()[:24]
    union = out / f"union-of-{count:05d}"
    if not ((union / DONE).is_file() and read_json(union / DONE).get("stamp") == stamp):
        _build_union(union, [by_index[i] for i in range(count)], info, stamp)
    return _open(union, info)


def _side_files(info: dict) -> list[tuple[str, str, str]]:
    """(side, key, file name) of every array a shard holds."""
    from .features import _file_name

    keys = [("new", feature_key("out", p)) for p in info["new_positions"]]
    keys += [("old", feature_key("in", p)) for p in info["old_positions"]]
    keys += [("old", feature_key("out", info["last_position"])), ("old", "last")]
    return [(side, k, _file_name(k, np.dtype(info["target_dtype"] if k == "last" else "float32")))
            for side, k in keys]


def _build_union(union: Path, shards: list[Path], info: dict, stamp: str) -> None:
    metas = []
    for s, folder in enumerate(shards):
        m = pd.DataFrame(read_json(folder / META))
        if len(m):
            m["_shard"], m["_row"] = s, np.arange(len(m))
            metas.append(m)
    if not metas:
        raise ConfigError(f"{union.parent}: the shards hold no windows.")
    meta = pd.concat(metas, ignore_index=True).sort_values(["recording_index", "_row"], kind="stable")
    # consecutive runs of rows from one shard, in union order
    shard_of, row_of = meta["_shard"].to_numpy(), meta["_row"].to_numpy()
    cut = np.flatnonzero((np.diff(shard_of) != 0) | (np.diff(row_of) != 1)) + 1
    runs = [(int(shard_of[a]), int(row_of[a]), int(row_of[a]) + (b - a))
            for a, b in zip(np.r_[0, cut], np.r_[cut, len(meta)])]
    union.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{union.name}.", suffix=".tmp", dir=union.parent))
    try:
        for side, key, name in _side_files(info):
            sources = [_npy.open_npy(f / side / name) if (f / side / name).is_file() else None for f in shards]
            ref = next(a for a in sources if a is not None)
            with _npy.NpyAppender(tmp / side / name, ref.shape[1:], ref.dtype) as w:
                step = _npy.rows_per_chunk(ref)
                for s, lo, hi in runs:
                    for a in range(lo, hi, step):
                        w.append(sources[s][a: min(hi, a + step)])
                        _npy.release(sources[s])
        atomic_write_json(tmp / META, json.loads(meta.drop(columns=["_shard", "_row"]).to_json(orient="records")))
        atomic_write_json(tmp / DONE, {"stamp": stamp, "n_windows": int(len(meta)), "info": info})
        if (union / DONE).is_file():  # a stale union (shards were redone): replace it
            _npy.publish_folder(tmp, union, overwrite=True)
        else:
            if union.exists() and not any(union.iterdir()):
                union.rmdir()
            _npy.publish_folder(tmp, union, overwrite=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("union of %d shards: %d windows in %s", len(shards), len(meta), union)


def _open(union: Path, info: dict) -> FeatureUnion:
    meta = pd.DataFrame(read_json(union / META))
    arrays = {f"{side}:{key}": _npy.open_npy(union / side / name) for side, key, name in _side_files(info)}
    return FeatureUnion(union, meta, arrays, info)


def pseudo_labels_from(union: FeatureUnion, head, *, batch_size: int = 4096) -> np.ndarray:
    """The old task head's predictions on the pooled last layer stored in the shards (int64, one per window)."""
    import torch

    z = union.arrays[f"old:{feature_key('out', union.info['last_position'])}"]
    out = []
    with torch.no_grad():
        for sl in _npy.row_chunks(len(z), batch_size):
            out.append(head.from_pooled(torch.from_numpy(np.array(z[sl], dtype=np.float32))).argmax(dim=1).numpy())
            _npy.release(z)
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)
