"""``train``: train the bridge (and the KD baseline) at known positions; one process or many.

    python -m bioxbridge_core train --demo ecg-ppg --old builtin:ecg --new builtin:ppg \\
        --alignment out/align --out out/train --baselines kd
    torchrun --nproc-per-node 4 -m bioxbridge_core train --manifest M.csv --old ... --new ... \\
        --new-position layer4.0 --old-position blocks.4 --head head.safetensors --features feats/ --out run/

Positions come from ``--alignment DIR`` (what ``align`` wrote) or ``--new-position`` /
``--old-position``; the old task head from ``--head``, else the alignment folder's
``old_head.safetensors``, else it is trained on the ``train`` split. ``--features DIR`` reads
the union of ``features`` shards instead of running the frozen encoders over every pair.
Writes the checkpoint, ``history.json``, the bridge bundle and ``train.json`` (test metrics of
the bridge and KD) into ``--out``; running the same command again resumes from the checkpoint.
Under ``torchrun`` every rank trains its share of each batch (DistributedDataParallel around
the bridge only) and rank 0 writes; ``--out`` must be a folder all ranks see.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from ._args import add_data_source


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train the bridge (and KD) at given positions; works under torchrun",
                              description=__doc__.splitlines()[0])
    add_data_source(p)
    p.add_argument("--old", required=True, metavar="ENCODER", help="old-modality encoder, e.g. builtin:ecg")
    p.add_argument("--new", required=True, metavar="ENCODER", help="new-modality encoder, e.g. builtin:ppg")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (checkpoint, history, bundle)")
    p.add_argument("--alignment", metavar="DIR", help="folder written by `align` (positions and old head)")
    p.add_argument("--new-position", default=None, help="read position of the new encoder")
    p.add_argument("--old-position", default=None, help="write position of the old encoder")
    p.add_argument("--head", default=None, metavar="PATH", help="saved old task head (.safetensors)")
    p.add_argument("--features", default=None, metavar="DIR", help="folder of `features` shards to read")
    p.add_argument("--baselines", default="", help="comma-separated extra methods: kd")
    p.add_argument("--window-seconds", type=float, default=None, help="window length (default: the old encoder's)")
    p.add_argument("--step-seconds", type=float, default=None, help="window step (default: the window length)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="bridge (and KD) epochs")
    p.add_argument("--rank", type=int, default=None, help="bridge rank r")
    p.add_argument("--prototypes", type=int, default=None, help="bridge prototypes Np")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="GLOBAL batch: split over the processes")
    p.add_argument("--target-dtype", choices=("float32", "float16"), default=None,
                   help="storage of the cached last-layer targets")
    p.add_argument("--kd-epochs", type=int, default=None)
    p.add_argument("--kd-lr", type=float, default=1e-4)
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default); under torchrun cuda:LOCAL_RANK")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def _positions(args) -> tuple[str, str, Path | None]:
    new_pos, old_pos, head = args.new_position, args.old_position, None
    if args.alignment:
        from ..alignment.result import AlignmentResult

        res = AlignmentResult.load(args.alignment, features=False)
        new_pos = new_pos or res.selected["new_position"]
        old_pos = old_pos or res.selected["old_position"]
        if (Path(args.alignment) / "old_head.safetensors").is_file():
            head = Path(args.alignment) / "old_head.safetensors"
    if not new_pos or not old_pos:
        raise ConfigError("Say where the bridge goes: --alignment DIR (from `align`) or --new-position and "
                          "--old-position.")
    return new_pos, old_pos, head


def run(args) -> int:
    from .. import distributed as dist

    with dist.session(args.device):
        result = train(args)
    if result is None:  # not rank 0
        return 0
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    b = result["bridge"]
    print(f"bridge {result['positions']['new_position']} -> {result['positions']['old_position']}: "
          f"{b['trainable_params']} parameters, best epoch {b['best_epoch']} of {b['epochs_run']}, "
          f"{result['processes']} process(es), {b['train_seconds']} s")
    for m in ("bridge", "kd"):
        if m in result:
            mt = result[m]["metrics"]
            print(f"{m:6s} test balanced accuracy {mt['balanced_accuracy']:.3f}, macro-F1 {mt['f1_macro']:.3f}")
    print(f"wrote {Path(args.out) / 'train.json'} and the bridge bundle")
    return 0


def train(args) -> dict | None:
    """The whole command on this rank; rank 0 returns what it wrote to ``train.json``."""
    from .. import distributed as dist
    from .._io import atomic_write_json
    from ..bridge.composed import BridgedModel
    from ..bridge.config import BridgeConfig
    from ..models.heads import TaskHead
    from ..pipeline import (PipelineConfig, bundle_config, evaluate_predictions, fit_old_head, prepare_data,
                            run_kd, split_windows)
    from ..resources import measure
    from ..runs.bundle import save_bundle
    from ..training.trainer import BridgeTrainer
    from ._progress import TerminalProgress

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    bridge = {k: v for k, v in {"epochs": args.epochs, "rank": args.rank, "n_prototypes": args.prototypes,
                                "lr": args.lr, "batch_size": args.batch_size,
                                "target_dtype": args.target_dtype}.items() if v is not None}
    config = PipelineConfig(old=args.old, new=args.new, manifest=args.manifest, demo=args.demo,
                            window_s=args.window_seconds, step_s=args.step_seconds, seed=args.seed, bridge=bridge,
                            baselines=baselines, head=args.head, device=dist.rank_device_name(args.device))
    new_pos, old_pos, align_head = _positions(args)
    out, main = Path(args.out), dist.is_main()
    with dist.main_first():
        data = prepare_data(config)
    parts = split_windows(data.windows)
    pair, test = parts["pair"], parts["test"]
    head_path = Path(args.head) if args.head else align_head
    if head_path is None:  # train it once, on rank 0
        if main:
            fit_old_head(data.old_encoder, parts["train"], seed=config.seed).save(out / "old_head.safetensors")
        dist.barrier()
        head_path = out / "old_head.safetensors"
    head = fit_old_head(data.old_encoder, parts["train"], head_path=str(head_path))
    if not isinstance(head, TaskHead):
        raise ConfigError(f"{head_path}: not a task head.")

    features = None
    if args.features:
        from ..alignment.features import feature_key
        from ..alignment.shards import open_union

        with dist.main_first(per_node=False):
            union = open_union(args.features)
        union.check_rows(pair.meta, where=f"the pair windows of {data.manifest_path}")
        z_key = f"new:{feature_key('out', data.new_encoder.position(new_pos).name)}"
        if z_key not in union.arrays:
            raise ConfigError(f"{args.features}: the shards hold no features at {new_pos}; extract with "
                              f"--positions all or {new_pos}:{old_pos}.")
        features = {z_key: union.arrays[z_key], "old:last": union.arrays["old:last"]}

    bcfg = BridgeConfig.from_dict(config.bridge)
    bar = TerminalProgress("bridge", enabled=main and not args.no_progress)
    try:
        with measure() as usage:
            trainer = BridgeTrainer(bcfg, device=config.device).fit(
                data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, new_position=new_pos,
                old_position=old_pos, groups=pair.subjects, run_dir=out, head=head, features=features,
                on_progress=bar)
    finally:
        bar.close()
    result: dict = {}
    if main:
        save_bundle(out, trainer.bridge_, head, bundle_config(config, data.windows, new_position=trainer.new_position_,
                                                              old_position=trainer.old_position_, bridge_config=bcfg))
        bridged = BridgedModel(data.new_encoder, data.old_encoder, trainer.bridge_, head,
                               new_position=trainer.new_position_, old_position=trainer.old_position_)
        n_classes = len(data.windows.label_names)
        result = {
            "positions": {"new_position": trainer.new_position_, "old_position": trainer.old_position_},
            "processes": dist.world_size(), "n_windows": {"pair": len(pair), "test": len(test)},
            "features": str(args.features) if args.features else None,
            "bridge": {"trainable_params": int(trainer.n_params_), "train_seconds": round(usage.seconds, 3),
                       "peak_rss_mb": round(usage.peak_rss_mb, 1), "best_epoch": trainer.best_epoch_,
                       "epochs_run": len(trainer.history_), "resumed_from": trainer.resumed_from_,
                       "metrics": evaluate_predictions(test.labels(), bridged.predict_proba(test.x_new), n_classes)},
        }
    if "kd" in baselines:
        kd = run_kd(data.new_encoder, data.old_encoder, head, pair, test,
                    epochs=args.kd_epochs or int(config.bridge["epochs"]), lr=args.kd_lr,
                    batch_size=int(config.bridge["batch_size"]), seed=config.seed,
                    val_fraction=float(config.bridge["val_fraction"]), device=config.device)
        result["kd"] = kd
    if not main:
        return None
    atomic_write_json(out / "train.json", result)
    return result
