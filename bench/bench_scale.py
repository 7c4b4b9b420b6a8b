"""Benchmark: memory as the cohort grows, and throughput with 1 vs 2 processes (a script, not a test).

1. **Peak memory at 1x / 4x / 16x the demo cohort** for the three steps that touch every
   window: ``windows`` (pair and window the manifest), ``align`` (old task head, pseudo labels,
   features at every position, probes, CKA) and bridge ``train`` (frozen features + bridge
   training). The k-times cohort is k copies of the demo generated with seeds 0..k-1 (10
   subjects and 30 recordings of 60 s each per copy; subjects renamed per copy) in one manifest.
   Every measurement runs in a fresh subprocess with its own empty cache (``align`` and
   ``train`` reuse the windows the ``windows`` step cached, so they measure themselves, not
   pairing). Reported per step: the kernel's peak resident set (``VmHWM``: all memory the
   process ever had resident, including pages of memory-mapped files it was reading), the
   resident set just before the step began (imports, encoders), and the peak of anonymous
   memory (``RssAnon``, sampled every 20 ms: memory that is not a file's page-cache copy).
2. **Feature extraction, 1 vs 2 shards**: ``features --shard 0/1`` in one process vs
   ``--shard 0/2`` and ``1/2`` in two concurrent processes, on the ``--throughput-size`` cohort;
   windows per second of wall time from launch to the last process done (imports included)
   and inside the processes.
3. **Bridge training, 1 vs 2 processes**: ``torchrun --nproc-per-node 1`` vs ``2`` running
   ``train --features`` (frozen features extracted beforehand, so only training is timed) with the
   same global batch; training pairs per second from ``train.json``'s ``train_seconds``.
   The 1- and 2-process runs alternate (``--repeats``) so background load hits both alike.

4. **float16 vs float32 targets** (``BridgeConfig.target_dtype``): the bridge trained twice on
   the 1x demo with the pipeline's positions, default settings and ``--precision-epochs``
   epochs, same seed; pair-val loss and agreement with the old model per epoch, best epoch, and
   test balanced accuracy of each (deterministic: not a timing).

Each process runs one torch thread (``OMP_NUM_THREADS=1``), so 2 processes use the 2 cores.
Writes ``bench/results/scale.json`` and prints the tables (``--markdown`` for RESULTS.md).

Run: ``python bench/bench_scale.py`` (final numbers, about 15-25 min on 2 cores) or
``python bench/bench_scale.py --quick`` (smoke test: cohorts 1x and 2x, 1 epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results"))
OLD, NEW = "builtin:ecg", "builtin:ppg"
STEPS = ("windows", "align", "train")


# -- the cohort ------------------------------------------------------------------------------------
def cohort_manifest(k: int, root: Path) -> Path:
    """A manifest of k demo copies (seeds 0..k-1), subjects renamed ``c<seed>-<subject>``, absolute paths."""
    import pandas as pd

    from bioxbridge_core.data.demo import demo_manifest
    from bioxbridge_core.data.manifest import write_manifest

    out = root / f"cohort{k}.csv"
    if out.is_file():
        return out
    frames = []
    for seed in range(k):
        csv = demo_manifest("ecg-ppg", seed=seed, root=root / "demo")
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        df["path"] = [str((csv.parent / p).resolve()) for p in df["path"]]
        df["subject"] = [f"c{seed}-{s}" for s in df["subject"]]
        frames.append(df)
    write_manifest(pd.concat(frames, ignore_index=True).to_dict("records"), out)
    return out


# -- memory of one process -------------------------------------------------------------------------
def _status_kb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


class AnonPeak:
    """Samples RssAnon every ``interval_s`` seconds in a thread; ``peak_mb`` after ``stop``."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s, self.peak_kb, self._stop = interval_s, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _status_kb("RssAnon"))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "AnonPeak":
        self.peak_kb = _status_kb("RssAnon")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _status_kb("RssAnon"))

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def child(step: str, manifest: str, epochs: int) -> dict:
    """One measured step in this (fresh) process; returns the numbers as a dict."""
    import torch

    torch.set_num_threads(1)
    from bioxbridge_core.bridge import BridgeConfig
    from bioxbridge_core.pipeline import PAIR_SPLITS, PipelineConfig, prepare_data, split_windows

    cfg = PipelineConfig(old=OLD, new=NEW, manifest=manifest, device="cpu")
    if step == "windows":
        from bioxbridge_core.data.manifest import read_manifest
        from bioxbridge_core.data.pairing import make_paired_windows
        from bioxbridge_core.models.registry import encoder_spec

        m = read_manifest(manifest, seed=0)
        first = m.table.iloc[0]
        old_spec = encoder_spec(OLD, ch_names=list(first["old_channels"]))
        new_spec = encoder_spec(NEW, ch_names=list(first["new_channels"]))
        start = _status_kb("VmRSS") / 1024
        t0 = time.perf_counter()
        with AnonPeak() as anon:
            pw = make_paired_windows(m, old_spec=old_spec, new_spec=new_spec)
            n = len(pw)
        seconds = time.perf_counter() - t0
    else:
        data = prepare_data(cfg)  # windows cached by the windows step: read, not paired again
        parts = split_windows(data.windows)
        pair = data.windows.split(*PAIR_SPLITS)
        n = len(pair)
        start = _status_kb("VmRSS") / 1024
        t0 = time.perf_counter()
        with AnonPeak() as anon:
            if step == "align":
                from bioxbridge_core.alignment import align
                from bioxbridge_core.models.heads import pseudo_labels

                from bioxbridge_core.pipeline import fit_old_head

                head = fit_old_head(data.old_encoder, parts["train"], seed=0)
                y = pseudo_labels(data.old_encoder, head, pair.x_old)
                align(data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, y, groups=pair.subjects,
                      n_perm=2)
            else:
                from bioxbridge_core.training import BridgeTrainer

                BridgeTrainer(BridgeConfig(epochs=epochs), device="cpu").fit(
                    data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, new_position="layer4.0",
                    old_position="blocks.4", groups=pair.subjects)
        seconds = time.perf_counter() - t0
    return {"step": step, "n_windows": int(n), "start_rss_mb": round(start, 1),
            "peak_rss_mb": round(_status_kb("VmHWM") / 1024, 1), "peak_anon_mb": round(anon.peak_mb, 1),
            "seconds": round(seconds, 2)}


