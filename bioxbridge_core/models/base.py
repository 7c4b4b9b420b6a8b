"""The encoder adapter: a frozen model seen as an ordered list of stages.

An adapter splits its model into stages ``s_0 ... s_{K-1}`` so that the full
forward pass is ``s_{K-1}(... s_1(s_0(prepare(x))))``. Each stage is a
candidate *position*: a bridge may read the output of stage m (new encoder)
and write the input of stage l (old encoder). Shapes and layouts are found
by one dry forward pass on a zero window -- never from a table.

Per window, every stage input/output is 2-D and has a declared layout:

- ``"tokens"``: (n_tokens, width) -- transformer style, token-major;
- ``"channels"``: (width, n_tokens) -- conv style, channel-major over time.

Pooling always averages over the token axis, so selection, training and the
task head see features the same way for every architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .._check import check_windows, suggest
from ..errors import EncoderError, LayerNotFoundError
from ..spec import SignalSpec

LAYOUTS = ("tokens", "channels")


@dataclass(frozen=True)
class Stage:
    """One named step of an encoder's forward pass."""

    name: str
    module: nn.Module
    in_layout: str
    out_layout: str


@dataclass(frozen=True)
class Position:
    """A discovered candidate position (one stage), with per-window shapes (batch excluded)."""

    name: str
    index: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_layout: str
    out_layout: str

    @staticmethod
    def _split(shape: tuple[int, ...], layout: str) -> tuple[int, int]:
        if len(shape) != 2 or layout not in LAYOUTS:
            return (0, 0)
        return (shape[0], shape[1]) if layout == "tokens" else (shape[1], shape[0])

    @property
    def in_tokens(self) -> int:
        return self._split(self.in_shape, self.in_layout)[0]

    @property
    def in_width(self) -> int:
        return self._split(self.in_shape, self.in_layout)[1]

    @property
    def out_tokens(self) -> int:
        return self._split(self.out_shape, self.out_layout)[0]

    @property
    def out_width(self) -> int:
        return self._split(self.out_shape, self.out_layout)[1]

    def to_dict(self) -> dict:
        return {
            "name": self.name, "index": self.index, "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape), "in_layout": self.in_layout, "out_layout": self.out_layout,
        }


def to_tokens(h: torch.Tensor, layout: str) -> torch.Tensor:
    """View a batch ``(B, ...)`` in ``layout`` as ``(B, n_tokens, width)``."""
    if h.dim() != 3:
        raise EncoderError(f"expected a (batch, a, b) tensor, got shape {tuple(h.shape)}")
    return h if layout == "tokens" else h.transpose(1, 2)


def from_tokens(t: torch.Tensor, layout: str) -> torch.Tensor:
    """Inverse of ``to_tokens``: ``(B, n_tokens, width)`` to the stage's own layout."""
    return t if layout == "tokens" else t.transpose(1, 2)


def pool(h: torch.Tensor, layout: str) -> torch.Tensor:
    """Mean over the token axis: ``(B, width)``."""
    return to_tokens(h, layout).mean(dim=1)


