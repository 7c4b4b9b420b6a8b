"""Every public name resolves, and the engine never imports Streamlit."""

import subprocess
import sys

import bioxbridge_core


def test_every_public_name_resolves():
    missing = [n for n in bioxbridge_core.__all__ if n != "__version__" and getattr(bioxbridge_core, n, None) is None]
    assert missing == []


def test_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bioxbridge_core.nope  # noqa: B018


def test_engine_never_imports_streamlit():
    code = ("import sys, bioxbridge_core as b\n"
            "[getattr(b, n) for n in b.__all__ if n != '__version__']\n"
            "import bioxbridge_core.cli, bioxbridge_core.pipeline, bioxbridge_core.jobs\n"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
