import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bridge_toys import ToyHead, channels_encoder, paired_data, tokens_encoder  # noqa: E402

from bioxbridge_core.baselines import KDStudent  # noqa: E402
from bioxbridge_core.bridge import Bridge, BridgeConfig  # noqa: E402


def test_kd_runs_and_trains_more_parameters_than_the_bridge():
    x_old, x_new, groups, _ = paired_data(40)
    old, new = tokens_encoder(), channels_encoder()
    head = ToyHead(16, ["calm", "stress"])
    before = {k: v.clone() for k, v in new.state_dict().items()}
    epochs = []
    kd = KDStudent(new, temperature=2.0, lr=3e-3, epochs=4, batch_size=8, seed=0).fit(
        old, head, x_old, x_new, groups=groups, on_epoch=epochs.append)
    assert kd.trainable_params == sum(p.numel() for p in new.parameters()) + 12 * 2 + 2
    assert kd.trainable_params > Bridge.from_positions(new.position("layer2"), old.position("blocks.1"),
                                                       BridgeConfig(rank=2, n_prototypes=4)).n_params()
    assert len(kd.history_) == 4 == len(epochs)
    p = kd.predict_proba(x_new)
    assert p.shape == (40, 2)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    for k, v in new.state_dict().items():  # the new encoder itself is untouched
        assert torch.equal(v, before[k])
    assert any(not torch.equal(v, before[k]) for k, v in kd.student_.state_dict().items())
    assert kd.n_val_ > 0 and kd.n_train_ + kd.n_val_ == 40


def test_kd_learns_the_teacher():
    x_old, x_new, groups, _ = paired_data(48)
    old, new = tokens_encoder(), channels_encoder()
    head = ToyHead(16, ["calm", "stress"], seed=3)
    kd = KDStudent(new, lr=1e-2, epochs=12, batch_size=8, seed=0, val_fraction=0.0).fit(old, head, x_old, x_new)
    rows = kd.history_
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    teacher = torch.softmax(kd.teacher_logits(old, head, x_old), dim=1).numpy().argmax(1)
    agree = (kd.predict(x_new) == teacher).mean()
    assert agree >= max(np.mean(teacher), 1 - np.mean(teacher))  # at least the majority-class rate
