"""``runs``: list the runs in a run store, with state and headline metrics."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list saved runs")
    p.add_argument("--root", default="runs", help="run-store folder (default ./runs)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.store import RunStore

    infos = RunStore(args.root).list()
    rows = [i.to_dict() if hasattr(i, "to_dict") else dict(vars(i)) for i in infos]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for r in rows:
            print(f"{r.get('run_id', r.get('id', '?'))}  {r.get('kind', '')}  {r.get('state', '')}  {r.get('message', '')}")
    return 0
