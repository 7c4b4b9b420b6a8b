"""``windows``: pair and window a manifest; print windows per split and class and what was dropped.

    python -m bioxbridge_core windows --manifest M.csv --old builtin:ecg --new builtin:ppg
    python -m bioxbridge_core windows --demo ecg-ppg --old-sfreq 100 --old-modality ECG \\
        --new-sfreq 50 --new-modality PPG --window-seconds 10 --json
"""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from ..spec import MODALITIES, SignalSpec


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("windows", help="pair and window a manifest; show counts per split and class",
                              description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="manifest CSV (path or old_path/new_path, subject, channels, label...)")
    src.add_argument("--demo", choices=("ecg-ppg", "eeg-ecg"), help="use the built-in simulated demo data")
    p.add_argument("--old", metavar="ENCODER", help="old encoder name (e.g. builtin:ecg); gives rate and channels")
    p.add_argument("--new", metavar="ENCODER", help="new encoder name (e.g. builtin:ppg)")
    p.add_argument("--old-sfreq", type=float, metavar="HZ", help="old side rate when no encoder is named")
    p.add_argument("--old-modality", choices=MODALITIES)
    p.add_argument("--new-sfreq", type=float, metavar="HZ")
    p.add_argument("--new-modality", choices=MODALITIES)
    p.add_argument("--window-seconds", type=float, metavar="S", help="window length (default: the old encoder's)")
    p.add_argument("--step-seconds", type=float, metavar="S", help="step between windows (default: window length)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subject split (and of the demo data)")
    p.add_argument("--out", metavar="FILE.npz", help="save the PairedWindows here")
    p.add_argument("--no-cache", action="store_true", help="recompute even when cached windows exist")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    p.set_defaults(func=run)
    return p


def _check_side(args, side: str) -> None:
    """Either an encoder name or rate + modality, before any file is read."""
    name = getattr(args, side)
    sfreq, modality = getattr(args, f"{side}_sfreq"), getattr(args, f"{side}_modality")
    if name and (sfreq is not None or modality is not None):
        raise ConfigError(f"Give either --{side} ENCODER or --{side}-sfreq/--{side}-modality, not both.")
    if not name and (sfreq is None or modality is None):
        raise ConfigError(f"Say what the {side} side needs: --{side} ENCODER, or --{side}-sfreq HZ and "
                          f"--{side}-modality {{{','.join(MODALITIES)}}}.")


def _spec(args, side: str, channels: list[str]) -> SignalSpec:
    name = getattr(args, side)
    sfreq, modality = getattr(args, f"{side}_sfreq"), getattr(args, f"{side}_modality")
    if name:
        from ..models.registry import encoder_spec

        return encoder_spec(name, ch_names=channels)
    window_s = args.window_seconds if args.window_seconds is not None else 10.0
    return SignalSpec(modality, sfreq, window_s, n_chans=None)


def run(args) -> int:
    from ..data.manifest import read_manifest
    from ..data.pairing import make_paired_windows

    _check_side(args, "old")
    _check_side(args, "new")
    if args.demo:
        from ..data.demo import demo_manifest

        path = demo_manifest(args.demo, seed=args.seed)
    else:
        path = args.manifest
    manifest = read_manifest(path, seed=args.seed)
    first = manifest.table.iloc[0]
    old_spec = _spec(args, "old", list(first["old_channels"]))
    new_spec = _spec(args, "new", list(first["new_channels"]))
    pw = make_paired_windows(manifest, old_spec=old_spec, new_spec=new_spec, window_s=args.window_seconds,
                             step_s=args.step_seconds, cache=not args.no_cache)
    if args.out:
        pw.save(args.out)
    summary = pw.summary()
    summary["manifest"] = str(path)
    summary["old"] = {"channels": pw.old_channels, "sfreq": pw.sfreq_old, "shape": list(pw.x_old.shape)}
    summary["new"] = {"channels": pw.new_channels, "sfreq": pw.sfreq_new, "shape": list(pw.x_new.shape)}
    if args.out:
        summary["saved"] = str(args.out)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{path}: {len(pw)} windows of {pw.window_s:g} s (step {pw.step_s:g} s), seed {args.seed}")
    print(f"old: {len(pw.old_channels)} ch {pw.old_channels} @ {pw.sfreq_old:g} Hz -> {tuple(pw.x_old.shape)}")
    print(f"new: {len(pw.new_channels)} ch {pw.new_channels} @ {pw.sfreq_new:g} Hz -> {tuple(pw.x_new.shape)}")
    print("\nwindows per split and class:")
    counts = pw.counts()
    counts["total"] = counts.sum(axis=1)
    print(counts.to_string())
    print("\nsubjects per split:")
    for split, subs in summary["subjects_per_split"].items():
        shown = ", ".join(subs[:8]) + (f", ... ({len(subs) - 8} more)" if len(subs) > 8 else "")
        print(f"  {split}: {len(subs)} ({shown})")
    from ..data.pairing import DROP_REASONS

    dropped = summary["dropped"]
    print("\ndropped windows:" + ("" if dropped else " none"))
    for reason, n in dropped.items():
        print(f"  {reason}: {n} ({DROP_REASONS.get(reason, reason)})")
    if args.out:
        print(f"saved {args.out}")
    return 0
