"""``windows``: pair and window a manifest; print windows per split and class and what was dropped.

    python -m bioxbridge_core windows --manifest M.csv --old builtin:ecg --new builtin:ppg
    python -m bioxbridge_core windows --demo ecg-ppg --old-sfreq 100 --old-modality ECG \\
        --new-sfreq 50 --new-modality PPG --window-seconds 10 --json

Shows, per split and class, the labelled windows and the unlabelled pairs; every dropped
window (gap, NaN, flat line) and every labelled span that gave no window, with its reason;
and, for two-file rows, how the files were aligned and how long they overlap. A window
length outside either encoder's range is refused before any file is read.
"""

from __future__ import annotations

import argparse
import json
import math

from ..errors import ConfigError
from ..spec import MODALITIES, SignalSpec
from ._args import MANIFEST_HELP, add_data_source


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("windows", help="pair and window a manifest; show counts per split and class",
                              description=__doc__.splitlines()[0])
    add_data_source(p, manifest_help=MANIFEST_HELP + " (columns: path or old_path/new_path, subject, channels, "
                                                      "label, events...)")
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


def _spec(args, side: str, channels: list[str] | None = None, window_s: float | None = None) -> SignalSpec:
    name = getattr(args, side)
    sfreq, modality = getattr(args, f"{side}_sfreq"), getattr(args, f"{side}_modality")
    if name:
        from ..models.registry import encoder_spec

        return encoder_spec(name, ch_names=channels, window_s=window_s)
    if window_s is None:
        window_s = args.window_seconds if args.window_seconds is not None else 10.0
    return SignalSpec(modality, sfreq, window_s, n_chans=None)


def _seconds(v) -> str:
    return "end" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{float(v):g}"


def run(args) -> int:
    from ..data.manifest import naming, read_manifest, row_where
    from ..data.pairing import ALL_DROP_REASONS, check_window_request, make_paired_windows

    _check_side(args, "old")
    _check_side(args, "new")
    # the window length against both encoders' ranges, before the demo is made or a file is read
    window_s, step_s = check_window_request(_spec(args, "old"), _spec(args, "new"), args.window_seconds,
                                            args.step_seconds, old_name=args.old, new_name=args.new)
    if args.demo:
        from ..data.demo import demo_manifest

        path = demo_manifest(args.demo, seed=args.seed)
    else:
        path = args.manifest
    manifest = read_manifest(path, seed=args.seed)
    first = manifest.table.iloc[0]
    with naming(row_where(manifest, "old")):  # an encoder refusing the row's channels names file and row
        old_spec = _spec(args, "old", list(first["old_channels"]), window_s)
    with naming(row_where(manifest, "new")):
        new_spec = _spec(args, "new", list(first["new_channels"]), window_s)
    pw = make_paired_windows(manifest, old_spec=old_spec, new_spec=new_spec, window_s=window_s,
                             step_s=step_s, cache=not args.no_cache)
    if args.out:
        pw.save(args.out)
    summary = pw.summary()
    summary["manifest"] = str(path)
    summary["old"] = {"channels": pw.old_channels, "sfreq": pw.sfreq_old, "shape": list(pw.x_old.shape)}
    summary["new"] = {"channels": pw.new_channels, "sfreq": pw.sfreq_new, "shape": list(pw.x_new.shape)}
    summary["drop_reasons"] = {r: ALL_DROP_REASONS[r] for r in sorted(
        set(pw.dropped) | {d["reason"] for d in pw.dropped_spans}) if r in ALL_DROP_REASONS}
    if args.out:
        summary["saved"] = str(args.out)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"{path}: {len(pw)} windows of {pw.window_s:g} s (step {pw.step_s:g} s), seed {args.seed}")
    print(f"old: {len(pw.old_channels)} ch {pw.old_channels} @ {pw.sfreq_old:g} Hz -> {tuple(pw.x_old.shape)}")
    print(f"new: {len(pw.new_channels)} ch {pw.new_channels} @ {pw.sfreq_new:g} Hz -> {tuple(pw.x_new.shape)}")
    print("\nwindows per split and class (labelled windows; 'unlabelled' = pairs for the bridge):")
    counts = pw.counts()
    counts["total"] = counts.sum(axis=1)
    print(counts.to_string())
    print("\nsubjects per split:")
    for split, subs in summary["subjects_per_split"].items():
        shown = ", ".join(subs[:8]) + (f", ... ({len(subs) - 8} more)" if len(subs) > 8 else "")
        print(f"  {split}: {len(subs)} ({shown})")

    table = pw.drop_table()
    print("\ndropped windows and labelled spans per split and class:" + ("" if len(table) else " none"))
    if len(table):
        print(table.to_string(index=False))
        for reason, text in summary["drop_reasons"].items():
            print(f"  {reason}: {text}")
    spans = pw.dropped_spans
    if spans:
        print(f"\nlabelled spans that gave no window ({len(spans)}):")
        for d in spans[:20]:
            print(f"  {d['recording']} ({d['split']}): '{d['label']}' {_seconds(d['start_s'])}-"
                  f"{_seconds(d['end_s'])} s from {d['origin']}: {d['reason']}")
        if len(spans) > 20:
            print(f"  ... {len(spans) - 20} more (see --json)")
    pairs = [r for r in pw.recordings if r["old_file"] != r["new_file"]]
    if pairs:
        print(f"\ntwo-file recordings: how the files were paired ({len(pairs)}):")
        for r in pairs[:20]:
            print(f"  {r['recording']}: new starts {r['offset_s']:+.3f} s after old (aligned on {r['aligned_on']}); "
                  f"{r['overlap_s']:.3f} s in common ({r['common_start_s']:g}-{r['common_end_s']:g} s of the old "
                  f"file; old {r['old_duration_s']:g} s, new {r['new_duration_s']:g} s)")
        if len(pairs) > 20:
            print(f"  ... {len(pairs) - 20} more (see --json)")
    if args.out:
        print(f"saved {args.out}")
    return 0
