"""Arguments several commands share, defined once so their names, choices and help stay the same."""

from __future__ import annotations

import argparse

MANIFEST_HELP = ("manifest CSV, or a data folder a dataset recipe fits (eegmat, CinC 2015 VT alarms, "
                 "Stress-Predict): the recipe writes the manifest")


def add_data_source(p: argparse.ArgumentParser, *, manifest_help: str = MANIFEST_HELP) -> None:
    """The required choice between ``--manifest`` (CSV or recipe folder) and ``--demo KIND``."""
    from ..data.demo import KINDS

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help=manifest_help)
    src.add_argument("--demo", choices=KINDS, help="use the built-in simulated demo data")
