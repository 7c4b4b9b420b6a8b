"""``python -m bioxbridge_core models``: list the encoders this installation can use."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="list available encoders (built-in and adapters)",
                              description="List built-in encoders and registered foundation-model adapters.")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=run)
    return p


def _table(rows: list[dict]) -> str:
    lines = [f"{'name':<20} {'modality':<8} {'Hz':>6} {'window':>7} {'params':>10}  {'ready':<5} positions"]
    for r in rows:
        hz = "-" if r.get("sampling_rate") is None else f"{r['sampling_rate']:g}"
        win = "-" if r.get("window_s") is None else f"{r['window_s']:g} s"
        params = "-" if r.get("params") is None else f"{r['params'] / 1e6:.2f} M"
        pos = r.get("positions") or []
        pos_txt = f"{len(pos)}: {pos[0]} .. {pos[-1]}" if pos else "discovered on load"
        lines.append(f"{r['name']:<20} {str(r.get('modality') or '-'):<8} {hz:>6} {win:>7} {params:>10}  "
                     f"{'yes' if r.get('available') else 'no':<5} {pos_txt}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..models.registry import list_encoders

    rows = list_encoders()
    sys.stdout.write((json.dumps(rows, indent=2) if args.json else _table(rows)) + "\n")
    return 0
