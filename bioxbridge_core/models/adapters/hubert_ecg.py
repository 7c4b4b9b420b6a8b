"""HuBERT-ECG (Coppola et al. 2024, medRxiv 10.1101/2024.11.14.24317328) as an encoder adapter.

What the published model expects (from the paper and the authors' code,
github.com/Edoar-do/HuBERT-ECG, ``hubert_ecg/dataset.py``): 12-lead ECG,
5 s crops at 500 Hz, the leads *concatenated lead after lead into one
sequence* (12 x 2500) and decimated by 5, i.e. one 6000-sample sequence at
100 Hz fed to a HuBERT model (``transformers.HubertModel`` architecture; the
released checkpoints are HuBERT with ECG-specific sizes and extra
pre-training heads that we ignore).

What we assume here:

- ``spec``: ECG, 100 Hz, 5 s windows, 12 channels by default (standard lead
  order I, II, III, aVR, aVL, aVF, V1-V6). Pass ``ch_names`` to
  ``load_encoder`` to use fewer leads (e.g. ``["II"]``): they are flattened
  the same way (the authors also report single-lead fine-tuning), but a
  checkpoint pre-trained on 12 leads sees an unfamiliar sequence length.
- Normalisation: the engine's per-window, per-channel z-score. The authors
  band-pass and rescale their ECGs (see their paper's preprocessing section);
  z-scored leads are close but not identical in scale.
- The checkpoint is a local folder with ``config.json`` and
  ``model.safetensors`` (``save_pretrained`` format). It is read with
  ``local_files_only=True``: nothing is ever downloaded, and
  ``trust_remote_code`` is never used, so custom model types load as plain
  HuBERT (keys of extra heads are ignored; missing encoder keys are an error).

Stages: ``embed`` = conv feature extractor + feature projection + positional
conv embedding (+ layer norm and dropout, as ``HubertEncoder`` does), then
``encoder.layers.0`` ... each returning the hidden-state tensor, and for the
"stable layer norm" variant a final ``encoder.layer_norm`` stage.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..._check import soft_import
from ...errors import EncoderError
from ...spec import SignalSpec
from ..base import EncoderAdapter, Stage

log = logging.getLogger(__name__)

TWELVE_LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
SFREQ_HZ = 100.0
WINDOW_S = 5.0


class _HubertEmbed(nn.Module):
    """(B, L) flattened leads -> (B, n_frames, hidden): everything before the first encoder layer."""

    def __init__(self, hubert: nn.Module, *, stable_layer_norm: bool) -> None:
        super().__init__()
        self.feature_extractor = hubert.feature_extractor
        self.feature_projection = hubert.feature_projection
        self.pos_conv_embed = hubert.encoder.pos_conv_embed
        self.dropout = hubert.encoder.dropout
        self.layer_norm = None if stable_layer_norm else hubert.encoder.layer_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.feature_extractor(x.reshape(x.shape[0], -1)).transpose(1, 2)
        h = self.feature_projection(feats)
        if isinstance(h, tuple):  # older transformers return (hidden, normed)
            h = h[0]
        h = h + self.pos_conv_embed(h)
        if self.layer_norm is not None:
            h = self.layer_norm(h)
        return self.dropout(h)


class _LayerOut(nn.Module):
    """Call a HuBERT encoder layer and return only its hidden-state tensor."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "layer", layer)  # registered under encoder.layers, not here

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.layer(h, attention_mask=None)
        return out[0] if isinstance(out, tuple) else out


