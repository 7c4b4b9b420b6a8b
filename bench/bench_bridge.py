"""Benchmark: the bridge vs knowledge distillation on the same splits (a script, not a test).

For each dataset (``demo`` = simulated ECG -> PPG, ``eegmat`` = EEG -> ECG,
``cinc`` = CinC 2015 VT ECG -> PPG) it measures, side by side in one run:

1. **Accuracy, parameters, wall time** -- ``run_pipeline(config, baselines=["kd"])`` in a fresh
   subprocess, so the numbers are exactly what the product reports (oracle = the old model on
   the old modality, chance = stratified random labels, bridge, KD; same subject splits).
2. **Peak memory per method** -- ``resources.measure`` samples the *process-wide* RSS, which
   includes the encoders and windows loaded before a phase and, for KD run after the bridge,
   whatever the bridge left behind. So each method is also trained alone in its own fresh
   subprocess (same data, head and positions, ``--mem-epochs`` epochs: memory does not grow
   with epochs), and we report the RSS at the start of training, the peak inside it and
   their difference (the method's own memory).
3. **Bridge step vs the floor** -- the floor is forward + backward of ``old.forward_from(h, l)``
   on cached layer-l inputs ``h`` (requires_grad, same batch size, same loss), no bridge, no
   optimizer. Compared per step (bridge step = bridge + old layers from l + loss + backward +
   Adam step) and per epoch (the trainer's own epoch time, which also includes pair-val
   evaluation, vs steps_per_epoch x floor step).
4. **Cached vs recomputed features** -- the published code recomputes both frozen encoders every
   step (new encoder up to m and the whole old encoder for the target). Implemented here only,
   timed for ``--recompute-steps`` steps, vs the cached step.

Writes ``bench/results/bridge_<dataset>.json`` and prints tables. Timings on a shared
machine are noisy; run with ``OMP_NUM_THREADS=1``.

Run: ``python bench/bench_bridge.py [--quick] [--datasets demo,eegmat,cinc] [--data /work/shared/data]``
"""

from __future__ import annotations

import argparse
import gc
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
DATASETS = {
    "demo": {"old": "builtin:ecg", "new": "builtin:ppg", "what": "simulated ECG (old) -> PPG (new), 3 classes"},
    "eegmat": {"old": "builtin:eeg", "new": "builtin:ecg", "what": "eegmat EEG (old) -> ECG (new), rest/task"},
    "cinc": {"old": "builtin:ecg", "new": "builtin:ppg", "what": "CinC 2015 VT ECG (old) -> PPG (new), alarm"},
}


# -- configuration ---------------------------------------------------------------------------------
def pipeline_config(dataset: str, data_root: str, *, epochs: int | None, seed: int):
    """The PipelineConfig of one dataset (recipes write their manifests to bench/results/manifests)."""
    from bioxbridge_core.pipeline import PipelineConfig

    d = DATASETS[dataset]
    bridge = {} if epochs is None else {"epochs": epochs}
    common = dict(old=d["old"], new=d["new"], seed=seed, bridge=bridge, baselines=["kd"])
    if dataset == "demo":
        return PipelineConfig(demo="ecg-ppg", **common)
    from bioxbridge_core.data.recipes import cinc2015_manifest, eegmat_manifest

    out = RESULTS / "manifests"
    if dataset == "eegmat":
        path = eegmat_manifest(Path(data_root) / "eegmat", out_dir=out, old="EEG")
    else:
        path = cinc2015_manifest(Path(data_root) / "cinc2015_vt", out_dir=out, old="ECG")
    return PipelineConfig(manifest=str(path), **common)


# -- worker jobs (each runs in its own subprocess) -------------------------------------------------
def job_pipeline(cfg, out_dir: Path, args) -> dict:
    """The product's own run, then the step timings on the same data, encoders and positions."""
    from bioxbridge_core.pipeline import run_pipeline

    report = run_pipeline(cfg, out_dir)
    timing = step_timings(cfg, out_dir, report, n_steps=args.timing_steps, n_recompute=args.recompute_steps)
    return {"report": report, "timing": timing}


