"""Real-data benchmark: old model, bridge and KD on every real recipe and direction (a script, not a test).

For each direction (eegmat EEG->ECG and ECG->EEG, cinc2015_vt ECG->PPG, stress_predict EDA->PPG and
PPG->EDA) and each seed (seeds change the subject split and every initialisation), one fresh process
runs exactly what ``python -m bioxbridge_core run --manifest M --old O --new N --baselines kd --seed S``
runs (``pipeline.run_pipeline``, same defaults, no special-casing) and then scores two hand-crafted
baselines on the *same* subject split: a logistic regression on hand-crafted features of the old
modality (the reference for the oracle) and of the new modality (what labels on the new modality
would give -- more than bridge and KD ever see). Printed per direction, mean ± SD over seeds:

    method | BAcc | F1-M | trainable params | train s | peak MB (process) | own MB (peak - start)

and the issue's goals (oracle >= 0.60 and within 0.05 of the hand-crafted old-modality baseline;
where oracle >= chance + 0.10: bridge >= KD - 0.02 and >= chance + 0.08; bridge params <= 5 % of KD's;
bridge training time <= 0.25x KD's), with chance = 1 / number of classes.

Absent data folders, recipes (``bioxbridge_core.data.recipes.<name>_manifest``) or encoders are
skipped with a message. Raw results: ``bench/results/real_<direction>_seed<S>.json``.

Run: ``OMP_NUM_THREADS=1 python bench/bench_real.py [--seeds 0,1,2] [--directions ...] [--quick]
[--data ../shared/data] [--calibration subject] [--old-finetune] [--markdown]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results"))
#: direction -> (data folder, recipe function, recipe's ``old`` argument, old encoder, new encoder)
DIRECTIONS = {
    "eegmat_eeg-ecg": ("eegmat", "eegmat_manifest", "EEG", "builtin:eeg", "builtin:ecg"),
    "eegmat_ecg-eeg": ("eegmat", "eegmat_manifest", "ECG", "builtin:ecg", "builtin:eeg"),
    "cinc_ecg-ppg": ("cinc2015_vt", "cinc2015_manifest", "ECG", "builtin:ecg", "builtin:ppg"),
    "stress_eda-ppg": ("stress_predict", "stress_predict_manifest", "EDA", "builtin:eda", "builtin:ppg"),
    "stress_ppg-eda": ("stress_predict", "stress_predict_manifest", "PPG", "builtin:ppg", "builtin:eda"),
}
METHODS = ("hand-crafted old", "hand-crafted new", "oracle", "bridge", "kd", "chance")


def default_data() -> str:
    return os.environ.get("BIOXBRIDGE_SHARED_DATA", str(ROOT.parent / "shared" / "data"))


# -- availability ------------------------------------------------------------------------------------
def unavailable(direction: str, data_root: str) -> str | None:
    """Why ``direction`` cannot run here (None when it can)."""
    folder, recipe, _, old, new = DIRECTIONS[direction]
    if not (Path(data_root) / folder).is_dir():
        return f"data folder {Path(data_root) / folder} not found"
    from bioxbridge_core.data import recipes

    if not hasattr(recipes, recipe):
        return f"recipe bioxbridge_core.data.recipes.{recipe} not available yet"
    from bioxbridge_core.errors import BioXError
    from bioxbridge_core.models.registry import encoder_spec

    for name in (old, new):
        try:
            encoder_spec(name)
        except (BioXError, KeyError, ValueError) as exc:
            return f"encoder {name} not available ({exc})"
    return None


def manifest_for(direction: str, data_root: str) -> Path:
    from bioxbridge_core.data import recipes

    folder, recipe, old_arg, _, _ = DIRECTIONS[direction]
    return getattr(recipes, recipe)(Path(data_root) / folder, out_dir=RESULTS / "manifests", old=old_arg)


# -- one (direction, seed) in this process -----------------------------------------------------------
def handcrafted_on_split(data, side: str, calibration: str, seed: int) -> dict:
    """Hand-crafted features of ``side`` ("old"/"new"): train on the train split's labels, score on test.

    ``data``: the pipeline's ``PreparedData`` (windows and the encoders whose spec they follow).
    """
    import numpy as np

    from bioxbridge_core.baselines.handcrafted import handcrafted_features
    from bioxbridge_core.metrics import classification_metrics
    from bioxbridge_core.models.assess import handcrafted_cv

    windows = data.windows
    spec = (data.old_encoder if side == "old" else data.new_encoder).spec
    both = windows.subset(np.flatnonzero(np.isin(windows.meta["split"].to_numpy(), ["train", "test"])))
    x = both.x_old if side == "old" else both.x_new
    feats = handcrafted_features(np.asarray(x), modality=spec.modality, sfreq=spec.sfreq)
    y_all = both.labels()
    lab = np.flatnonzero(y_all >= 0)
    split = both.meta["split"].to_numpy()[lab]
    fold = [(np.flatnonzero(split == "train"), np.flatnonzero(split == "test"))]
    pred = handcrafted_cv(feats, y_all, np.asarray(both.subjects).astype(str), fold, calibration=calibration,
                          seed=seed)
    te = fold[0][1]
    return {"metrics": classification_metrics(y_all[lab][te], pred[te], len(both.label_names)),
            "n_features": int(feats.shape[1])}


def job(args) -> int:
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    from bioxbridge_core.pipeline import PipelineConfig, prepare_data, run_pipeline

    manifest = manifest_for(args.direction, args.data)
    _, _, _, old, new = DIRECTIONS[args.direction]
    bridge = {"epochs": args.epochs} if args.epochs else {}
    cfg = PipelineConfig(old=old, new=new, manifest=str(manifest), seed=args.seed, baselines=["kd"], bridge=bridge,
                         calibration=args.calibration, old_finetune=args.old_finetune,
                         kd_epochs=args.epochs or None, assess_old=False)
    out_dir = RESULTS / "runs" / f"{args.direction}_seed{args.seed}"
    import shutil

    shutil.rmtree(out_dir, ignore_errors=True)  # never resume an older run's checkpoint
    t0 = time.perf_counter()
    report = run_pipeline(cfg, out_dir)
    data = prepare_data(cfg)  # windows from the pipeline's own cache: the same split
    cal = report["calibration"]  # "auto" resolved by the pipeline; the baselines follow it
    report["hand-crafted old"] = handcrafted_on_split(data, "old", cal, args.seed)
    report["hand-crafted new"] = handcrafted_on_split(data, "new", cal, args.seed)
    report["bench_seconds"] = round(time.perf_counter() - t0, 1)
    report["pipeline_config"] = cfg.to_dict()
    Path(args.result).write_text(json.dumps(report, default=str))
    return 0


def run_job(direction: str, seed: int, args) -> dict:
    out = RESULTS / f"real_{direction}_seed{seed}.json"
    cmd = [sys.executable, __file__, "--_job", "--_direction", direction, "--_result", str(out), "--seed", str(seed),
           "--data", args.data, "--calibration", args.calibration]
    if args.old_finetune:
        cmd.append("--old-finetune")
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {direction} seed {seed}: FAILED\n{proc.stderr[-3000:]}", flush=True)
        return {}
    print(f"  {direction} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    return json.loads(out.read_text())


# -- tables --------------------------------------------------------------------------------------------
def _ms(values: list[float], fmt: str = "{:.3f}") -> str:
    import numpy as np

    if not values:
        return ""
    v = np.asarray(values, dtype=float)
    return fmt.format(v.mean()) + (" ± " + fmt.format(v.std()) if len(v) > 1 else "")


def summarise(direction: str, reports: list[dict]) -> dict:
    """Per-method lists over seeds, and the goal verdicts on the means."""
    import numpy as np

    s: dict = {"direction": direction, "seeds": [r["seed"] for r in reports], "methods": {}}
    for m in METHODS:
        rows = [r[m] for r in reports if m in r]
        s["methods"][m] = {
            "balanced_accuracy": [x["metrics"]["balanced_accuracy"] for x in rows],
            "f1_macro": [x["metrics"]["f1_macro"] for x in rows],
            "trainable_params": [x["trainable_params"] for x in rows if "trainable_params" in x],
            "train_seconds": [x["train_seconds"] for x in rows if "train_seconds" in x],
            "peak_rss_mb": [x["peak_rss_mb"] for x in rows if "peak_rss_mb" in x],
            "own_mb": [x["peak_rss_mb"] - x["start_rss_mb"] for x in rows if "start_rss_mb" in x],
        }
    r0 = reports[0]
    k = len(r0["label_names"])
    chance = 1.0 / k
    mean = {m: float(np.mean(v["balanced_accuracy"])) if v["balanced_accuracy"] else float("nan")
            for m, v in s["methods"].items()}
    p = s["methods"]
    params = float(np.mean(p["bridge"]["trainable_params"])) / float(np.mean(p["kd"]["trainable_params"]))
    times = float(np.mean(p["bridge"]["train_seconds"])) / float(np.mean(p["kd"]["train_seconds"]))
    transferable = mean["oracle"] >= chance + 0.10
    s.update(chance=chance, mean_balanced_accuracy=mean, params_ratio=params, time_ratio=times,
             n_windows=r0["n_windows"], positions=[f"{r['positions']['new_position']} -> "
                                                   f"{r['positions']['old_position']}" for r in reports],
             old=r0["old"], new=r0["new"], labels=r0["label_names"],
             calibration=[r.get("calibration", "none") for r in reports],
             bridge_epochs=[r["bridge"].get("epochs_run") for r in reports],
             kd_epochs=[r["kd"].get("epochs_run") for r in reports])
    s["goals"] = {
        "oracle >= 0.60": mean["oracle"] >= 0.60,
        "oracle >= hand-crafted old - 0.05": mean["oracle"] >= mean["hand-crafted old"] - 0.05,
        "bridge >= KD - 0.02": (mean["bridge"] >= mean["kd"] - 0.02) if transferable else None,
        "bridge >= chance + 0.08": (mean["bridge"] >= chance + 0.08) if transferable else None,
        "bridge params <= 5 % of KD": params <= 0.05,
        "bridge time <= 0.25x KD": times <= 0.25,
    }
    return s


def markdown(s: dict) -> str:
    p = s["methods"]
    nw = s["n_windows"]
    out = [f"#### {s['direction']}: {s['old']} (old) -> {s['new']} (new), classes {', '.join(s['labels'])}",
           "",
           f"Seeds {', '.join(map(str, s['seeds']))}; windows train/pair/test {nw['train']}/{nw['pair']}/{nw['test']} "
           f"(seed {s['seeds'][0]}); positions {'; '.join(sorted(set(s['positions'])))}; calibration "
           f"{', '.join(s['calibration'])}; epochs run bridge {s['bridge_epochs']}, KD {s['kd_epochs']}; "
           f"chance = 1/k = {s['chance']:.3f}.", "",
           "| method | BAcc | F1-M | trainable params | train s | peak MB (process) | own MB |",
           "|---|---|---|---|---|---|---|"]
    for m in METHODS:
        v = p[m]
        if not v["balanced_accuracy"]:
            continue
        out.append(f"| {m} | {_ms(v['balanced_accuracy'])} | {_ms(v['f1_macro'])} | "
                   f"{_ms(v['trainable_params'], '{:,.0f}')} | {_ms(v['train_seconds'], '{:.1f}')} | "
                   f"{_ms(v['peak_rss_mb'], '{:.0f}')} | {_ms(v['own_mb'], '{:.0f}')} |")
    out += ["", f"Bridge/KD: params {s['params_ratio']:.3f}, training time {s['time_ratio']:.2f}.", "",
            "| goal | verdict |", "|---|---|"]
    for g, ok in s["goals"].items():
        out.append(f"| {g} | {'n/a (oracle < chance + 0.10)' if ok is None else ('met' if ok else '**missed**')} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--directions", default=",".join(DIRECTIONS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--quick", action="store_true", help="one seed, 2 epochs of bridge and KD (a smoke run)")
    ap.add_argument("--epochs", type=int, default=None, help="bridge and KD epochs (default: the engine's)")
    ap.add_argument("--calibration", choices=("auto", "none", "subject"), default="auto")
    ap.add_argument("--old-finetune", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true", help="only reprint the tables of saved results")
    ap.add_argument("--_job", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_direction", dest="direction", help=argparse.SUPPRESS)
    ap.add_argument("--_result", dest="result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._job:
        return job(args)
    if args.quick:
        args.seeds, args.epochs = args.seeds.split(",")[0], args.epochs or 2
    names = [d.strip() for d in args.directions.split(",") if d.strip()]
    for d in names:
        if d not in DIRECTIONS:
            ap.error(f"unknown direction {d!r}; known: {', '.join(DIRECTIONS)}")
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"# Real-data benchmark ({datetime.now(timezone.utc).isoformat(timespec='seconds')}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{os.environ.get('BENCH_THREADS', '1')} thread(s); calibration {args.calibration}"
          f"{', old encoder fine-tuned' if args.old_finetune else ''}"
          f"{f', {args.epochs} epochs' if args.epochs else ', engine default epochs'})", flush=True)
    t_all = time.perf_counter()
    for d in names:
        why = unavailable(d, args.data)
        if why:
            print(f"\n[{d}] skipped: {why}", flush=True)
            continue
        if args.markdown:
            reports = [json.loads(p.read_text()) for s in seeds
                       if (p := RESULTS / f"real_{d}_seed{s}.json").is_file()]
        else:
            print(f"\n[{d}]", flush=True)
            reports = [r for s in seeds if (r := run_job(d, s, args))]
        if not reports:
            print(f"[{d}] no results", flush=True)
            continue
        summary = summarise(d, reports)
        (RESULTS / f"real_{d}_summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print("\n" + markdown(summary), flush=True)
    print(f"\nTotal {time.perf_counter() - t_all:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