class EncoderAdapter(nn.Module):
    """Base class: subclasses build their modules, set ``spec`` and implement ``stages``.

    Subclasses may override ``prepare`` to turn ``(B, n_chans, n_times)``
    windows into what stage 0 consumes. Adapters are always used frozen by
    the engine (``freeze()``); a trainer that fine-tunes calls ``unfreeze()``.
    """

    #: registry name, e.g. ``"builtin:ecg"``; set by the registry/loader
    encoder_name: str = "unnamed"

    def __init__(self, spec: SignalSpec) -> None:
        super().__init__()
        self.spec = spec
        self._positions: list[Position] | None = None

    # -- to implement ---------------------------------------------------------
    def stages(self) -> Sequence[Stage]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement stages()")

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, n_chans, n_times)`` windows to the input of stage 0."""
        return x

    # -- discovery --------------------------------------------------------------
    def _param_device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def dry_run_input(self, batch: int = 1) -> torch.Tensor:
        n_chans = self.spec.n_chans or (len(self.spec.ch_names) if self.spec.ch_names else 1)
        return torch.zeros(batch, n_chans, self.spec.n_times, device=self._param_device())

    def discover_positions(self) -> list[Position]:
        """Run one zero window through every stage and record names, shapes and layouts."""
        stages = list(self.stages())
        if not stages:
            raise EncoderError(f"{self.encoder_name}: the adapter declares no stages.")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise EncoderError(f"{self.encoder_name}: duplicate stage names {names}.")
        positions: list[Position] = []
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                h = self.prepare(self.dry_run_input())
                for i, st in enumerate(stages):
                    if st.in_layout not in LAYOUTS or st.out_layout not in LAYOUTS:
                        raise EncoderError(f"{self.encoder_name}: stage '{st.name}' has an unknown layout.")
                    in_shape = tuple(h.shape[1:])
                    try:
                        h = st.module(h)
                    except RuntimeError as exc:
                        raise EncoderError(
                            f"{self.encoder_name}: a {self.spec.window_s:g} s window "
                            f"({self.spec.n_times} samples) fails at stage '{st.name}': {exc}. "
                            "The window may be too short for this encoder."
                        ) from exc
                    if not isinstance(h, torch.Tensor) or h.dim() != 3:
                        raise EncoderError(
                            f"{self.encoder_name}: stage '{st.name}' must return a (batch, a, b) tensor, "
                            f"got {type(h).__name__} {getattr(h, 'shape', '')}."
                        )
                    positions.append(Position(st.name, i, in_shape, tuple(h.shape[1:]), st.in_layout, st.out_layout))
        finally:
            self.train(was_training)
        return positions

    def set_window(self, window_s: float) -> "EncoderAdapter":
        """Use windows of ``window_s`` seconds from now on; returns ``self``.

        The spec takes the new length (``SignalSpec.with_window`` raises ``ConfigError`` with
        the allowed range when the encoder does not accept it) and the positions are
        discovered again by a dry pass at that length, so every token count derived from
        them (the bridge's N_old, cached targets) follows the window in use. A subclass
        whose modules depend on the length overrides this and calls ``super().set_window``.
        """
        new = self.spec.with_window(float(window_s), encoder=self.encoder_name)
        if abs(new.window_s - self.spec.window_s) > 1e-9 or self._positions is None:
            old_spec, old_positions = self.spec, self._positions
            self.spec, self._positions = new, None
            try:
                _ = self.positions
            except EncoderError:
                self.spec, self._positions = old_spec, old_positions
                raise
        return self

    @property
    def positions(self) -> list[Position]:
        """All candidate positions in run order (discovered once, then cached)."""
        if self._positions is None:
            self._positions = self.discover_positions()
        return self._positions

    def position_names(self) -> list[str]:
        return [p.name for p in self.positions]

    @property
    def read_positions(self) -> list[Position]:
        """Positions whose output a bridge may read (all stages)."""
        return list(self.positions)

    @property
    def write_positions(self) -> list[Position]:
        """Positions whose input a bridge may write: every stage after the first
        (writing stage 0's input would mean synthesising the raw signal)."""
        return [p for p in self.positions[1:] if len(p.in_shape) == 2]

    def position(self, key: str | int) -> Position:
        """Look a position up by dotted name or index (negative counts from the end)."""
        pos = self.positions
        if isinstance(key, (int, np.integer)):
            if -len(pos) <= int(key) < len(pos):
                return pos[int(key)]
            raise LayerNotFoundError(
                f"{self.encoder_name} has {len(pos)} positions (0..{len(pos) - 1}); got index {key}."
            )
        for p in pos:
            if p.name == key:
                return p
        raise LayerNotFoundError(
            f"Position '{key}' not in {self.encoder_name}.{suggest(str(key), self.position_names())} "
            f"See position_names(): {', '.join(self.position_names())}."
        )

    # -- running ----------------------------------------------------------------
    def _stage_list(self) -> list[Stage]:
        return list(self.stages())

    def check_input(self, x: np.ndarray | torch.Tensor, name: str = "x") -> torch.Tensor:
        """Validate windows against ``spec`` and return a float tensor on the model's device."""
        n_chans = self.spec.n_chans
        n_times = None if self.spec.flexible_length else self.spec.n_times
        if isinstance(x, torch.Tensor):
            if x.dim() != 3 or (n_chans is not None and x.shape[1] != n_chans) or (
                n_times is not None and x.shape[2] != n_times
            ):
                check_windows(x.detach().cpu().numpy(), n_chans=n_chans, n_times=n_times, name=name,
                              encoder=self.encoder_name)
            return x.to(self._param_device(), torch.float32)
        arr = check_windows(x, n_chans=n_chans, n_times=n_times, name=name, encoder=self.encoder_name)
        return torch.from_numpy(arr).to(self._param_device())

    def forward_until(self, x: torch.Tensor, position: str | int) -> torch.Tensor:
        """Output of stage ``position`` for windows ``x`` of shape (B, n_chans, n_times)."""
        idx = self.position(position).index
        h = self.prepare(x)
        for st in self._stage_list()[: idx + 1]:
            h = st.module(h)
        return h

    def forward_from(self, h: torch.Tensor, position: str | int) -> torch.Tensor:
        """Last-stage output when ``h`` is fed as the input of stage ``position``."""
        idx = self.position(position).index
        for st in self._stage_list()[idx:]:
            h = st.module(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Last-stage output, in the last stage's layout."""
        h = self.prepare(x)
        for st in self._stage_list():
            h = st.module(h)
        return h

    def last_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Last-layer output as ``(B, n_tokens, width)`` (what the task head pools)."""
        return to_tokens(self.forward(x), self.positions[-1].out_layout)

    def pooled_outputs(self, x: torch.Tensor, positions: Sequence[str] | None = None,
                       *, which: str = "out") -> dict[str, torch.Tensor]:
        """Mean-pooled tensors at several positions in one pass.

        ``which="out"``: each stage's output (read positions);
        ``which="in"``: each stage's input (write positions).
        """
        wanted = set(self.position_names() if positions is None else [self.position(p).name for p in positions])
        out: dict[str, torch.Tensor] = {}
        h = self.prepare(x)
        last_needed = max(self.position(n).index for n in wanted)
        for st in self._stage_list()[: last_needed + 1]:
            if which == "in" and st.name in wanted:
                out[st.name] = pool(h, st.in_layout)
            h = st.module(h)
            if which == "out" and st.name in wanted:
                out[st.name] = pool(h, st.out_layout)
        return out

    # -- freezing -----------------------------------------------------------------
    def freeze(self) -> "EncoderAdapter":
        """Eval mode and no gradients for every parameter (the engine's default)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def unfreeze(self) -> "EncoderAdapter":
        for p in self.parameters():
            p.requires_grad_(True)
        return self

    def train(self, mode: bool = True) -> "EncoderAdapter":
        """Frozen adapters stay in eval mode so Dropout/BatchNorm never wake up."""
        frozen = all(not p.requires_grad for p in self.parameters()) and any(True for _ in self.parameters())
        return super().train(False if frozen else mode)

    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.parameters()))

    def describe(self) -> dict:
        """JSON-ready summary: name, spec, parameters and positions."""
        return {
            "name": self.encoder_name,
            "modality": self.spec.modality,
            "sampling_rate": self.spec.sfreq,
            "window_s": self.spec.window_s,
            "spec": self.spec.to_dict(),
            "params": self.n_params(),
            "positions": self.position_names(),
            "position_shapes": [p.to_dict() for p in self.positions],
        }


def iter_batches(n: int, batch_size: int) -> Iterator[slice]:
    """Slices covering range(n) in order."""
    for i in range(0, n, batch_size):
        yield slice(i, min(n, i + batch_size))


class SequentialAdapter(EncoderAdapter):
    """An adapter over a list of ``Stage`` objects given at construction (tests, simple models)."""

    def __init__(self, spec: SignalSpec, stages: Sequence[Stage], *, name: str = "sequential") -> None:
        super().__init__(spec)
        self._stages = list(stages)
        self.stage_modules = nn.ModuleList([s.module for s in self._stages])
        self.encoder_name = name

    def stages(self) -> Sequence[Stage]:
        return self._stages


class Transpose(nn.Module):
    """Swap the last two axes (channels <-> tokens)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def state_dict_arrays(module: nn.Module) -> Mapping[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items()}
