"""``python -m bioxbridge_core.zoo pretrain|probe|card --encoder ecg|ppg|eeg|eda``: build the shipped encoder weights.

This is a maintainer tool (not a user subcommand): it pre-trains the built-in
encoders on the development recordings and measures them with linear probes.
The data folder is ``--data``, else ``$BIOXBRIDGE_SHARED_DATA``, else ``<repo>/../shared/data``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from ..errors import BioXError
from ..paths import ASSETS, REPO_ROOT

DEFAULT_DATA = Path(os.environ.get("BIOXBRIDGE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
DEFAULT_OUT = ASSETS / "encoders"
ENCODERS = ("ecg", "ppg", "eeg", "eda")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bioxbridge_core.zoo", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="count", default=1)
    sub = p.add_subparsers(dest="command", required=True)
    summ = sub.add_parser("summary", help="the README's probe table from every probe_<name>.json")
    summ.add_argument("--out", type=Path, default=DEFAULT_OUT)
    summ.add_argument("--threads", type=int, default=1)
    for name, help_ in (("pretrain", "masked reconstruction + physiology-target pre-training"),
                        ("probe", "frozen linear probes"),
                        ("card", "render MODEL_CARD_<name>.md from the JSON reports")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--encoder", required=True, choices=ENCODERS)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--data", type=Path, default=DEFAULT_DATA,
                       help="folder holding eegmat/, cinc2015_vt/ and stress_predict/")
        s.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where weights and JSON reports go")
        s.add_argument("--threads", type=int, default=1, help="torch CPU threads for this process")
        s.add_argument("--device", default=None, help="torch device (default: CUDA when present)")
        if name == "pretrain":
            s.add_argument("--minutes", type=float, default=30.0, help="time box for training (wall minutes)")
            s.add_argument("--steps", type=int, default=None, help="fixed step count (replays a run exactly)")
            s.add_argument("--lr", type=float, default=1e-3)
            s.add_argument("--batch-size", type=int, default=16, help="windows per step at 10 s (scaled by length)")
            s.add_argument("--mask-ratio", type=float, default=0.5)
            s.add_argument("--mask-span", type=float, nargs=2, default=None, metavar=("MIN_S", "MAX_S"),
                           help="lengths of masked spans in seconds (default per encoder)")
            s.add_argument("--eeg-mask", choices=("patch", "span"), default="span",
                           help="EEG: mask random spans or whole 1 s channel patches")
            s.add_argument("--physio-weight", type=float, default=1.0,
                           help="weight of the physiology-target loss (0 = masked reconstruction only)")
            s.add_argument("--no-simulated", action="store_true", help="leave out the neurokit2 simulations")
        elif name == "probe":
            s.add_argument("--weights", type=Path, default=None,
                           help="safetensors to probe (default: <out>/<encoder>.safetensors)")
            s.add_argument("--previous", default="git",
                           help="previous weights: 'git' (from the commit that shipped them), a path, or 'none'")
            s.add_argument("--folds", type=int, default=6)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
                                  mask_span_s=tuple(args.mask_span) if args.mask_span else None,
                                  eeg_mask=args.eeg_mask, physio_weight=args.physio_weight,
                                  include_simulated=not args.no_simulated,
                                  command="python -m bioxbridge_core.zoo " + shlex.join(argv))
            print(f"builtin:{args.encoder}: {res.steps} steps in {res.seconds / 60:.1f} min, "
                  f"reconstruction loss {res.first_loss:.4f} -> {res.last_loss:.4f}, "
                  f"held-out physiology R^2 {res.final_val.get('val_r2_mean', float('nan')):.3f}; "
                  f"wrote {args.out}/{args.encoder}.safetensors")
        elif args.command == "summary":
            from .card import summary_table

            print(summary_table(args.out))
        elif args.command == "card":
            from .card import render_card

            print(render_card(args.encoder, args.out))
        else:
            from .probe_eval import run_probe

            prev = None if args.previous.lower() == "none" else args.previous
            report = run_probe(args.encoder, data_root=args.data, out_dir=args.out, weights=args.weights,
                               previous=prev, n_folds=args.folds, seed=args.seed, device=args.device)
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
