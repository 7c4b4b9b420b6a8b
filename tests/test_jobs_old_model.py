"""The bridge job uses the old model as its head was trained: fine-tuned encoder, per-subject calibration.

Toy encoders (``_bridge_toys``), 1-2 epochs, in-process worker: a few seconds each.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from _bridge_toys import make_encoder, paired_data  # noqa: E402

from bioxbridge_core.data.windows import PairedWindows  # noqa: E402
from bioxbridge_core.errors import EncoderError  # noqa: E402
from bioxbridge_core.jobs import run_worker  # noqa: E402
from bioxbridge_core.models.heads import (load_encoder_state, save_encoder_state, stage_state,  # noqa: E402
                                          train_task_head)
from bioxbridge_core.runs import RunStore, load_bundle, read_metrics, read_status  # noqa: E402

WRITE = "blocks.1"


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Pairs of 4 subjects + a labelled test subject, their labels and subjects, saved as a windows file."""
    monkeypatch.syspath_prepend(str(TESTS))
    x_old, x_new, groups, labels = paired_data(40, n_subjects=5)
    split = np.where(np.isin(groups, np.unique(groups)[:4]), "pair", "test")
    meta = pd.DataFrame({"subject": groups, "recording": groups, "split": split,
                         "start_s": np.arange(40, dtype=float), "label": np.where(labels, "b", "a")})
    path = tmp_path / "pairs.npz"
    PairedWindows(x_old, x_new, meta, old_channels=["ECG"], new_channels=["PPG"], sfreq_old=50, sfreq_new=25,
                  window_s=2.0, step_s=2.0).save(path)
    return {"windows": path, "x_old": x_old, "labels": labels, "groups": groups}


def _config(toy, head, **extra):
    bridge = {"epochs": 1, "batch_size": 8, "lr": 1e-2, "rank": 2, "n_prototypes": 4, **extra.pop("bridge", {})}
    return {"windows": str(toy["windows"]), "old_encoder": "toy:tokens", "new_encoder": "toy:channels",
            "old_position": WRITE, "new_position": "layer2", "encoder_factory": "_bridge_toys:make_encoder",
            "bridge": bridge, "head": str(head), **extra}


def _head(toy, tmp_path, *, fine_tune=False, calibration="none"):
    """A task head trained on the toy old windows (optionally fine-tuning the encoder 1 epoch); (head path, encoder)."""
    enc = make_encoder("toy:tokens")
    head = train_task_head(enc, toy["x_old"], toy["labels"], label_names=["a", "b"], groups=toy["groups"],
                           fine_tune=fine_tune, epochs=1, lr_encoder=1e-2, calibration=calibration, l2=1e-3)
    return head.save(tmp_path / "head.safetensors"), enc


def test_encoder_state_round_trip_and_refuses_another_encoder(tmp_path):
    enc = make_encoder("toy:tokens")
    with torch.no_grad():
        next(enc.parameters()).add_(1.0)
    path = save_encoder_state(enc, tmp_path / "enc.safetensors")
    fresh = load_encoder_state(make_encoder("toy:tokens"), path)
    for (k, a), (_, b) in zip(enc.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), k
    assert not any(p.requires_grad for p in fresh.parameters())
    with pytest.raises(EncoderError, match="enc.safetensors.*toy:channels"):
        load_encoder_state(make_encoder("toy:channels"), path)
    with pytest.raises(EncoderError, match="not found"):
        load_encoder_state(make_encoder("toy:tokens"), tmp_path / "missing.safetensors")


def test_bridge_job_loads_the_fine_tuned_encoder_and_bundles_its_layers(tmp_path, toy):
    head, tuned = _head(toy, tmp_path, fine_tune=True)
    frozen = make_encoder("toy:tokens")
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, frozen.state_dict()[k])]
    assert changed, "fine-tuning changed no weight: the test would prove nothing"
    state = save_encoder_state(tuned, tmp_path / "old_encoder.safetensors")
    run = RunStore(tmp_path / "runs").create("bridge", _config(toy, head, old_encoder_state=str(state)))
    assert run_worker(run.path) == 0, read_status(run.path)
    info = json.loads((run.path / "bundle.json").read_text())
    assert info["old_finetuned"] is True and info["calibration"] == "none" and info["old_layers"]
    # the layers in the bundle are the fine-tuned ones, so the job ran on the fine-tuned encoder
    from bioxbridge_core._io import load_safetensors

    saved = load_safetensors(run.path / info["old_layers"])
    expected = stage_state(tuned, WRITE)
    assert set(saved) == set(expected)
    assert all(torch.equal(saved[k], expected[k]) for k in saved)
    assert any(not torch.equal(saved[k], v) for k, v in stage_state(frozen, WRITE).items())
    # Predict's loader applies them over a fresh registry encoder
    model = load_bundle(run.path, device="cpu", encoder_loader=make_encoder)
    x_new = PairedWindows.load(toy["windows"]).x_new
    assert model.predict_proba(x_new).shape == (len(x_new), 2)
    assert "test" in read_metrics(run.path)["oracle"]


def test_bridge_job_refuses_a_fine_tuned_head_without_its_encoder(tmp_path, toy):
    head, _ = _head(toy, tmp_path, fine_tune=True)
    run = RunStore(tmp_path / "runs").create("bridge", _config(toy, head))
    assert run_worker(run.path) == 1
    st = read_status(run.path)
    assert st["state"] == "failed" and "old_encoder_state" in st["message"], st


def test_bridge_job_refuses_a_calibration_other_than_the_heads(tmp_path, toy):
    head, _ = _head(toy, tmp_path, calibration="subject")
    run = RunStore(tmp_path / "runs").create("bridge", _config(toy, head))  # bridge calibration: default "none"
    assert run_worker(run.path) == 1
    st = read_status(run.path)
    assert st["state"] == "failed" and "calibration 'none' differs" in st["message"] and "'subject'" in st["message"]
    assert not (run.path / "bundle.json").exists()


def test_bridge_job_with_subject_calibration_bundles_it(tmp_path, toy):
    head, _ = _head(toy, tmp_path, calibration="subject")
    run = RunStore(tmp_path / "runs").create("bridge", _config(toy, head, bridge={"calibration": "subject"}))
    assert run_worker(run.path) == 0, read_status(run.path)
    info = json.loads((run.path / "bundle.json").read_text())
    assert info["calibration"] == "subject" and info["old_finetuned"] is False and not info.get("old_layers")
    assert info["bridge_config"]["calibration"] == "subject"
    n_test = int((np.isin(toy["groups"], np.unique(toy["groups"])[4:])).sum())
    assert sum(map(sum, read_metrics(run.path)["bridge"]["test"]["confusion"])) == n_test
