"""Every public name resolves (the no-Streamlit check walks all submodules in tests/app/test_pages.py)."""

import bioxbridge_core


def test_every_public_name_resolves():
    missing = [n for n in bioxbridge_core.__all__ if n != "__version__" and getattr(bioxbridge_core, n, None) is None]
    assert missing == []


def test_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bioxbridge_core.nope  # noqa: B018
