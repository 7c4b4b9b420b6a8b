"""``align``: score every (new read, old write) position pair and pick where the bridge goes.

    python -m bioxbridge_core align --manifest M.csv --old builtin:ecg --new builtin:ppg \\
        --window-seconds 10 --out runs/align1
    python -m bioxbridge_core align --demo ecg-ppg --out /tmp/align-demo

Pairs and windows the manifest, trains the old task head on the ``train``
split (or loads ``--head``), pseudo-labels the ``pair`` split, then runs
linear probes (new side) and CKA (old side). Writes ``alignment.json`` and
``features.npz`` (and ``old_head.safetensors`` when a head was trained) into
``--out`` and prints a short summary.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, WindowingError
from ._args import add_data_source

log = logging.getLogger(__name__)

DEMO_ENCODERS = {"ecg-ppg": ("builtin:ecg", "builtin:ppg"), "eeg-ecg": ("builtin:eeg", "builtin:ecg")}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("align", help="select the bridge positions (probes + CKA) on paired windows",
                              description=__doc__.splitlines()[0])
    add_data_source(p)
    p.add_argument("--old", metavar="ENCODER", help="old-modality encoder (default for --demo: its old side)")
    p.add_argument("--new", metavar="ENCODER", help="new-modality encoder (default for --demo: its new side)")
    p.add_argument("--window-seconds", type=float, metavar="S", help="window length (default: the old encoder's)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for alignment.json and features.npz")
    p.add_argument("--head", metavar="PATH", help="a saved old task head (TaskHead.save) instead of training one")
    p.add_argument("--seed", type=int, default=0, help="seed of the subject split, probes and shuffles")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--n-perm", type=int, default=5, help="shuffles for the null CKA baseline")
    p.add_argument("--no-cache", action="store_true", help="recompute windows and features")
    p.add_argument("--features", metavar="DIR", help="read the pair features from `features` shards in DIR")
    p.add_argument("--json", action="store_true", help="print the selection as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..alignment import align
    from ..models.heads import TaskHead, pseudo_labels, train_task_head
    from ..pipeline import PAIR_SPLITS, PipelineConfig, prepare_data

    old_name = args.old or (DEMO_ENCODERS[args.demo][0] if args.demo else None)
    new_name = args.new or (DEMO_ENCODERS[args.demo][1] if args.demo else None)
    if not old_name or not new_name:
        raise ConfigError("Name both encoders: --old ENCODER --new ENCODER (see `python -m bioxbridge_core models`).")
    cache = not args.no_cache
    config = PipelineConfig(old=old_name, new=new_name, manifest=args.manifest, demo=args.demo,
                            window_s=args.window_seconds, seed=args.seed, device=args.device)
    data = prepare_data(config, cache=cache)
    pw, old_enc, new_enc, path = data.windows, data.old_encoder, data.new_encoder, data.manifest_path

    out = Path(args.out)
    pair = pw.split(*PAIR_SPLITS)
    if len(pair) < 4:
        raise WindowingError(f"{path}: the 'pair' split has {len(pair)} windows; alignment needs at least 4.")
    if args.head:
        head = TaskHead.load(args.head)
        head_source = str(args.head)
    else:
        train = pw.split("train").labelled()
        if len(train) == 0:
            raise WindowingError(f"{path}: no labelled windows in the 'train' split to train the old task head; "
                                 "give --head PATH or label the train recordings.")
        head = train_task_head(old_enc, train.x_old, train.labels(), label_names=pw.label_names,
                               groups=train.subjects, seed=args.seed)
        head.save(out / "old_head.safetensors")
        head_source = str(out / "old_head.safetensors")
    if args.features:  # the union of the shards: no encoder runs over the pairs
        from ..alignment.shards import open_union, pseudo_labels_from

        union = open_union(args.features)
        union.check_rows(pair.meta, where=f"the pair windows of {path}")
        y = pseudo_labels_from(union, head, batch_size=max(args.batch_size, 1024))
        res = align(old_enc, new_enc, None, None, y, groups=pair.subjects, seed=args.seed, n_perm=args.n_perm,
                    features_new=union.side("new", "out"), features_old=union.side("old", "in"))
    else:
        y = pseudo_labels(old_enc, head, pair.x_old, batch_size=args.batch_size)
        res = align(old_enc, new_enc, pair.x_old, pair.x_new, y, groups=pair.subjects, seed=args.seed,
                    batch_size=args.batch_size, device=args.device, cache=cache, n_perm=args.n_perm)
    res.notes.append(f"old task head: {head_source}")
    res.save(out)

    sel = res.selected
    i, j = res.new_positions.index(sel["new_position"]), res.old_positions.index(sel["old_position"])
    if args.json:
        print(json.dumps({"selected": sel, "n_pairs": res.n_pairs, "probe_f1": float(res.probe_f1[i]),
                          "cka": float(res.cka[i, j]), "null_cka": float(res.null_cka[i, j]),
                          "out": str(out)}, indent=2))
        return 0
    counts = np.bincount(y, minlength=len(head.label_names))
    print(f"{path}: {res.n_pairs} pair windows; pseudo labels "
          + ", ".join(f"{name}={c}" for name, c in zip(head.label_names, counts)))
    print(f"new {res.new_encoder}: probe macro-F1 per read position ({res.probe_cv} CV)")
    for name, f1, sd in zip(res.new_positions, res.probe_f1, res.probe_f1_std):
        mark = " <" if name == sel["new_position"] else ""
        print(f"  {name:<24} {f1:.3f} ± {sd:.3f}{mark}")
    print(f"old {res.old_encoder}: debiased CKA with {sel['new_position']} per write position "
          f"(biased, shuffled baseline)")
    for jj, name in enumerate(res.old_positions):
        mark = " <" if name == sel["old_position"] else ""
        print(f"  {name:<24} {res.cka[i, jj]:.3f}  ({res.cka_biased[i, jj]:.3f}, {res.null_cka[i, jj]:+.3f}){mark}")
    print(f"selected: read {sel['new_position']} -> write {sel['old_position']}")
    for note in res.notes:
        print(f"note: {note}")
    print(f"wrote {out / 'alignment.json'} and {out / 'features.npz'}")
    return 0
