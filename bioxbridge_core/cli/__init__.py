"""Command line: ``python -m bioxbridge_core <command> ...``.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``
(which sets ``func`` on its parser) and is listed in ``COMMANDS``. A
``BioXError`` becomes one line on stderr and exit code 2 -- never a traceback;
so do file-system errors and errors raised inside the data libraries (pandas,
MNE, wfdb, pyarrow...), naming the file when they know it (``-vv`` re-raises
these with their traceback). ``--manifest`` may name a data folder that a dataset recipe fits
(``data.recipes.RECIPES``): the recipe writes the manifest, and stderr says which recipe ran. Warnings logged while a command runs (reader
warnings included) are printed to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from ..errors import BioXError

#: libraries whose exceptions are the user's input problem, not our bug
_DATA_LIBRARIES = {"pandas", "mne", "wfdb", "pyarrow", "edfio", "scipy", "zipfile", "csv"}

COMMANDS = ("inspect", "windows", "models", "features", "align", "train", "run", "predict", "runs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bioxbridge_core",
                                     description="BioX-Bridge Studio engine: bridge a biosignal model to a new modality.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name}_cmd", __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"{name}_cmd"):
                continue  # subcommand not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _manifest_folder(args)
        return int(args.func(args) or 0)
    except BioXError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose >= 2 or not _is_input_error(exc):
            raise
        print(f"error: {one_line(exc, with_type=True)}", file=sys.stderr)
        return 2


def _manifest_folder(args: argparse.Namespace) -> None:
    """``--manifest FOLDER`` (any command): run the dataset recipe that fits the folder
    (``data.recipes.recipe_manifest``, the one the app uses), say which on stderr, and go on with its
    manifest. The recipe's old side is the old encoder's modality (``--old``, or ``--old-modality``).
    Raises ManifestError listing the recipes when none fits."""
    from pathlib import Path

    folder = getattr(args, "manifest", None)
    if not folder or not Path(folder).is_dir():
        return
    from ..data.recipes import RECIPES, recipe_manifest
    from ..errors import ConfigError

    old = getattr(args, "old_modality", None)
    if getattr(args, "old", None):
        from ..models.registry import encoder_spec

        old = encoder_spec(args.old).modality
    if not old:
        raise ConfigError(f"{Path(folder).name}: a data folder; name the old encoder (--old) so its recipe "
                          "knows which side is old.")
    path, recipe = recipe_manifest(folder, old=old)
    print(f"{Path(folder).name}: {recipe} recipe ({RECIPES[recipe][0]}), old side {old} -> manifest {path}",
          file=sys.stderr)
    args.manifest = str(path)


def _is_input_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, UnicodeDecodeError)):
        return True
    return type(exc).__module__.split(".")[0] in _DATA_LIBRARIES


def one_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The exception's message on one line (file-system errors name their file)."""
    if isinstance(exc, OSError) and exc.filename:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = " ".join(str(exc).split())
    if with_type and not isinstance(exc, OSError):
        text = f"{type(exc).__name__}: {text}"
    return text
