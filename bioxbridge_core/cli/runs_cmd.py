"""``runs``: list the runs in a run store, with state and headline metrics."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list saved runs (the app's runs and `run --out` folders)")
    p.add_argument("--root", default="runs", help="folder holding run folders (default ./runs); other folders "
                                                  "in it are skipped")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runs.store import RunStore

    infos = RunStore(args.root).list()  # RunError (one line, exit 2) when the root is not a folder
    rows = [i.to_dict() if hasattr(i, "to_dict") else dict(vars(i)) for i in infos]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for r in rows:
            print(f"{r.get('run_id', r.get('id', '?'))}  {r.get('kind', '')}  {r.get('state', '')}  {r.get('message', '')}")
    return 0
