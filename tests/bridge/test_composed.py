import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bridge_toys import Boom, ToyHead, channels_encoder, paired_data, tokens_encoder  # noqa: E402

from bioxbridge_core.bridge import Bridge, BridgeConfig, BridgedModel  # noqa: E402
from bioxbridge_core.errors import ConfigError  # noqa: E402


def _model():
    new, old = channels_encoder(), tokens_encoder()
    br = Bridge.from_positions(new.position("layer2"), old.position("blocks.1"), BridgeConfig(rank=2, n_prototypes=4))
    with torch.no_grad():
        br.B.normal_()
    head = ToyHead(16, ["calm", "stress"])
    return BridgedModel(new, old, br, head, new_position="layer2", old_position="blocks.1"), new, old


def test_predict_proba_from_new_modality_only(monkeypatch):
    model, new, old = _model()
    _, x_new, _, _ = paired_data(10)

    def boom(*a, **k):
        raise Boom("old modality touched")

    monkeypatch.setattr(old, "prepare", boom)
    monkeypatch.setattr(old.stage_modules[0], "forward", boom)  # stage 0 eats raw old-modality windows
    monkeypatch.setattr(old, "forward_until", boom)
    calls = []
    real_from = old.forward_from
    monkeypatch.setattr(old, "forward_from", lambda h, pos: calls.append(pos) or real_from(h, pos))
    proba = model.predict_proba(x_new, batch_size=4)
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert calls and all(c == old.position("blocks.1").index for c in calls)
    assert model.predict(x_new).shape == (10,)
    assert model.label_names == ["calm", "stress"]


def test_rejects_old_modality_shaped_input():
    model, _, _ = _model()
    x_old, _, _, _ = paired_data(4)
    with pytest.raises(ConfigError, match="x_new"):
        model.predict_proba(x_old)


def test_shape_mismatch_and_stage0_are_refused():
    new, old = channels_encoder(), tokens_encoder()
    br = Bridge.from_positions(new.position("layer2"), old.position("blocks.1"), BridgeConfig())
    with pytest.raises(ConfigError, match="does not fit"):
        BridgedModel(new, old, br, ToyHead(16, ["a", "b"]), new_position="stem", old_position="blocks.1")
    with pytest.raises(ConfigError, match="first stage"):
        BridgedModel(new, old, br, ToyHead(16, ["a", "b"]), new_position="layer2", old_position="embed")


def test_only_bridge_is_trainable_in_composed_model():
    model, _, _ = _model()
    assert model.trainable_params() == model.bridge.n_params()
