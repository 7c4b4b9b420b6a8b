import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bridge_toys import ToyHead, make_encoder, paired_data  # noqa: E402

from bioxbridge_core.bridge import BridgeConfig  # noqa: E402
from bioxbridge_core.errors import RunError  # noqa: E402
from bioxbridge_core.runs import load_bundle, save_bundle  # noqa: E402
from bioxbridge_core.training import BridgeTrainer  # noqa: E402


def _trained(tmp_path):
    x_old, x_new, groups, _ = paired_data(32)
    old, new = make_encoder("toy:tokens"), make_encoder("toy:channels")
    cfg = BridgeConfig(epochs=2, lr=1e-2, rank=3, n_prototypes=5)
    tr = BridgeTrainer(cfg).fit(old, new, x_old, x_new, new_position="layer2", old_position="blocks.1",
                                groups=groups)
    return tr, cfg, x_new


def _bundle_config(cfg):
    return {"old_encoder": "toy:tokens", "new_encoder": "toy:channels", "old_ch_names": ["ECG"],
            "new_ch_names": ["PPG"], "old_position": "blocks.1", "new_position": "layer2",
            "label_names": ["calm", "stress"], "window_s": 2.0, "step_s": 1.0,
            "preprocessing": {"bandpass": False}, "bridge_config": cfg}


def test_bundle_round_trip_with_toy_head(tmp_path):
    tr, cfg, x_new = _trained(tmp_path)
    head = ToyHead(16, ["calm", "stress"])
    save_bundle(tmp_path, tr.bridge_, head, _bundle_config(cfg))

    def head_loader(path):
        from bioxbridge_core._io import load_safetensors

        h = ToyHead(16, ["calm", "stress"], seed=99)
        h.load_state_dict(load_safetensors(path))
        return h

    model = load_bundle(tmp_path, device="cpu", encoder_loader=make_encoder, head_loader=head_loader)
    assert model.info["window_s"] == 2.0 and model.info["new_ch_names"] == ["PPG"]
    assert model.label_names == ["calm", "stress"]
    assert BridgeConfig.from_dict(model.info["bridge_config"]) == cfg
    for k, v in tr.bridge_.state_dict().items():
        assert torch.equal(model.bridge.state_dict()[k], v)
    from bioxbridge_core.bridge import BridgedModel

    direct = BridgedModel(make_encoder("toy:channels"), make_encoder("toy:tokens"), tr.bridge_, head,
                          new_position="layer2", old_position="blocks.1")
    np.testing.assert_allclose(model.predict_proba(x_new), direct.predict_proba(x_new), atol=1e-6)


def test_bundle_with_task_head(tmp_path):
    heads = pytest.importorskip("bioxbridge_core.models.heads")
    tr, cfg, x_new = _trained(tmp_path)
    head = heads.TaskHead(16, 2, label_names=["calm", "stress"], encoder_name="toy:tokens")
    head.fitted = True
    save_bundle(tmp_path, tr.bridge_, head, _bundle_config(cfg))
    model = load_bundle(tmp_path, device="cpu", encoder_loader=make_encoder)
    assert torch.equal(model.head.linear.weight, head.linear.weight)
    assert model.predict_proba(x_new).shape == (len(x_new), 2)


def test_missing_bundle_and_keys(tmp_path):
    with pytest.raises(RunError, match="bundle.json"):
        load_bundle(tmp_path, encoder_loader=make_encoder)
    with pytest.raises(RunError, match="window_s"):
        save_bundle(tmp_path, None, None, {"old_encoder": "a"})