class HubertECGAdapter(EncoderAdapter):
    """A ``transformers.HubertModel`` seen as embed + encoder layers (see module docstring)."""

    def __init__(self, hubert: nn.Module, *, ch_names: Sequence[str] | None = None,
                 window_s: float = WINDOW_S, name: str = "hubert-ecg") -> None:
        leads = tuple(str(c) for c in (ch_names if ch_names is not None else TWELVE_LEADS))
        if not leads:
            raise EncoderError(f"{name}: ch_names must name at least one ECG lead.")
        super().__init__(SignalSpec("ECG", SFREQ_HZ, window_s, n_chans=len(leads), ch_names=leads))
        stable = bool(getattr(hubert.config, "do_stable_layer_norm", False))
        self.config_dict = hubert.config.to_dict()
        self.embed = _HubertEmbed(hubert, stable_layer_norm=stable)
        self.encoder = nn.Module()
        self.encoder.layers = hubert.encoder.layers
        self.encoder.layer_norm = hubert.encoder.layer_norm if stable else None
        self._wrapped = [_LayerOut(layer) for layer in hubert.encoder.layers]
        self.encoder_name = name

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_leads, T) -> (B, 1, n_leads * T): leads one after another, as HuBERT-ECG was trained."""
        return x.reshape(x.shape[0], 1, -1)

    def stages(self) -> Sequence[Stage]:
        out = [Stage("embed", self.embed, "channels", "tokens")]
        out += [Stage(f"encoder.layers.{i}", w, "tokens", "tokens") for i, w in enumerate(self._wrapped)]
        if self.encoder.layer_norm is not None:
            out.append(Stage("encoder.layer_norm", self.encoder.layer_norm, "tokens", "tokens"))
        return out


def _read_config(path: Path) -> dict:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise EncoderError(f"hubert-ecg: {path} has no config.json (expected a save_pretrained folder).")
    try:
        return json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EncoderError(f"hubert-ecg: {cfg_file} is not valid JSON: {exc}") from None


def _hubert_config(path: Path):
    transformers = soft_import("transformers", "the HuBERT-ECG adapter")
    raw = _read_config(path)
    known = transformers.HubertConfig().to_dict()
    kwargs = {k: v for k, v in raw.items() if k in known and k not in ("model_type", "architectures",
                                                                        "transformers_version")}
    return transformers.HubertConfig(**kwargs)


_PREFIXES = ("hubert_ecg.", "hubert.", "model.")


def _remap_key(key: str) -> str:
    for p in _PREFIXES:
        if key.startswith(p):
            key = key[len(p):]
            break
    # weight-norm naming differs between torch versions
    return (key.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
               .replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1"))


def load_hubert_ecg(path: str | Path, *, ch_names: Sequence[str] | None = None,
                    name: str | None = None) -> HubertECGAdapter:
    """Build the adapter from a local ``save_pretrained`` folder (``config.json`` + ``model.safetensors``)."""
    transformers = soft_import("transformers", "the HuBERT-ECG adapter")
    from ..._io import load_safetensors

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise EncoderError(f"hubert-ecg: checkpoint folder not found: {folder}")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise EncoderError(f"hubert-ecg: {folder} has no model.safetensors (only safetensors weights are read).")
    config = _hubert_config(folder)
    model = transformers.HubertModel(config)
    state = {_remap_key(k): v for k, v in load_safetensors(weights).items()}
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state and k != "masked_spec_embed"]
    if missing:
        raise EncoderError(
            f"hubert-ecg: {weights} lacks {len(missing)} weights of the HuBERT encoder, e.g. {missing[:4]}. "
            "Is this a HuBERT(-ECG) checkpoint?"
        )
    bad = [k for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise EncoderError(f"hubert-ecg: {weights} has weights whose shapes disagree with config.json: {bad[:4]}.")
    model.load_state_dict(state, strict=False)
    adapter = HubertECGAdapter(model, ch_names=ch_names, name=name or f"hubert-ecg:{folder}")
    log.info("loaded HuBERT-ECG from %s (%d parameters)", folder, adapter.n_params())
    return adapter


def hubert_ecg_spec(path: str | Path, *, ch_names: Sequence[str] | None = None) -> SignalSpec:
    """The input spec without building the model (only checks that config.json exists)."""
    _read_config(Path(path).expanduser())
    leads = tuple(ch_names) if ch_names is not None else TWELVE_LEADS
    return SignalSpec("ECG", SFREQ_HZ, WINDOW_S, n_chans=len(leads), ch_names=leads)