def _load_for(cfg, out_dir: Path):
    """Data, encoders and head exactly as the pipeline had them (the head saved by the pipeline run)."""
    from bioxbridge_core.models.heads import TaskHead
    from bioxbridge_core.pipeline import prepare_data, split_windows

    data = prepare_data(cfg)
    parts = split_windows(data.windows)
    head = TaskHead.load(out_dir / "old_head.safetensors")
    return data, parts, head


def step_timings(cfg, out_dir: Path, report: dict, *, n_steps: int, n_recompute: int) -> dict:
    import numpy as np
    import torch

    from bioxbridge_core.bridge.composed import new_features
    from bioxbridge_core.bridge.config import BridgeConfig
    from bioxbridge_core.bridge.network import Bridge
    from bioxbridge_core.training.cache import compute_cache
    from bioxbridge_core.training.trainer import per_sample_loss

    data, parts, _ = _load_for(cfg, out_dir)
    old, new = data.old_encoder, data.new_encoder
    pair = parts["pair"]
    bcfg = BridgeConfig.from_dict(cfg.bridge)
    pos = report["positions"]
    new_pos, old_pos = new.position(pos["new_position"]), old.position(pos["old_position"])
    l_idx, bs = old_pos.index, bcfg.batch_size
    n = len(pair)
    rng = np.random.default_rng(0)
    batches = [rng.choice(n, size=min(bs, n), replace=False) for _ in range(n_steps + 2)]
    x_old = torch.from_numpy(np.ascontiguousarray(pair.x_old, dtype=np.float32))
    x_new = torch.from_numpy(np.ascontiguousarray(pair.x_new, dtype=np.float32))
    old.freeze(), new.freeze()

    t0 = time.perf_counter()
    cache = compute_cache(old, new, x_old, x_new, new_position=new_pos.index, old_position=l_idx,
                          batch_size=bcfg.feature_batch_size)
    cache_s = time.perf_counter() - t0
    # real layer-l inputs for the floor (the tensor the bridge replaces)
    with torch.no_grad():
        h_in = torch.cat([old.forward_until(x_old[b], l_idx - 1) for b in
                          (torch.as_tensor(batches[i]) for i in range(len(batches)))])

    def timed(fns, k: int) -> list[float]:
        """Median seconds per call of each fn, calls interleaved so that load from other jobs hits all alike."""
        times: list[list[float]] = [[] for _ in fns]
        for f in fns:
            f(0)  # warm-up
        for i in range(1, k + 1):
            for j, f in enumerate(fns):
                t = time.perf_counter()
                f(i)
                times[j].append(time.perf_counter() - t)
        return [float(np.median(t)) for t in times]

    def floor_step(i: int) -> None:
        h = h_in[i * bs:(i + 1) * bs].clone().requires_grad_(True)
        loss = per_sample_loss(old.forward_from(h, l_idx), cache.target[batches[i]], bcfg.loss).mean()
        loss.backward()

    bridge = Bridge.from_positions(new_pos, old_pos, bcfg)
    if cache.proto_tokens is None and bcfg.prototype_init == "tokens":
        bridge.init_prototypes(to_tokens_sample(h_in, old_pos), seed=0)
    opt = torch.optim.Adam(bridge.parameters(), lr=bcfg.lr)

    def bridge_step(i: int) -> None:
        b = batches[i]
        loss = per_sample_loss(old.forward_from(bridge(cache.z[b]), l_idx), cache.target[b], bcfg.loss).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def recompute_step(i: int) -> None:  # the published way: both frozen encoders every step
        b = torch.as_tensor(batches[i])
        with torch.no_grad():
            z = new_features(new, x_new[b], new_pos.index)
            target = old(x_old[b])
        loss = per_sample_loss(old.forward_from(bridge(z), l_idx), target, bcfg.loss).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    floor_s, bridge_s = timed([floor_step, bridge_step], n_steps)
    bridge_s2, recompute_s = timed([bridge_step, recompute_step], min(n_recompute, n_steps))
    from bioxbridge_core.training.split import pair_val_split

    n_train = len(pair_val_split(n, pair.subjects, bcfg.val_fraction, seed=bcfg.seed)[0])
    return {"batch_size": bs, "n_steps": n_steps, "n_recompute_steps": min(n_recompute, n_steps),
            "floor_step_s": floor_s, "bridge_step_s": bridge_s, "recompute_step_s": recompute_s,
            "bridge_step_s_vs_recompute": bridge_s2, "timing": "median per step, calls interleaved",
            "bridge_over_floor_step": bridge_s / floor_s, "recompute_over_cached_step": recompute_s / bridge_s2,
            "cache_seconds": cache_s, "n_pairs": n, "n_train_pairs": n_train}


