"""Server-side data folders a browser user may read: only those under configured roots.

The app's config names the roots (``studio.toml`` at the Studio folder, or ``BIOXBRIDGE_DATA_ROOTS``);
by default only the built-in demo folder and, when present, ``../shared/data``. Everything a
browser user picks is a *name relative to a root*; it is resolved (symlinks included) and refused
when it lands outside that root. Manifests chosen here must also point only inside the roots.
Browser-facing text uses root names and relative paths, never server paths.

No Streamlit here (plain functions, tested directly).

Config (``studio.toml``)::

    [data]
    roots = { "lab recordings" = "/data/study", "shared" = "../shared/data" }

``BIOXBRIDGE_DATA_ROOTS`` = ``name=path`` entries separated by ``os.pathsep`` (a bare path is named
after its folder); it replaces the file's roots. Relative paths are relative to the Studio folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from bioxbridge_core.errors import ManifestError
from bioxbridge_core.paths import REPO_ROOT, cache_dir

CONFIG_FILE = REPO_ROOT / "studio.toml"
ENV_ROOTS = "BIOXBRIDGE_DATA_ROOTS"
MAX_LISTED = 500


class OutsideRootsError(ManifestError):
    """A path the browser asked for is not inside a configured data root."""


@dataclass(frozen=True)
class DataRoot:
    """A folder the app may read, with the name the browser sees."""

    name: str
    path: Path

    def display(self, target: Path) -> str:
        """``name/relative/path`` for ``target`` inside this root (never the server path)."""
        rel = Path(os.path.realpath(target)).relative_to(self.real)
        return self.name if str(rel) == "." else f"{self.name}/{rel.as_posix()}"

    @property
    def real(self) -> Path:
        return Path(os.path.realpath(self.path))


def _default_roots() -> list[DataRoot]:
    roots = [DataRoot("built-in demo", cache_dir("demo"))]
    shared = Path(os.environ.get("BIOXBRIDGE_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
    if shared.is_dir():
        roots.append(DataRoot("shared data", shared))
    return roots


def _parse_env(text: str) -> list[DataRoot]:
    out = []
    for part in text.split(os.pathsep):
        part = part.strip()
        if not part:
            continue
        name, sep, path = part.partition("=")
        if not sep:
            name, path = Path(part).name or part, part
        out.append(DataRoot(name.strip(), _absolute(path.strip())))
    return out


def _absolute(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p)


def configured_roots(config_file: Path | None = None) -> list[DataRoot]:
    """The data roots of this Studio (env beats ``studio.toml`` beats the defaults); missing folders dropped."""
    env = os.environ.get(ENV_ROOTS)
    if env is not None:
        roots = _parse_env(env)
    else:
        roots = _default_roots()
        cfg = config_file or CONFIG_FILE
        if cfg.is_file():
            import tomllib

            try:
                data = tomllib.loads(cfg.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ManifestError(f"{cfg.name}: not valid TOML ({exc}).") from None
            table = (data.get("data") or {}).get("roots") or {}
            if not isinstance(table, dict):
                raise ManifestError(f"{cfg.name}: [data] roots must be a table of name = \"path\".")
            roots = [DataRoot("built-in demo", cache_dir("demo"))] + [
                DataRoot(str(k), _absolute(str(v))) for k, v in table.items()]
    seen, out = set(), []
    for r in roots:
        if r.name not in seen and r.path.is_dir():
            seen.add(r.name)
            out.append(r)
    return out


def root_named(name: str, roots: Sequence[DataRoot] | None = None) -> DataRoot:
    roots = configured_roots() if roots is None else roots
    for r in roots:
        if r.name == name:
            return r
    raise OutsideRootsError(f"'{name}' is not one of the data folders this Studio offers.")


def resolve_inside(root: DataRoot, relative: str) -> Path:
    """``root/relative`` resolved (symlinks followed); refused unless it stays inside the root.

    Raises ``OutsideRootsError`` for absolute paths, ``..`` segments, or links leading out.
    """
    rel = str(relative or "").replace("\\", "/").strip()
    pure = PurePosixPath(rel)
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel) or ".." in pure.parts or rel.startswith("~"):
        raise OutsideRootsError(f"'{rel}' is outside the data folder '{root.name}'; pick a folder listed there.")
    target = Path(os.path.realpath(root.real.joinpath(*pure.parts)))
    if not target.is_relative_to(root.real):
        raise OutsideRootsError(f"'{rel}' leads outside the data folder '{root.name}' (a link?); refusing to read it.")
    if not target.exists():
        raise ManifestError(f"'{root.name}/{rel}' does not exist.")
    return target


def inside_any(path: str | Path, roots: Iterable[DataRoot]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(r.real) for r in roots)


def check_manifest_files(files: Iterable[str | Path], roots: Sequence[DataRoot], *, manifest_name: str) -> None:
    """Refuse a manifest that points at any file outside the roots (names the first such row's file)."""
    for f in files:
        if not inside_any(f, roots):
            raise OutsideRootsError(f"{manifest_name}: it refers to '{Path(f).name}', which is outside the data "
                                    "folders this Studio may read.")


def list_entries(root: DataRoot, *, max_depth: int = 2) -> list[str]:
    """Folders and CSV files under ``root`` (relative POSIX names, sorted), skipping hidden ones and links
    that lead outside."""
    out: list[str] = []
    base = root.real

    def walk(folder: Path, depth: int) -> None:
        try:
            items = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError:
            return
        for p in items:
            if p.name.startswith((".", "_")) or len(out) >= MAX_LISTED:
                continue
            real = Path(os.path.realpath(p))
            if not real.is_relative_to(base):
                continue
            rel = real.relative_to(base).as_posix()
            if real.is_dir():
                out.append(rel + "/")
                if depth < max_depth:
                    walk(real, depth + 1)
            elif real.suffix.lower() == ".csv":
                out.append(rel)

    walk(base, 1)
    return out


def is_table(path: Path) -> bool:
    """CSV files that are label/alarm tables or manifests rather than recordings (by their header)."""
    try:
        head = path.open("r", encoding="utf-8", errors="replace").readline().lower()
    except OSError:
        return True
    cols = {c.strip() for c in head.split(",")}
    return bool(cols & {"path", "old_path", "label", "recordname", "result", "participant", "file"})


#: folder recipes and their detection live in the engine (the CLI's ``--manifest FOLDER`` uses them too)
from bioxbridge_core.data.recipes import RECIPES, detect_recipe  # noqa: E402,F401  (re-exported)