def _env(cache: Path) -> dict:
    env = dict(os.environ, BIOXBRIDGE_CACHE=str(cache), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(k, None)
    return env


def measure_memory(sizes: list[int], work: Path, epochs: int) -> list[dict]:
    rows = []
    for k in sizes:
        manifest = cohort_manifest(k, work)
        cache = work / f"cache{k}"
        shutil.rmtree(cache, ignore_errors=True)
        for step in STEPS:
            shutil.rmtree(cache / "features", ignore_errors=True)  # features are measured, not reused
            out = work / f"mem-{k}-{step}.json"
            proc = subprocess.run([sys.executable, __file__, "--child", step, "--manifest", str(manifest),
                                   "--epochs", str(epochs), "--child-out", str(out)], env=_env(cache),
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{step} at {k}x failed:\n{proc.stderr[-3000:]}")
            row = dict(json.loads(out.read_text()), cohort=k)
            rows.append(row)
            print(f"  {k:>3}x {step:8s} {row['n_windows']:>6} windows  peak RSS {row['peak_rss_mb']:7.1f} MB  "
                  f"start {row['start_rss_mb']:7.1f} MB  peak anon {row['peak_anon_mb']:7.1f} MB  "
                  f"{row['seconds']:7.1f} s", flush=True)
    return rows


# -- throughput ----------------------------------------------------------------------------------------
def _cli(args: list[str], cache: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bioxbridge_core", *args], env=_env(cache), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(procs: list[subprocess.Popen], what: str) -> list[str]:
    outs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{what} failed:\n{err[-3000:]}")
        outs.append(out)
    return outs


def measure_features(k: int, work: Path) -> list[dict]:
    """1 shard vs 2 concurrent shards on the k-times cohort (fresh caches: pairing included)."""
    manifest = cohort_manifest(k, work)
    common = ["features", "--manifest", str(manifest), "--old", OLD, "--new", NEW, "--device", "cpu", "--json"]
    rows = []
    for n_shards in (1, 2):
        cache, out = work / f"feat-cache-{n_shards}", work / f"feats-{n_shards}"
        for p in (cache, out):
            shutil.rmtree(p, ignore_errors=True)
        t0 = time.perf_counter()
        procs = [_cli([*common, "--shard", f"{i}/{n_shards}", "--out", str(out)], cache) for i in range(n_shards)]
        results = [json.loads(o) for o in _wait(procs, f"features with {n_shards} shard(s)")]
        wall = time.perf_counter() - t0
        n = sum(r["n_windows"] for r in results)
        inner = max(r["seconds"] for r in results)
        rows.append({"shards": n_shards, "n_windows": n, "wall_s": round(wall, 2), "inner_s": round(inner, 2),
                     "windows_per_s": round(n / wall, 2), "windows_per_s_inner": round(n / inner, 2)})
        print(f"  features {n_shards} shard(s): {n} windows, {wall:.1f} s wall ({n / wall:.1f}/s), "
              f"{inner:.1f} s in the slowest process ({n / inner:.1f}/s)", flush=True)
    return rows


def measure_training(k: int, work: Path, epochs: int, repeats: int) -> list[dict]:
    """torchrun with 1 vs 2 processes on features extracted once (same global batch, alternating)."""
    manifest = cohort_manifest(k, work)
    cache, feats = work / "train-cache", work / "train-feats"
    if not (feats / "shard-00000-of-00001" / "DONE").is_file():
        _wait([_cli(["features", "--manifest", str(manifest), "--old", OLD, "--new", NEW, "--device", "cpu",
                     "--positions", "layer4.0:blocks.4", "--out", str(feats)], cache)], "features for training")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    rows = []
    for rep in range(repeats):
        for nproc in (1, 2):
            out = work / f"train-{nproc}-{rep}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [*torchrun, "--nproc-per-node", str(nproc), "-m", "bioxbridge_core", "train", "--manifest",
                   str(manifest), "--old", OLD, "--new", NEW, "--new-position", "layer4.0", "--old-position",
                   "blocks.4", "--features", str(feats), "--epochs", str(epochs), "--device", "cpu",
                   "--out", str(out), "--no-progress", "--json"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=_env(cache), cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"training with {nproc} process(es) failed:\n{proc.stderr[-3000:]}")
            res = json.loads((out / "train.json").read_text())
            hist = json.loads((out / "history.json").read_text())
            hist = hist["epochs"] if isinstance(hist, dict) else hist
            epoch_s = sum(r["seconds"] for r in hist)
            n_train = res["n_windows"]["pair"]
            rows.append({"processes": nproc, "repeat": rep, "n_pairs": n_train, "epochs": epochs,
                         "wall_s": round(wall, 2), "train_s": res["bridge"]["train_seconds"],
                         "epoch_s": round(epoch_s, 2), "pairs_per_s_epochs": round(n_train * epochs / epoch_s, 1)})
            print(f"  train {nproc} process(es), repeat {rep}: {epoch_s:.1f} s in epochs "
                  f"({n_train * epochs / epoch_s:.0f} pairs/s), {res['bridge']['train_seconds']:.1f} s in fit, "
                  f"{wall:.1f} s wall", flush=True)
    return rows


def measure_precision(epochs: int) -> dict:
    """Bridge with float32 vs float16 cached targets on the 1x demo (same seed, positions, settings)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from bioxbridge_core.bridge import BridgeConfig
    from bioxbridge_core.bridge.composed import BridgedModel
    from bioxbridge_core.pipeline import (PipelineConfig, evaluate_predictions, fit_old_head, prepare_data,
                                          split_windows)
    from bioxbridge_core.training import BridgeTrainer

    data = prepare_data(PipelineConfig(old=OLD, new=NEW, demo="ecg-ppg", device="cpu"))
    parts = split_windows(data.windows)
    pair, test = parts["pair"], parts["test"]
    head = fit_old_head(data.old_encoder, parts["train"], seed=0)
    out = {"epochs": epochs, "n_pairs": len(pair), "n_test": len(test)}
    # the third run changes only the seed: how much two equally valid runs differ anyway
    for name, dt, seed in (("float32", "float32", 0), ("float16", "float16", 0), ("float32, seed 1", "float32", 1)):
        tr = BridgeTrainer(BridgeConfig(epochs=epochs, target_dtype=dt, seed=seed), device="cpu").fit(
            data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, new_position="layer4.0",
            old_position="blocks.4", groups=pair.subjects, head=head)
        bridged = BridgedModel(data.new_encoder, data.old_encoder, tr.bridge_, head, new_position="layer4.0",
                               old_position="blocks.4")
        m = evaluate_predictions(test.labels(), bridged.predict_proba(test.x_new), len(test.label_names))
        out[name] = {"val_loss": [r["val_loss"] for r in tr.history_],
                   "val_agreement": [r["val_agreement"] for r in tr.history_], "best_epoch": tr.best_epoch_,
                   "best_val_loss": tr.best_val_loss_, "test_balanced_accuracy": m["balanced_accuracy"]}
    a, b, c = out["float32"], out["float16"], out["float32, seed 1"]
    out["max_abs_val_loss_diff"] = float(np.max(np.abs(np.subtract(a["val_loss"], b["val_loss"]))))
    out["max_abs_agreement_diff"] = float(np.max(np.abs(np.subtract(a["val_agreement"], b["val_agreement"]))))
    out["seed_max_abs_val_loss_diff"] = float(np.max(np.abs(np.subtract(a["val_loss"], c["val_loss"]))))
    out["seed_max_abs_agreement_diff"] = float(np.max(np.abs(np.subtract(a["val_agreement"], c["val_agreement"]))))
    print(f"  float32: best epoch {a['best_epoch']}, best val loss {a['best_val_loss']:.5f}, test BAcc "
          f"{a['test_balanced_accuracy']:.3f}; float16: best epoch {b['best_epoch']}, best val loss "
          f"{b['best_val_loss']:.5f}, test BAcc {b['test_balanced_accuracy']:.3f}; largest per-epoch difference: "
          f"val loss {out['max_abs_val_loss_diff']:.2e}, agreement {out['max_abs_agreement_diff']:.3f}", flush=True)
    return out


# -- report ----------------------------------------------------------------------------------------------
def markdown(res: dict) -> str:
    lines = [f"Machine: {res['machine']}; {res['when']}; epochs {res['epochs']}.", "",
             "| step | cohort | windows | peak RSS MB | RSS at start MB | peak anon MB | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in res["memory"]:
        lines.append(f"| {r['step']} | {r['cohort']}x | {r['n_windows']} | {r['peak_rss_mb']} | {r['start_rss_mb']} "
                     f"| {r['peak_anon_mb']} | {r['seconds']} |")
    lines += ["", "| step | peak RSS largest / smallest cohort | goal <= 1.5 |", "|---|---|---|"]
    for step, ratio in res["ratios"].items():
        lines.append(f"| {step} | {ratio:.2f} | {'met' if ratio <= 1.5 else '**missed**'} |")
    if res.get("features"):
        lines += ["", "| feature extraction | windows | wall s | windows/s (wall) | windows/s (in process) |",
                  "|---|---|---|---|---|"]
        for r in res["features"]:
            lines.append(f"| {r['shards']} shard(s) | {r['n_windows']} | {r['wall_s']} | {r['windows_per_s']} | "
                         f"{r['windows_per_s_inner']} |")
    if res.get("training"):
        lines += ["", "| bridge training | repeat | pairs | epoch s (sum) | pairs/s | fit s | wall s |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["training"]:
            lines.append(f"| {r['processes']} process(es) | {r['repeat']} | {r['n_pairs']} | {r['epoch_s']} | "
                         f"{r['pairs_per_s_epochs']} | {r['train_s']} | {r['wall_s']} |")
    p = res.get("precision")
    if p:
        lines += ["", f"| targets ({p['epochs']} epochs, {p['n_pairs']} pairs) | best epoch | best pair-val loss | "
                      "final agreement | test BAcc |", "|---|---|---|---|---|"]
        for dt in ("float32", "float16", "float32, seed 1"):
            r = p[dt]
            lines.append(f"| {dt} | {r['best_epoch']} | {r['best_val_loss']:.5f} | {r['val_agreement'][-1]:.3f} | "
                         f"{r['test_balanced_accuracy']:.3f} |")
        lines.append(f"\nLargest per-epoch difference from float32 (seed 0): float16 pair-val loss "
                     f"{p['max_abs_val_loss_diff']:.2e}, agreement {p['max_abs_agreement_diff']:.3f}; float32 with "
                     f"seed 1 pair-val loss {p['seed_max_abs_val_loss_diff']:.2e}, agreement "
                     f"{p['seed_max_abs_agreement_diff']:.3f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,4,16", help="cohort multipliers of the demo")
    ap.add_argument("--epochs", type=int, default=3, help="bridge epochs (memory and throughput runs)")
    ap.add_argument("--throughput-size", type=int, default=4, help="cohort multiplier for the 1-vs-2 runs")
    ap.add_argument("--repeats", type=int, default=2, help="alternating 1-/2-process training runs")
    ap.add_argument("--precision-epochs", type=int, default=50, help="epochs of the float16-vs-float32 runs")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: memory,features,training,precision")
    ap.add_argument("--quick", action="store_true", help="smoke test: cohorts 1x,2x, 1 epoch, 1 repeat")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--markdown", action="store_true", help="print the RESULTS.md tables of the last run")
    ap.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--manifest", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        Path(args.child_out).write_text(json.dumps(child(args.child, args.manifest, args.epochs)))
        return 0
    out_json = RESULTS / "scale.json"
    if args.markdown:
        print(markdown(json.loads(out_json.read_text())))
        return 0
    sizes = [1, 2] if args.quick else [int(s) for s in args.sizes.split(",")]
    epochs, repeats = (1, 1) if args.quick else (args.epochs, args.repeats)
    tsize = 2 if args.quick else args.throughput_size
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    import torch

    res = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, one thread per "
                      "process", "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "epochs": epochs, "sizes": sizes, "memory": [], "ratios": {}, "features": [], "training": [],
           "precision": None}
    print(f"scratch folder {work}")
    if "memory" not in skip:
        print("peak memory per step (fresh process each):")
        res["memory"] = measure_memory(sizes, work, epochs)
        for step in STEPS:
            peaks = {r["cohort"]: r["peak_rss_mb"] for r in res["memory"] if r["step"] == step}
            res["ratios"][step] = peaks[max(peaks)] / peaks[min(peaks)]
    if "features" not in skip:
        print(f"feature extraction, {tsize}x cohort:")
        res["features"] = measure_features(tsize, work)
    if "training" not in skip:
        print(f"bridge training, {tsize}x cohort:")
        res["training"] = measure_training(tsize, work, epochs, repeats)
    if "precision" not in skip:
        print("float32 vs float16 targets, 1x demo:")
        os.environ["BIOXBRIDGE_CACHE"] = str(work / "precision-cache")
        res["precision"] = measure_precision(2 if args.quick else args.precision_epochs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = out_json if not args.quick else RESULTS / "scale_quick.json"
    out.write_text(json.dumps(res, indent=2))
    print()
    print(markdown(res))
    print(f"\nwrote {out}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
