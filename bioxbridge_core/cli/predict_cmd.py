"""``predict``: class probabilities per window for a new-modality recording, from a saved bridge."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict on a new-modality recording with a trained bridge")
    p.add_argument("--run", required=True, help="run folder holding the bridge bundle")
    p.add_argument("file", help="recording of the new modality (EDF, WFDB, CSV, NPZ...)")
    p.add_argument("--channels", default=None,
                   help="channel names separated by ';' (default: the bundle's); only these are read, so a file "
                        "whose other channels have other rates works")
    p.add_argument("--step-seconds", type=float, default=None)
    p.add_argument("--out", default=None, help="CSV to write (default: print a summary only)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)


def _bundle_channels(path: str, model) -> list[str] | None:
    """The bundle's new-side channels when the file has channels of several rates (so a PSG file reads
    only what the bridge needs; WindowingError naming those the file lacks); None to read the whole file."""
    from ..data.readers import EDF_SUFFIXES, WFDB_SUFFIXES, read_header

    if Path(path).suffix.lower() not in EDF_SUFFIXES + WFDB_SUFFIXES:
        return None  # tables and NPZ files have one rate
    from ..inference.predict import bundle_channels_in

    header = read_header(path)
    wanted = list((getattr(model, "info", {}) or {}).get("new_ch_names") or [])
    if header.mixed_rates and wanted:  # a missing bundle channel is named here, not as a mixed-rate file
        return bundle_channels_in(header.ch_names, wanted, where=Path(path).name)
    return None


def run(args: argparse.Namespace) -> int:
    from .._io import atomic_write_bytes
    from ..data.readers import read_recording
    from ..inference.predict import drop_reasons, predict_recording
    from ..runs.bundle import load_bundle

    from .._check import check_range

    if args.step_seconds is not None:  # settings first, before any file is read
        check_range("--step-seconds", args.step_seconds, low=0, low_inclusive=False)
    model = load_bundle(args.run, device=args.device)  # refuses a window outside the encoder's range
    channels = [c.strip() for c in args.channels.split(";") if c.strip()] if args.channels else None
    rec = read_recording(args.file, channels=channels or _bundle_channels(args.file, model))
    frame = predict_recording(model, rec, channels=channels, step_s=args.step_seconds)
    if args.out:
        atomic_write_bytes(args.out, frame.to_csv(index=False).encode())
    counts = frame["label"].value_counts().to_dict() if "label" in frame else {}
    dropped = {k: int(v) for k, v in (frame.attrs.get("dropped") or {}).items()}
    print(json.dumps({"file": Path(args.file).name, "windows": len(frame), "predicted": counts,
                      "dropped": dropped, "drop_reasons": drop_reasons(dropped), "out": args.out}))
    if dropped:  # the JSON above says it too; this line is for a reader of the terminal
        print(f"{Path(args.file).name}: dropped {sum(dropped.values())} window(s): " + "; ".join(
            f"{r} {n} ({t})" for (r, n), t in zip(dropped.items(), drop_reasons(dropped).values())),
              file=sys.stderr)
    return 0
