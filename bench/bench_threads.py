"""Torch thread count vs bridge training time, side by side (issue 12: "Speed you can see").

Trains the demo bridge (ECG -> PPG, positions fixed to layer4.0 -> blocks.4) for a few epochs in a fresh
process per setting: 1 thread, 2, ..., torch's default, and the count ``bioxbridge_core.cpus.choose_threads``
picks. ``--burn N`` keeps N CPU-burning processes running beside the measurements, as on a shared machine.

    python bench/bench_threads.py                     # quiet machine
    python bench/bench_threads.py --burn 2            # two busy cores' worth of other work
    python bench/bench_threads.py --epochs 2 --threads 1,auto   # smoke test

Prints one row per setting: threads used, seconds for the features cache + epochs, seconds per epoch.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import torch
from bioxbridge_core.bridge.config import BridgeConfig
from bioxbridge_core.pipeline import PipelineConfig, prepare_data, split_windows
from bioxbridge_core.training.trainer import BridgeTrainer

epochs = int(sys.argv[1])
data = prepare_data(PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg"))
pair = split_windows(data.windows)["pair"]
t0 = time.perf_counter()
tr = BridgeTrainer(BridgeConfig(epochs=epochs, seed=0), device="cpu").fit(
    data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, new_position="layer4.0", old_position="blocks.4",
    groups=pair.subjects)
total = time.perf_counter() - t0
per = sum(r["seconds"] for r in tr.history_) / len(tr.history_)
print(json.dumps({"threads": torch.get_num_threads(), "seconds": total, "per_epoch": per}))
"""


def _burn() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


def run_one(threads: str, epochs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                            "OPENBLAS_NUM_THREADS", "BIOXBRIDGE_THREADS")}
    env["PYTHONPATH"] = str(REPO)
    label = threads
    if threads == "auto":
        sys.path.insert(0, str(REPO))
        from bioxbridge_core.cpus import choose_threads

        n = choose_threads(respect_env=False)
        env.update({v: str(n) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
        label = f"auto ({n})"
    elif threads != "default":
        env.update({v: threads for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(epochs)], env=env, cwd=REPO, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{label}: failed\n{out.stderr[-2000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(setting=label, wall=time.perf_counter() - t0)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", default="1,2,default,auto", help="comma-separated: numbers, 'default', 'auto'")
    ap.add_argument("--burn", type=int, default=0, help="CPU-burning processes to run beside the measurements")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all settings (interleaved)")
    args = ap.parse_args(argv)
    burners = [mp.Process(target=_burn, daemon=True) for _ in range(args.burn)]
    for b in burners:
        b.start()
    try:
        time.sleep(2.0 if burners else 0.0)
        rows = [run_one(t.strip(), args.epochs) for _ in range(args.repeat) for t in args.threads.split(",")]
    finally:
        for b in burners:
            b.terminate()
            b.join()
    print(f"demo bridge, {args.epochs} epochs, {os.cpu_count()} CPUs, {args.burn} burning process(es) beside, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'setting':>12s} {'threads':>8s} {'fit s':>8s} {'s/epoch':>8s} {'wall s':>8s}")
    for r in rows:
        print(f"{r['setting']:>12s} {r['threads']:>8d} {r['seconds']:>8.1f} {r['per_epoch']:>8.2f} {r['wall']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
