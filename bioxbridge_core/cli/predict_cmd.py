"""``predict``: class probabilities per window for a new-modality recording, from a saved bridge."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict on a new-modality recording with a trained bridge")
    p.add_argument("--run", required=True, help="run folder holding the bridge bundle")
    p.add_argument("file", help="recording of the new modality (EDF, WFDB, CSV, NPZ...)")
    p.add_argument("--channels", default=None, help="channel names separated by ';' (default: the bundle's)")
    p.add_argument("--step-seconds", type=float, default=None)
    p.add_argument("--out", default=None, help="CSV to write (default: print a summary only)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._io import atomic_write_bytes
    from ..data.readers import read_recording
    from ..inference.predict import predict_recording
    from ..runs.bundle import load_bundle

    from .._check import check_range

    if args.step_seconds is not None:  # settings first, before any file is read
        check_range("--step-seconds", args.step_seconds, low=0, low_inclusive=False)
    model = load_bundle(args.run, device=args.device)  # refuses a window outside the encoder's range
    channels = [c.strip() for c in args.channels.split(";") if c.strip()] if args.channels else None
    rec = read_recording(args.file)
    frame = predict_recording(model, rec, channels=channels, step_s=args.step_seconds)
    if args.out:
        atomic_write_bytes(args.out, frame.to_csv(index=False).encode())
    counts = frame["label"].value_counts().to_dict() if "label" in frame else {}
    print(json.dumps({"file": Path(args.file).name, "windows": len(frame), "predicted": counts,
                      "out": args.out}))
    return 0
