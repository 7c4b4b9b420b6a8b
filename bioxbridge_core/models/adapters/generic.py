"""Wrap any ``nn.Module`` as an encoder adapter from a list of its block names.

Two modes:

- ``"sequential"``: the model's forward is a plain chain ``block_K(...block_1(embed(x)))``;
  each stage *is* the named module and is called directly.
- ``"hooks"``: the forward has glue between blocks (reshapes, functional ops,
  extra arguments). Stage j then spans from the input of module j to the
  input of module j+1 (the last stage ends at the last module's output), so
  the chain property ``forward_from(forward_until(x, k), k + 1) == forward(x)``
  still holds. Reading stage j's output reads the next block's input; writing
  stage j's input replaces what module j receives. Running from a stage feeds
  a zero window to the model and swaps the stage input in with a pre-hook, so
  the part of the model after that stage must depend on the input only
  through what that module receives. Blocks that hold their own residuals
  (HF layers, timm blocks) are fine; a residual added *outside* the module
  in the model's forward (``h = blk(h) + h``) or a long skip connection is
  not -- the skipped value would come from the zero window. Name the
  enclosing module as the block instead, or use sequential mode.
- ``"auto"`` (default) tries the chain on a zero window and uses it when it
  reproduces the model's own output, else hooks.

Layer names are dotted paths resolved with ``get_submodule`` -- never ``eval``.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from ..._check import check_option
from ...errors import EncoderError
from ...spec import SignalSpec
from ..base import LAYOUTS, EncoderAdapter, Stage, pool
from ..hooks import capture_outputs, replace_input, resolve_module, run_until_captured

log = logging.getLogger(__name__)

Layouts = str | Sequence[tuple[str, str]] | Mapping[str, tuple[str, str]]


class _HookStage(nn.Module):
    """Stage j of a hook-mode adapter: input of module j -> input of module j+1 (or last output)."""

    def __init__(self, adapter: "GenericAdapter", index: int) -> None:
        super().__init__()
        object.__setattr__(self, "_adapter", adapter)  # not a submodule: avoid a reference cycle
        self.index = index

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self._adapter._run_hooked(h, start=self.index, stop=self.index)


class GenericAdapter(EncoderAdapter):
    """Adapter over an arbitrary model given its block names (see module docstring).

    Parameters
    ----------
    model : the frozen encoder.
    blocks : dotted names of its blocks in run order (at least one).
    spec : input contract.
    embed : optional dotted name of the module before the first block (stage 0).
    layouts : one layout for every stage output (``"tokens"``/``"channels"``), or a
        list / dict ``name -> (in_layout, out_layout)``.
    input_layout : layout of stage 0's input (default ``"channels"``, raw windows).
    mode : ``"auto"``, ``"sequential"`` or ``"hooks"``.
    call : how to run the model on prepared windows (default ``model(x)``).
    prepare : optional map from ``(B, n_chans, n_times)`` windows to the model's input.
    name : registry name.
    """

    def __init__(self, model: nn.Module, blocks: Sequence[str], *, spec: SignalSpec, embed: str | None = None,
                 layouts: Layouts = "tokens", input_layout: str = "channels", mode: str = "auto",
                 call: Callable[[nn.Module, torch.Tensor], object] | None = None,
                 prepare: Callable[[torch.Tensor], torch.Tensor] | None = None, name: str = "generic") -> None:
        super().__init__(spec)
        check_option("mode", mode, ("auto", "sequential", "hooks"), owner="GenericAdapter")
        check_option("input_layout", input_layout, LAYOUTS, owner="GenericAdapter")
        if isinstance(blocks, str) or not blocks:
            raise EncoderError(f"{name}: 'blocks' must be a non-empty list of module names, got {blocks!r}.")
        self.model = model
        self.encoder_name = name
        self._call = call
        self._prepare_fn = prepare
        self.stage_names = ([embed] if embed else []) + list(blocks)
        if len(set(self.stage_names)) != len(self.stage_names):
            raise EncoderError(f"{name}: duplicate block names {self.stage_names}.")
        self._modules_by_stage = [resolve_module(model, n) for n in self.stage_names]
        self._layouts = self._resolve_layouts(layouts, input_layout)
        self._hook_stages = [_HookStage(self, i) for i in range(len(self.stage_names))]
        self.mode = self._choose_mode() if mode == "auto" else mode

    # -- construction helpers -----------------------------------------------------
    def _resolve_layouts(self, layouts: Layouts, input_layout: str) -> list[tuple[str, str]]:
        n = len(self.stage_names)
        if isinstance(layouts, str):
            check_option("layouts", layouts, LAYOUTS, owner=self.encoder_name)
            pairs = [(input_layout if i == 0 else layouts, layouts) for i in range(n)]
        elif isinstance(layouts, Mapping):
            missing = [s for s in self.stage_names if s not in layouts]
            if missing:
                raise EncoderError(f"{self.encoder_name}: no layout given for {missing}.")
            pairs = [tuple(layouts[s]) for s in self.stage_names]  # type: ignore[misc]
        else:
            pairs = [tuple(p) for p in layouts]  # type: ignore[misc]
            if len(pairs) != n:
                raise EncoderError(f"{self.encoder_name}: {len(pairs)} layouts for {n} stages.")
        for s, (a, b) in zip(self.stage_names, pairs):
            if a not in LAYOUTS or b not in LAYOUTS:
                raise EncoderError(f"{self.encoder_name}: stage '{s}' layouts must be in {LAYOUTS}, got {(a, b)}.")
        return pairs  # type: ignore[return-value]

    def _run_model(self, x: torch.Tensor) -> object:
        return self._call(self.model, x) if self._call is not None else self.model(x)

    def _choose_mode(self) -> str:
        was = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                x = self.prepare(self.dry_run_input())
                captured_last = self._run_hooked(x, start=0, stop=len(self.stage_names) - 1)
                h = x
                for m in self._modules_by_stage:
                    h = m(h)
            same = isinstance(h, torch.Tensor) and h.shape == captured_last.shape and torch.allclose(
                h, captured_last, atol=1e-5, rtol=1e-4)
        except Exception as exc:  # any failure of the plain chain means it is not one
            log.debug("%s: plain chain failed (%s); using hooks", self.encoder_name, exc)
            same = False
        finally:
            self.model.train(was)
        mode = "sequential" if same else "hooks"
        log.info("%s: using %s mode", self.encoder_name, mode)
        return mode

    # -- EncoderAdapter API ---------------------------------------------------------
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self._prepare_fn(x) if self._prepare_fn is not None else x

    def stages(self) -> Sequence[Stage]:
        mods = self._modules_by_stage if self.mode == "sequential" else self._hook_stages
        return [Stage(n, m, a, b) for n, m, (a, b) in zip(self.stage_names, mods, self._layouts)]

    def _exit_name(self, j: int) -> tuple[str, str]:
        """Where stage j ends: the input of module j+1, or the last module's output."""
        if j + 1 < len(self.stage_names):
            return self.stage_names[j + 1], "in"
        return self.stage_names[j], "out"

    def _dummy_input(self, batch: int) -> torch.Tensor:
        return self.prepare(self.dry_run_input(batch))

    def _run_hooked(self, h: torch.Tensor, *, start: int, stop: int) -> torch.Tensor:
        """Feed ``h`` as stage ``start``'s input and return stage ``stop``'s output."""
        target, which = self._exit_name(stop)
        with capture_outputs(self.model, [target], which=which, stop_after=target) as got:
            if start == 0:
                run_until_captured(self._run_model, h)
            else:
                with replace_input(self.model, self.stage_names[start], h):
                    run_until_captured(self._run_model, self._dummy_input(h.shape[0]).to(h.dtype))
        if target not in got:
            raise EncoderError(f"{self.encoder_name}: module '{target}' was not reached by the forward pass.")
        return got[target]

    def forward_until(self, x: torch.Tensor, position: str | int) -> torch.Tensor:
        if self.mode == "sequential":
            return super().forward_until(x, position)
        return self._run_hooked(self.prepare(x), start=0, stop=self.position(position).index)

    def forward_from(self, h: torch.Tensor, position: str | int) -> torch.Tensor:
        if self.mode == "sequential":
            return super().forward_from(h, position)
        idx = self.position(position).index
        return self._run_hooked(h, start=idx, stop=len(self.stage_names) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "sequential":
            return super().forward(x)
        return self._run_hooked(self.prepare(x), start=0, stop=len(self.stage_names) - 1)

    def pooled_outputs(self, x: torch.Tensor, positions: Sequence[str] | None = None,
                       *, which: str = "out") -> dict[str, torch.Tensor]:
        if self.mode == "sequential":
            return super().pooled_outputs(x, positions, which=which)
        wanted = [self.position(p) for p in (positions if positions is not None else self.position_names())]
        h0 = self.prepare(x)
        # the input of stage j is the output of stage j-1 (stage 0's input is the prepared window)
        needs = {p.index if which == "out" else p.index - 1 for p in wanted}
        exits = {j: self._exit_name(j) for j in needs if j >= 0}
        out: dict[str, torch.Tensor] = {}
        by_kind: dict[str, list[str]] = {"in": [], "out": []}
        for name, kind in exits.values():
            by_kind[kind].append(name)
        with capture_outputs(self.model, by_kind["in"], which="in") as got_in, \
                capture_outputs(self.model, by_kind["out"], which="out") as got_out:
            self._run_model(h0)
        for p in wanted:
            j = p.index if which == "out" else p.index - 1
            if j < 0:
                out[p.name] = pool(h0, p.in_layout)
                continue
            name, kind = exits[j]
            t = (got_in if kind == "in" else got_out)[name]
            out[p.name] = pool(t, p.out_layout if which == "out" else p.in_layout)
        return out


def wrap_module(model: nn.Module, blocks: Sequence[str], *, spec: SignalSpec, **kwargs) -> GenericAdapter:
    """Convenience: ``GenericAdapter(model, blocks, spec=spec, **kwargs)``."""
    return GenericAdapter(model, blocks, spec=spec, **kwargs)
