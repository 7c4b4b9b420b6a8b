"""``run``: the whole headless pipeline on a manifest (or the demo), writing report.json."""

from __future__ import annotations

import argparse
import json

from ._progress import TerminalProgress
from ._args import add_data_source


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train head, select positions, train the bridge, evaluate (report.json)")
    add_data_source(p)
    p.add_argument("--old", required=True, help="old-modality encoder, e.g. builtin:ecg")
    p.add_argument("--new", required=True, help="new-modality encoder, e.g. builtin:ppg")
    p.add_argument("--window-seconds", type=float, default=None, help="window length (default: the old encoder's)")
    p.add_argument("--step-seconds", type=float, default=None, help="window step (default: the window length)")
    p.add_argument("--out", required=True, help="output folder (report.json, bundle, alignment)")
    p.add_argument("--baselines", default="", help="comma-separated extra methods: kd")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="bridge (and KD) epochs")
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--prototypes", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--new-position", default=None, help="override the selected read position of the new encoder")
    p.add_argument("--old-position", default=None, help="override the selected write position of the old encoder")
    p.add_argument("--head", default=None, help="saved old task head (.safetensors) instead of training one")
    p.add_argument("--old-finetune", action="store_true",
                   help="fine-tune the old encoder with its head on the train split (the bridge then bridges into "
                        "the fine-tuned encoder)")
    p.add_argument("--old-finetune-epochs", type=int, default=5)
    p.add_argument("--old-finetune-lr", type=float, default=3e-5, help="encoder learning rate when fine-tuning")
    p.add_argument("--calibration", choices=("auto", "none", "subject"), default="auto",
                   help="'subject': standardise each subject's pooled features with its own windows (old model, "
                        "bridge and KD; at prediction, an upload's own windows); 'auto' (default): subject when "
                        "it raises the old model's subject-grouped CV score on train by >= 0.02")
    p.add_argument("--write-tie-break", choices=("none", "cheaper"), default="none",
                   help="'cheaper': among write positions within the CKA noise of the best, take the latest")
    p.add_argument("--loss-on", choices=("pooled", "tokens"), default=None,
                   help="bridge loss on the pooled last-layer output (default) or on every token (the paper's)")
    p.add_argument("--patience", type=int, default=None, help="early stop after this many epochs without a better "
                                                               "pair-val loss (0 = off); bridge and KD")
    p.add_argument("--kd-epochs", type=int, default=None, help="KD epochs (default: the bridge's)")
    p.add_argument("--kd-lr", type=float, default=None, help="KD learning rate (default 1e-4)")
    p.add_argument("--no-assess", action="store_true",
                   help="skip the old model's subject-grouped CV assessment printed before training")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import PipelineConfig, format_assessment, format_verdicts, run_pipeline, summarise

    bridge = {k: v for k, v in {"epochs": args.epochs, "rank": args.rank, "n_prototypes": args.prototypes,
                                "lr": args.lr, "batch_size": args.batch_size, "loss_on": args.loss_on,
                                "patience": args.patience}.items() if v is not None}
    extra = {k: v for k, v in {"kd_epochs": args.kd_epochs, "kd_lr": args.kd_lr}.items() if v is not None}
    config = PipelineConfig(
        old=args.old, new=args.new, manifest=args.manifest, demo=args.demo, window_s=args.window_seconds,
        step_s=args.step_seconds, seed=args.seed, bridge=bridge,
        baselines=[b.strip() for b in args.baselines.split(",") if b.strip()],
        new_position=args.new_position, old_position=args.old_position, head=args.head, device=args.device,
        calibration=args.calibration, old_finetune=args.old_finetune, old_finetune_epochs=args.old_finetune_epochs,
        old_finetune_lr=args.old_finetune_lr, assess_old=not args.no_assess,
        write_tie_break=args.write_tie_break, **extra)
    from .. import distributed as dist

    with dist.session(args.device):  # several processes when started by torchrun (rank 0 reports)
        config.device = dist.rank_device_name(config.device)  # cuda:<LOCAL_RANK> on a GPU node
        bar = TerminalProgress("pipeline", enabled=not args.no_progress and dist.is_main())

        def show(result: dict) -> None:  # printed before anything else is trained
            if bar._bar is not None:
                bar._bar.clear()
            print(format_assessment(result), flush=True)

        try:
            report = run_pipeline(config, args.out, on_progress=bar, on_assessment=show)
        finally:
            bar.close()
        if not dist.is_main():
            return 0
    print(summarise(report))
    print(format_verdicts(report))
    print(json.dumps({"report": f"{args.out}/report.json", "positions": report["positions"]}))
    return 0