def to_tokens_sample(h, old_pos):
    from bioxbridge_core.models.base import to_tokens

    return to_tokens(h, old_pos.in_layout).reshape(-1, old_pos.in_width)


def job_memory(cfg, out_dir: Path, args, method: str) -> dict:
    """Train one method alone in this fresh process; RSS at its start, its peak and their difference."""
    from bioxbridge_core.bridge.config import BridgeConfig
    from bioxbridge_core.pipeline import run_kd
    from bioxbridge_core.resources import measure
    from bioxbridge_core.training.trainer import BridgeTrainer

    data, parts, head = _load_for(cfg, out_dir)
    pos = json.loads((out_dir / "report.json").read_text())["positions"]
    pair, test = parts["pair"], parts["test"]
    epochs = args.mem_epochs
    gc.collect()
    if method == "bridge":
        bcfg = BridgeConfig.from_dict({**cfg.bridge, "epochs": epochs})
        with measure() as usage:
            BridgeTrainer(bcfg, device=cfg.device).fit(
                data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, new_position=pos["new_position"],
                old_position=pos["old_position"], groups=pair.subjects)
    else:
        with measure() as usage:
            run_kd(data.new_encoder, data.old_encoder, head, pair, test, epochs=epochs, lr=cfg.kd_lr,
                   batch_size=int(cfg.bridge["batch_size"]), seed=cfg.seed,
                   val_fraction=float(cfg.bridge["val_fraction"]), device=cfg.device)
    return {"method": method, "epochs": epochs, "seconds": usage.seconds, "start_rss_mb": usage.start_rss_mb,
            "peak_rss_mb": usage.peak_rss_mb, "own_mb": usage.peak_rss_mb - usage.start_rss_mb}


def worker(args) -> int:
    warnings.simplefilter("ignore")
    cfg = pipeline_config(args.dataset, args.data, epochs=args.epochs, seed=args.seed)
    out_dir = RESULTS / "runs" / args.dataset
    if args.job == "pipeline":
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)  # never resume an older run's checkpoint
        res = job_pipeline(cfg, out_dir, args)
    else:
        res = job_memory(cfg, out_dir, args, args.job.split("-", 1)[1])
    Path(args.result).write_text(json.dumps(res, default=str))
    return 0


