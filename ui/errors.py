"""The error boundary every page runs inside.

- ``BioXError`` (something the user can fix) -> ``st.error`` with its message.
- ``EngineUnavailable`` (an engine piece not built into this copy yet) -> a calm ``st.info``.
- anything else (a bug) -> a short error panel, with the traceback folded in an expander.

Streamlit's own control flow (``st.stop``, ``st.rerun``, ``st.switch_page``) raises
``BaseException`` subclasses, which pass through untouched.

Messages are shown to a browser user, so every server path in them is cut to its last part
(``/srv/…/uploads/3fa1/bedside01.hea`` -> ``bedside01.hea``) by ``redact``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import streamlit as st

from bioxbridge_core.errors import BioXError

log = logging.getLogger(__name__)


#: an absolute POSIX path (not part of a URL or of a relative path), up to a quote, space or separator
_PATH_RE = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"`:;,()\[\]{}<>|]+)+/?")


_QUOTED_RE = re.compile(r"(['\"`])(/[^'\"`\n]*)\1")


#: engine hints meant for Python or command-line users ("(channels=, or --channels in the command line)"),
#: with what an app user does instead
_CLI_HINTS = (
    (re.compile(r"\s*\((?:\w+=, or )?--[\w-]+ in the command line\)"), " (choose each side's channels on this page)"),
)


def app_wording(text: str) -> str:
    """``text`` without hints about command-line flags or Python arguments (the app has its own controls)."""
    for pattern, repl in _CLI_HINTS:
        text = pattern.sub(repl, text)
    return text


def redact(text: str) -> str:
    """``text`` with every absolute server path replaced by its last component (file or folder name), and
    command-line hints reworded for the app (``app_wording``)."""
    def last(m: re.Match) -> str:
        parts = [p for p in m.group(0).split("/") if p]
        return parts[-1] if parts else "/"

    def quoted(m: re.Match) -> str:  # a quoted path may hold spaces
        q, body = m.group(1), m.group(2)
        return q + (body.rstrip("/").rsplit("/", 1)[-1] or "/") + q

    return app_wording(_PATH_RE.sub(last, _QUOTED_RE.sub(quoted, str(text))))


class EngineUnavailable(Exception):
    """An engine module or function the page needs is not part of this build yet."""


def engine(module: str, *names: str, feature: str | None = None) -> Any:
    """Import ``bioxbridge_core.<module>`` and return the named attributes.

    One name returns the attribute, several return a tuple, none the module.
    A missing engine module/attribute raises ``EngineUnavailable`` naming the feature.
    """
    full = f"bioxbridge_core.{module}" if module else "bioxbridge_core"
    what = feature or full
    try:
        mod = importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == "bioxbridge_core" or exc.name.startswith("bioxbridge_core.")):
            raise EngineUnavailable(f"{what} is not available yet ({exc.name} is not part of this build).") from exc
        raise
    if not names:
        return mod
    out = []
    for name in names:
        if not hasattr(mod, name):
            raise EngineUnavailable(f"{what} is not available yet ({full}.{name} is missing).")
        out.append(getattr(mod, name))
    return out[0] if len(out) == 1 else tuple(out)


def has_engine(module: str, *names: str) -> bool:
    """True when ``engine(module, *names)`` would succeed (never raises)."""
    try:
        engine(module, *names)
        return True
    except EngineUnavailable:
        return False
    except Exception:  # a broken engine module: report as unavailable, log the cause
        log.exception("engine module %s failed to import", module)
        return False


def show_error(exc: BaseException, *, where: str = "") -> None:
    """Render one exception the way the boundary would."""
    prefix = f"{where}: " if where else ""
    if isinstance(exc, EngineUnavailable):
        st.info(redact(f"{prefix}{exc} The page will light up once that piece of the engine lands."),
                icon=":material/extension:")
    elif isinstance(exc, BioXError):
        st.error(redact(f"{prefix}{exc}"), icon=":material/warning:")
    else:
        log.exception("unexpected error in the app", exc_info=exc)
        st.error(
            redact(f"{prefix}Something went wrong inside the Studio ({type(exc).__name__}: {exc}). "
                   "This is a bug, not a problem with your data; the details below help to report it."),
            icon=":material/report:",
        )
        with st.expander("Technical details (traceback)"):
            st.code(redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))), language="text")


@contextmanager
def boundary(where: str = "") -> Iterator[None]:
    """Run a block; turn any exception into a readable panel instead of a raw traceback."""
    try:
        yield
    except Exception as exc:  # BaseException (st.stop/rerun) passes through
        show_error(exc, where=where)


def guarded(where: str = "") -> Callable:
    """Decorator form of ``boundary``; the wrapped function returns None on error."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with boundary(where):
                return fn(*args, **kwargs)
            return None

        return wrapper

    return deco
