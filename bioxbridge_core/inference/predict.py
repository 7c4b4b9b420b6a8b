"""Predict from the new modality alone: windows in, probabilities out; or a whole recording to a table."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import NotFittedError, WindowingError

logger = logging.getLogger(__name__)


def predict_logits(model: Any, x_new: np.ndarray, *, subjects: Any = None, batch_size: int = 64) -> np.ndarray:
    """Raw class scores (logits), shape (n_windows, n_classes), of a ``BridgedModel`` (new modality only).

    Uses the model's own ``logits`` method when it has one (``subjects``: one id per window, for a model
    calibrated per subject); otherwise its forward pass, batch by batch.
    """
    import torch

    from ..models.base import iter_batches

    if hasattr(model, "logits"):
        kw = {"subjects": subjects} if subjects is not None else {}
        out = model.logits(x_new, batch_size=batch_size, **kw)
        return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    if not hasattr(model, "new_encoder") or not callable(model):
        raise NotFittedError(f"{type(model).__name__} gives no logits; load a bundle with runs.load_bundle.")
    x = model.new_encoder.check_input(x_new, name="x_new")
    device = next(model.bridge.parameters()).device
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [model(x[sl].to(device)).float().cpu() for sl in iter_batches(x.shape[0], batch_size)]
    finally:
        model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, len(getattr(model, "label_names", []) or [0, 0])))


def drop_reasons(dropped: dict[str, int]) -> dict[str, str]:
    """What each key of ``df.attrs["dropped"]`` means: the reasons and words of ``windows``
    (``data.pairing.DROP_REASONS``: ``gap``, ``nan_new``, ``flat_new``; the predicted file is the new side)."""
    from ..data.pairing import DROP_REASONS

    return {r: DROP_REASONS.get(r, r) for r in dropped}


def _as_new_side(dropped: dict[str, int]) -> dict[str, int]:
    """``window_recording``'s ``gap``/``nan``/``flat`` counts under the names ``windows`` uses for the new side."""
    return {(r if r == "gap" else f"{r}_new"): int(n) for r, n in dropped.items()}


#: bundle key of the fitted temperature (``calibration.Calibration.to_dict()``)
BUNDLE_KEY = "confidence_calibration"


def calibration_of(model: Any) -> dict | None:
    """The bundle's calibration dict (``{"temperature": T, ...}``), or None when it was never calibrated."""
    cal = (getattr(model, "info", None) or {}).get(BUNDLE_KEY)
    return dict(cal) if isinstance(cal, dict) and cal.get("temperature") else None


def predict_windows(model: Any, x_new: np.ndarray, *, batch_size: int = 64, calibrated: bool = True) -> np.ndarray:
    """Class probabilities, shape (n_windows, n_classes), for new-modality windows (n, n_chans, n_times).

    When the model's bundle holds a fitted temperature (``calibration.py``) and ``calibrated`` is
    True, the probabilities are ``softmax(logits / T)``; the winning class never changes.
    """
    cal = calibration_of(model) if calibrated else None
    if cal is not None:
        from ..calibration import apply_temperature

        return apply_temperature(predict_logits(model, x_new, batch_size=batch_size), float(cal["temperature"]))
    if not hasattr(model, "predict_proba"):
        raise NotFittedError(f"{type(model).__name__} has no predict_proba; load a bundle with runs.load_bundle.")
    return np.asarray(model.predict_proba(x_new, batch_size=batch_size))


def _preprocessing(d: dict | None):
    """The bundle's preprocessing dict (as PairedWindows stores it) back to a ``Preprocessing``."""
    if not d:
        return None
    from dataclasses import fields

    from ..data.preprocess import Preprocessing

    known = {f.name for f in fields(Preprocessing)}
    return Preprocessing.from_dict({k: v for k, v in d.items() if k in known})


def bundle_channels_in(ch_names: Sequence[str], wanted: Sequence[str], *, where: str) -> list[str]:
    """A file's names (``ch_names``) for the bundle's new-side channels ``wanted`` (case-insensitive).

    Raises WindowingError naming ``where`` (the file's name), the bundle's channel(s) it lacks and the
    channels it has, so a file without the channel the bridge was trained on is never fed another one.
    """
    have = [str(c) for c in ch_names]
    lower = {c.lower(): c for c in reversed(have)}
    missing = [str(c) for c in wanted if str(c).lower() not in lower]
    if missing:
        raise WindowingError(
            f"{where}: the bundle's channel(s) {missing} are not in the file; its channels are {have}. "
            "Pick the channel to use with --channels (the Predict page: the channel picker).")
    return [lower[str(c).lower()] for c in wanted]


def predict_recording(model: Any, rec: Any, *, channels: Sequence[str] | None = None,
                      step_s: float | None = None, batch_size: int = 64) -> pd.DataFrame:
    """Window a new-modality ``Recording`` as at training time and predict every window.

    Returns a DataFrame with ``start_s``, ``end_s``, ``label`` (predicted class name) and one
    ``p_<label>`` column per class (calibrated when the bundle holds a temperature);
    ``df.attrs["dropped"]`` says how many windows were dropped and why (``gap``, ``nan_new``,
    ``flat_new``: the names ``windows`` uses, see :func:`drop_reasons`), ``df.attrs["channels"]`` which channels were used, ``df.attrs["confidence_calibration"]`` the calibration applied (or None).
    """
    from ..data.pairing import window_recording  # lazy: pairing pulls in filtering code

    info = dict(getattr(model, "info", {}) or {})
    spec = model.new_spec
    window_s = info.get("window_s") or spec.window_s
    step = step_s if step_s is not None else (info.get("step_s") or window_s)
    if channels is None and info.get("new_ch_names"):
        channels = bundle_channels_in(rec.ch_names, info["new_ch_names"], where=rec.name)
    rw = window_recording(rec, spec=spec, channels=channels, window_s=window_s, step_s=step,
                          preprocessing=_preprocessing(info.get("preprocessing")),
                          encoder=info.get("new_encoder"))
    labels = list(getattr(model, "label_names", []) or info.get("label_names") or [])
    x = np.asarray(rw.x)
    start = np.asarray(rw.start_s, dtype=float)
    if len(x) == 0:
        probs = np.zeros((0, len(labels)), dtype=np.float32)
    else:
        probs = predict_windows(model, x, batch_size=batch_size)
    if not labels:
        labels = [str(i) for i in range(probs.shape[1])]
    df = pd.DataFrame({"start_s": start, "end_s": start + float(window_s),
                       "label": [labels[i] for i in probs.argmax(axis=1)] if len(probs) else []})
    for i, name in enumerate(labels):
        df[f"p_{name}"] = probs[:, i] if len(probs) else []
    df.attrs["dropped"] = _as_new_side(dict(getattr(rw, "dropped", {}) or {}))
    df.attrs["channels"] = list(channels) if channels is not None else None
    df.attrs["confidence_calibration"] = calibration_of(model)
    logger.info("predicted %d windows of %s (dropped %s)", len(df), getattr(rec, "source", "recording"),
                df.attrs["dropped"])
    return df
