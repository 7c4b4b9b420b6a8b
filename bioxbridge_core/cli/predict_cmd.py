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


def _read_json(path: Path, kind: type = dict):
    """The JSON in ``path`` when it is a ``kind``; an empty ``kind`` when absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return kind()
    return data if isinstance(data, kind) else kind()


def run_quality(run_dir: str | Path, info: dict | None = None) -> tuple[dict, str | None]:
    """``(held_out, warning)`` of the run that made a bundle.

    ``held_out``: the run's held-out numbers (test-split balanced accuracy and F1 of the bridge and
    of the old model, the test window count, the bridge verdict) from ``report.json`` (``run``) or
    ``metrics.json`` + ``history.json`` (the app's runs); ``{}`` when the folder holds neither.
    ``warning``: ``verdicts.trust_warning`` (bridge verdict not "go", or the confidence temperature at
    its bound), or None.
    """
    from ..verdicts import bridge_verdict, trust_warning

    run_dir = Path(run_dir)
    report = _read_json(run_dir / "report.json")
    confidence = (info or {}).get("confidence_calibration")
    if report.get("bridge"):  # a ``run`` folder
        b = report["bridge"]
        bm, om = b.get("metrics") or {}, (report.get("oracle") or {}).get("metrics") or {}
    else:  # an app run
        b = _read_json(run_dir / "metrics.json").get("bridge") or {}
        if not b:
            return {}, trust_warning({}, confidence)
        bm, om = b.get("test") or {}, {}
    verdict = (report.get("verdicts") or {}).get("bridge")
    if verdict is None:  # an app run, or a report written before verdicts were stored
        verdict = bridge_verdict(_read_json(run_dir / "history.json", kind=list),
                                 chance_agreement=b.get("agreement_chance"), n_val=b.get("n_val"),
                                 epochs=b.get("epochs")).to_dict()
    report = {"verdicts": {"bridge": verdict}, "bridge": {"confidence_calibration": b.get("confidence_calibration")}}
    held_out = {k: v for k, v in {
        "bridge_balanced_accuracy": bm.get("balanced_accuracy"), "bridge_f1_macro": bm.get("f1_macro"),
        "old_model_balanced_accuracy": om.get("balanced_accuracy"), "n_test_windows": bm.get("n"),
        "bridge_verdict": (verdict or {}).get("level")}.items() if v is not None}
    return held_out, trust_warning(report, confidence)


def _held_out_line(held: dict) -> str:
    parts = []
    if "bridge_balanced_accuracy" in held:
        parts.append(f"bridge balanced accuracy {held['bridge_balanced_accuracy']:.3f}")
    if "old_model_balanced_accuracy" in held:
        parts.append(f"old model {held['old_model_balanced_accuracy']:.3f}")
    if "n_test_windows" in held:
        parts.append(f"on {held['n_test_windows']} test windows")
    if "bridge_verdict" in held:
        parts.append(f"bridge verdict {held['bridge_verdict'].upper()}")
    return "held-out (this run's test split): " + ", ".join(parts)


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
    if dropped:  # with the JSON's "dropped"/"drop_reasons", for a reader of the terminal
        print(f"{Path(args.file).name}: dropped {sum(dropped.values())} window(s): " + "; ".join(
            f"{r} {n} ({t})" for (r, n), t in zip(dropped.items(), drop_reasons(dropped).values())),
              file=sys.stderr)
    held_out, warning = run_quality(args.run, getattr(model, "info", None))
    if held_out:  # the human lines go to stderr; stdout stays one JSON line
        print(_held_out_line(held_out), file=sys.stderr)
    if warning:
        print("warning: " + warning, file=sys.stderr)
    print(json.dumps({"file": Path(args.file).name, "windows": len(frame), "predicted": counts,
                      "dropped": dropped, "drop_reasons": drop_reasons(dropped), "out": args.out,
                      "held_out": held_out, "warning": warning}))
    return 0
