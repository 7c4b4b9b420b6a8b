"""Forward hooks for models whose forward pass is not a plain chain of blocks.

Two context managers, both removing every handle in ``finally`` so a failed
forward never leaves a hook behind:

- ``capture_outputs(model, names)``: record the output (or input) of named
  submodules during a forward pass; optionally stop the pass early once the
  last wanted tensor is seen (saves the rest of the forward).
- ``replace_input(model, name, tensor)``: feed ``tensor`` as the first
  positional input of a submodule instead of what the model computed.

Names are dotted module paths resolved with ``get_submodule`` (never ``eval``).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from .._check import suggest
from ..errors import LayerNotFoundError


class StopForward(Exception):
    """Raised inside a hook to end a forward pass early (caught by ``run_until_captured``)."""


def resolve_module(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule(name)`` with an error that lists close names."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise LayerNotFoundError(
            f"Module '{name}' not found in {type(model).__name__}.{suggest(name, names)} "
            f"Known modules include: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}."
        ) from None


def _first_tensor(obj) -> torch.Tensor:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], torch.Tensor):
        return obj[0]
    if hasattr(obj, "last_hidden_state"):
        return obj.last_hidden_state
    raise TypeError(f"cannot find a tensor in a {type(obj).__name__}")


class Captured(dict):
    """Tensors captured by name; ``stop_after`` names the capture that ends the pass."""


@contextlib.contextmanager
def capture_outputs(model: nn.Module, names: Sequence[str], *, which: str = "out",
                    stop_after: str | None = None) -> Iterator[Captured]:
    """Capture each named submodule's output (``which="out"``) or first input (``"in"``).

    With ``stop_after``, a ``StopForward`` is raised right after that name is
    captured; wrap the call in ``run_until_captured`` (or catch it yourself).
    Tuple outputs keep their first tensor.
    """
    captured = Captured()
    handles = []
    try:
        for name in dict.fromkeys(names):
            module = resolve_module(model, name)

            def _done(key: str = name) -> None:
                if stop_after is not None and key == stop_after:
                    raise StopForward(key)

            if which == "out":
                def hook(_m, _args, output, key=name, done=_done):
                    captured[key] = _first_tensor(output)
                    done()
                handles.append(module.register_forward_hook(hook))
            elif which == "in":
                def pre_hook(_m, args, key=name, done=_done):
                    captured[key] = _first_tensor(args)
                    done()
                handles.append(module.register_forward_pre_hook(pre_hook))
            else:
                raise ValueError(f"which must be 'out' or 'in', got {which!r}")
        yield captured
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def replace_input(model: nn.Module, name: str, tensor: torch.Tensor) -> Iterator[None]:
    """Feed ``tensor`` as the first positional input of submodule ``name`` (other args kept)."""
    module = resolve_module(model, name)

    def pre_hook(_m, args):
        return (tensor,) + tuple(args[1:])

    handle = module.register_forward_pre_hook(pre_hook)
    try:
        yield
    finally:
        handle.remove()


def run_until_captured(fn, *args, **kwargs) -> None:
    """Call ``fn(*args, **kwargs)`` and swallow the ``StopForward`` a capture raises."""
    try:
        fn(*args, **kwargs)
    except StopForward:
        pass
