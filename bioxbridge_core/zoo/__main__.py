"""``python -m bioxbridge_core.zoo pretrain|probe --encoder ecg|ppg|eeg``: build the shipped encoder weights.

This is a maintainer tool (not a user subcommand): it pre-trains the built-in
encoders on the development recordings and measures them with linear probes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..errors import BioXError
from ..paths import ASSETS, REPO_ROOT

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = ASSETS / "encoders"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bioxbridge_core.zoo", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="count", default=1)
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("pretrain", "masked-reconstruction pre-training"), ("probe", "frozen linear probes"),
                        ("card", "render MODEL_CARD_<name>.md from the JSON reports")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--encoder", required=True, choices=("ecg", "ppg", "eeg"))
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding eegmat/ and cinc2015_vt/")
        s.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where weights and JSON reports go")
        s.add_argument("--threads", type=int, default=1, help="torch CPU threads for this process")
        s.add_argument("--device", default=None, help="torch device (default: CUDA when present)")
        if name == "pretrain":
            s.add_argument("--minutes", type=float, default=8.0, help="time box for training")
            s.add_argument("--steps", type=int, default=None, help="fixed step count (replays a run exactly)")
            s.add_argument("--lr", type=float, default=5e-4)
            s.add_argument("--batch-size", type=int, default=32)
            s.add_argument("--mask-ratio", type=float, default=0.5)
            s.add_argument("--mask-span", type=float, nargs=2, default=(0.3, 1.5), metavar=("MIN_S", "MAX_S"),
                           help="lengths of masked spans in seconds (ECG/PPG, EEG with --eeg-mask span)")
            s.add_argument("--eeg-mask", choices=("patch", "span"), default="patch",
                           help="EEG: mask whole 1 s channel patches or random spans")
        elif name == "probe":
            s.add_argument("--weights", type=Path, default=None,
                           help="safetensors to probe (default: <out>/<encoder>.safetensors)")
            s.add_argument("--folds", type=int, default=6)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        if args.command == "pretrain":
            from .pretrain import run_pretraining

            res = run_pretraining(args.encoder, data_root=args.data, out_dir=args.out, minutes=args.minutes,
                                  steps=args.steps, seed=args.seed, device=args.device, lr=args.lr,
                                  batch_size=args.batch_size, mask_ratio=args.mask_ratio,
                                  mask_span_s=tuple(args.mask_span), eeg_mask=args.eeg_mask)
            print(f"builtin:{args.encoder}: {res.steps} steps in {res.seconds / 60:.1f} min, "
                  f"loss {res.first_loss:.4f} -> {res.last_loss:.4f}; wrote {args.out}/{args.encoder}.safetensors")
        elif args.command == "card":
            from .card import render_card

            print(render_card(args.encoder, args.out))
        else:
            from .probe_eval import run_probe

            report = run_probe(args.encoder, data_root=args.data, out_dir=args.out, weights=args.weights,
                               n_folds=args.folds, seed=args.seed, device=args.device)
            for task in report["tasks"]:
                print(task["task"], f"(n={task['n_samples']}, groups={task['n_groups']})")
                for model, m in task["results"].items():
                    print(f"  {model:22s} BAcc {m['balanced_accuracy_mean']:.3f} ± {m['balanced_accuracy_std']:.3f}"
                          f"   F1-M {m['f1_macro_mean']:.3f} ± {m['f1_macro_std']:.3f}")
    except BioXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