def run_job(job: str, dataset: str, args) -> dict:
    out = RESULTS / "runs" / dataset / f"_{job}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--_job", job, "--_dataset", dataset, "--_result", str(out),
           "--data", args.data, "--seed", str(args.seed), "--mem-epochs", str(args.mem_epochs),
           "--timing-steps", str(args.timing_steps), "--recompute-steps", str(args.recompute_steps)]
    if args.epochs is not None:
        cmd += ["--epochs", str(args.epochs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{dataset}/{job} failed:\n{proc.stderr[-4000:]}")
    print(f"  {dataset}/{job}: {time.perf_counter() - t0:.0f} s", flush=True)
    return json.loads(out.read_text())


# -- tables ----------------------------------------------------------------------------------------
def summary(dataset: str, res: dict) -> dict:
    rep, tim, mem = res["report"], res["timing"], res["memory"]
    b, k = rep["bridge"], rep["kd"]
    hist = res.get("history", [])
    epoch_s = [r["seconds"] for r in hist]
    steps = -(-int(res["n_train_pairs"]) // tim["batch_size"]) if res.get("n_train_pairs") else None
    floor_epoch = steps * tim["floor_step_s"] if steps else None
    med_epoch = sorted(epoch_s)[len(epoch_s) // 2] if epoch_s else None
    ba = {m: rep[m]["metrics"]["balanced_accuracy"] for m in ("oracle", "bridge", "kd", "chance")}
    s = {
        "balanced_accuracy": ba,
        "f1_macro": {m: rep[m]["metrics"]["f1_macro"] for m in ("oracle", "bridge", "kd", "chance")},
        "params": {"bridge": b["trainable_params"], "kd": k["trainable_params"],
                   "ratio": b["trainable_params"] / k["trainable_params"]},
        "train_seconds": {"bridge": b["train_seconds"], "kd": k["train_seconds"],
                          "ratio": b["train_seconds"] / k["train_seconds"]},
        "peak_rss_mb_in_pipeline": {"bridge": b["peak_rss_mb"], "kd": k["peak_rss_mb"]},
        "own_memory_mb_isolated": {"bridge": mem["bridge"]["own_mb"], "kd": mem["kd"]["own_mb"],
                                   "ratio": mem["bridge"]["own_mb"] / max(mem["kd"]["own_mb"], 1e-9)},
        "peak_rss_mb_isolated": {"bridge": mem["bridge"]["peak_rss_mb"], "kd": mem["kd"]["peak_rss_mb"],
                                 "ratio": mem["bridge"]["peak_rss_mb"] / mem["kd"]["peak_rss_mb"]},
        "step_s": {"floor": tim["floor_step_s"], "bridge": tim["bridge_step_s"],
                   "ratio": tim["bridge_over_floor_step"]},
        "epoch_s": {"bridge_median": med_epoch, "floor": floor_epoch,
                    "ratio": (med_epoch / floor_epoch) if (med_epoch and floor_epoch) else None},
        "recompute_over_cached_step": tim["recompute_over_cached_step"],
    }
    # the trainer's epoch also evaluates pair-val (loss, then agreement: two passes) and writes a checkpoint;
    # steps x bridge step is the training part alone
    s["epoch_s"]["bridge_train_only"] = steps * tim["bridge_step_s"] if steps else None
    s["epoch_s"]["train_only_ratio"] = (s["epoch_s"]["bridge_train_only"] / floor_epoch) if floor_epoch else None
    n_classes = len(rep["label_names"])
    chance_level = max(1.0 / n_classes, ba["chance"])
    n_predicted = sum(1 for col in zip(*rep["bridge"]["metrics"]["confusion"]) if sum(col) > 0)
    s["chance_level"], s["bridge_classes_predicted"] = chance_level, n_predicted
    s["goals"] = {
        "params <= 5% of KD": s["params"]["ratio"] <= 0.05,
        "BAcc >= KD - 2 points": ba["bridge"] >= ba["kd"] - 0.02,
        "BAcc clearly above chance (+5 points over max(1/k, stratified draw))": ba["bridge"] >= chance_level + 0.05,
        "bridge predicts more than one class": n_predicted > 1,
        "train time <= 0.5x KD": s["train_seconds"]["ratio"] <= 0.5,
        "own memory <= 0.5x KD (isolated)": s["own_memory_mb_isolated"]["ratio"] <= 0.5,
        "peak RSS <= 0.5x KD (isolated)": s["peak_rss_mb_isolated"]["ratio"] <= 0.5,
        "epoch <= 1.5x floor (trainer epoch incl. pair-val + checkpoint)":
            (s["epoch_s"]["ratio"] or float("inf")) <= 1.5,
        "epoch <= 1.5x floor (training steps only)": (s["epoch_s"]["train_only_ratio"] or float("inf")) <= 1.5,
        "step <= 1.5x floor": s["step_s"]["ratio"] <= 1.5,
    }
    return s


def print_tables(dataset: str, res: dict) -> None:
    rep, s = res["report"], res["summary"]
    print(f"\n== {dataset}: {DATASETS[dataset]['what']}; windows {rep['n_windows']}; "
          f"positions {rep['positions']['new_position']} -> {rep['positions']['old_position']}; "
          f"epochs bridge {rep['bridge']['epochs_run']} (best {rep['bridge']['best_epoch']}), kd {rep['kd']['epochs']}")
    print(f"{'method':8s} {'BAcc':>6s} {'F1-M':>6s} {'params':>10s} {'train s':>8s} {'peak MB':>8s} {'own MB*':>8s}")
    for m in ("oracle", "bridge", "kd", "chance"):
        r = rep[m]
        own = res["memory"][m]["own_mb"] if m in res["memory"] else None
        print(f"{m:8s} {r['metrics']['balanced_accuracy']:6.3f} {r['metrics']['f1_macro']:6.3f} "
              f"{r.get('trainable_params', ''):>10} {r.get('train_seconds', ''):>8} {r.get('peak_rss_mb', ''):>8} "
              f"{'' if own is None else f'{own:8.1f}':>8}")
    print("* own MB: peak minus start RSS of the method trained alone in a fresh process")
    st, ep = s["step_s"], s["epoch_s"]
    print(f"step: floor {st['floor'] * 1e3:.1f} ms, bridge {st['bridge'] * 1e3:.1f} ms (x{st['ratio']:.2f}); "
          f"epoch: bridge {ep['bridge_median'] or float('nan'):.2f} s vs floor {ep['floor'] or float('nan'):.2f} s "
          f"(x{ep['ratio'] or float('nan'):.2f}); "
          f"recomputing encoders every step: x{s['recompute_over_cached_step']:.1f} "
          f"per step")
    for g, ok in s["goals"].items():
        print(f"  [{'met ' if ok else 'MISS'}] {g}")


# -- markdown (for bench/RESULTS.md) ----------------------------------------------------------------
def markdown(names: list[str]) -> str:
    """Markdown tables of the saved ``bridge_<dataset>.json`` results."""
    rows = []
    for d in names:
        p = RESULTS / f"bridge_{d}.json"
        if p.is_file():
            r = json.loads(p.read_text())
            r["summary"] = summary(d, r)  # recomputed: rules may have been refined after the run
            p.write_text(json.dumps(r, indent=1, default=str))
            rows.append((d, r))
    if not rows:
        return "(no results yet)"
    env = rows[0][1]["env"]
    out = [f"Machine: {env['machine']}, {env['cpus']} CPUs shared with other jobs, torch {env['torch']} "
           f"({env['torch_threads']} thread(s)), {env['date']}; epochs (bridge = KD): "
           f"{env['epochs'] or 'BridgeConfig default'}; memory runs: {env['mem_epochs']} epoch(s).", "",
           "| dataset | windows train/pair/test | positions (new m -> old l) | method | BAcc | F1-M | "
           "trainable params | train s | peak RSS MB (pipeline) | own MB (isolated) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for d, r in rows:
        rep, mem = r["report"], r["memory"]
        nw = rep["n_windows"]
        first = True
        for m in ("oracle", "bridge", "kd", "chance"):
            x = rep[m]
            own = f"{mem[m]['own_mb']:.0f}" if m in mem else ""
            lead = (f"| {d} | {nw['train']}/{nw['pair']}/{nw['test']} | {rep['positions']['new_position']} -> "
                    f"{rep['positions']['old_position']} |") if first else "| | | |"
            first = False
            out.append(f"{lead} {m} | {x['metrics']['balanced_accuracy']:.3f} | {x['metrics']['f1_macro']:.3f} | "
                       f"{x.get('trainable_params', '')} | {x.get('train_seconds', '')} | "
                       f"{x.get('peak_rss_mb', '')} | {own} |")
    out += ["", "| dataset | params bridge/KD | train time bridge/KD | own memory bridge/KD | peak RSS bridge/KD "
            "(isolated) | step: floor ms / bridge ms (x) "
            "| epoch: floor s / trainer epoch s (x) / training steps only s (x) "
            "| recompute/cached per step |",
            "|---|---|---|---|---|---|---|---|"]
    for d, r in rows:
        s = r["summary"]
        st, ep = s["step_s"], s["epoch_s"]
        out.append(f"| {d} | {s['params']['ratio']:.3f} | {s['train_seconds']['ratio']:.2f} | "
                   f"{s['own_memory_mb_isolated']['ratio']:.2f} | {s['peak_rss_mb_isolated']['ratio']:.2f} | "
                   f"{st['floor'] * 1e3:.1f} / {st['bridge'] * 1e3:.1f} (x{st['ratio']:.2f}) | "
                   f"{ep['floor']:.2f} / {ep['bridge_median']:.2f} (x{ep['ratio']:.2f}) / "
                   f"{ep['bridge_train_only']:.2f} (x{ep['train_only_ratio']:.2f}) | "
                   f"x{s['recompute_over_cached_step']:.1f} |")
    goals = list(rows[0][1]["summary"]["goals"])
    out += ["", "| goal | " + " | ".join(d for d, _ in rows) + " |", "|---|" + "---|" * len(rows)]
    for g in goals:
        out.append(f"| {g} | " + " | ".join("met" if r["summary"]["goals"].get(g) else "**missed**"
                                           for _, r in rows) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="demo,eegmat,cinc")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--quick", action="store_true", help="3 epochs, few timing steps (a smoke run)")
    ap.add_argument("--epochs", type=int, default=None, help="bridge and KD epochs (default: BridgeConfig's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mem-epochs", type=int, default=2)
    ap.add_argument("--timing-steps", type=int, default=20)
    ap.add_argument("--recompute-steps", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="only print markdown tables of saved results")
    ap.add_argument("--_job", dest="job")
    ap.add_argument("--_dataset", dest="dataset")
    ap.add_argument("--_result", dest="result")
    args = ap.parse_args(argv)
    if args.job:
        return worker(args)
    if args.quick:
        args.epochs = args.epochs or 3
        args.mem_epochs, args.timing_steps, args.recompute_steps = 1, 5, 2
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for d in names:
        if d not in DATASETS:
            ap.error(f"unknown dataset {d!r}; known: {', '.join(DATASETS)}")
    if args.markdown:
        print(markdown(names))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    import torch

    env = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "quick": args.quick, "epochs": args.epochs,
           "mem_epochs": args.mem_epochs}
    for d in names:
        t0 = time.perf_counter()
        print(f"[{d}] {DATASETS[d]['what']}", flush=True)
        res = run_job("pipeline", d, args)
        res["memory"] = {m: run_job(f"mem-{m}", d, args) for m in ("bridge", "kd")}
        out_dir = RESULTS / "runs" / d
        hist_path = out_dir / "history.json"
        res["history"] = json.loads(hist_path.read_text()) if hist_path.is_file() else []
        res["n_train_pairs"] = res["timing"]["n_train_pairs"]
        res["summary"] = summary(d, res)
        res["env"] = env
        res["bench_seconds"] = time.perf_counter() - t0
        (RESULTS / f"bridge_{d}.json").write_text(json.dumps(res, indent=1, default=str))
        print_tables(d, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
