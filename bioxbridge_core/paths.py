"""Where the engine keeps caches and finds its shipped assets."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
ASSETS = REPO_ROOT / "assets"


def cache_dir(*parts: str) -> Path:
    """A cache folder: ``$BIOXBRIDGE_CACHE`` or ``<repo>/.cache``; created on demand."""
    root = Path(os.environ.get("BIOXBRIDGE_CACHE", REPO_ROOT / ".cache"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
