"""``features``: run the frozen encoders over this shard's recordings and store their outputs.

    python -m bioxbridge_core features --manifest M.csv --old builtin:ecg --new builtin:ppg \\
        --shard 0/4 --out feats/          # shard 0 of 4; run 1/4, 2/4, 3/4 anywhere else
    python -m bioxbridge_core align --manifest M.csv --old ... --new ... --features feats/ --out align/
    python -m bioxbridge_core train --manifest M.csv --old ... --new ... --features feats/ --out run/ ...

Each shard takes every N-th recording of the ``pair``/``val`` splits (manifest order) and writes
pooled features at every position (alignment), the bridge's inputs and the old model's
last-layer targets into ``--out/shard-I-of-N/``. Shards are independent processes (a job
array, one per GPU, several machines sharing ``--out``); a finished shard is skipped when run
again. ``align``/``train`` with ``--features`` read the union of all shards. Without
``--shard``, torchrun's ``RANK``/``WORLD_SIZE`` or Slurm's array variables pick the shard.
"""

from __future__ import annotations

import argparse
import json
import os

from ..errors import ConfigError
from ._args import add_data_source


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("features", help="extract frozen-encoder features for one shard of the recordings",
                              description=__doc__.splitlines()[0])
    add_data_source(p)
    p.add_argument("--old", required=True, metavar="ENCODER", help="old-modality encoder, e.g. builtin:ecg")
    p.add_argument("--new", required=True, metavar="ENCODER", help="new-modality encoder, e.g. builtin:ppg")
    p.add_argument("--positions", default="all", metavar="all|NEW:OLD",
                   help="'all' (default: every read and write position, what alignment needs) or the bridge's "
                        "NEW:OLD positions (comma-separated lists allowed) when alignment is done")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="this process's shard, counted from 0 (default: from RANK/WORLD_SIZE or "
                        "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else 0/1)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder shared by all shards")
    p.add_argument("--target-dtype", choices=("float32", "float16"), default="float32",
                   help="storage of the last-layer targets (float16 halves their size)")
    p.add_argument("--window-seconds", type=float, default=None, help="window length (default: the old encoder's)")
    p.add_argument("--step-seconds", type=float, default=None, help="window step (default: the window length)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subject split (must match align/train)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def _shard(text: str | None) -> tuple[int, int]:
    from ..alignment.shards import parse_shard

    if text is not None:
        return parse_shard(text)
    env = os.environ
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return parse_shard(f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}")
    if "RANK" in env and "WORLD_SIZE" in env:
        return parse_shard(f"{env['RANK']}/{env['WORLD_SIZE']}")
    return 0, 1


def run(args) -> int:
    from ..alignment.shards import extract_shard
    from ..pipeline import PipelineConfig

    index, count = _shard(args.shard)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}.")
    config = PipelineConfig(old=args.old, new=args.new, manifest=args.manifest, demo=args.demo,
                            window_s=args.window_seconds, step_s=args.step_seconds, seed=args.seed,
                            device=args.device)
    res = extract_shard(config, args.out, index=index, count=count, positions=args.positions,
                        target_dtype=args.target_dtype, batch_size=args.batch_size)
    summary = {"shard": f"{index}/{count}", "folder": str(res.folder), "n_windows": res.n_windows,
               "skipped": res.skipped, "seconds": round(res.seconds, 2)}
    if args.json:
        print(json.dumps(summary, indent=2))
    elif res.skipped:
        print(f"shard {index}/{count} is already complete ({res.n_windows} windows in {res.folder}); nothing to do")
    else:
        print(f"shard {index}/{count}: {res.n_windows} windows -> {res.folder} ({res.seconds:.1f} s)")
    return 0
