"""The headless pipeline's old-model options: fine-tuning, per-subject calibration, the assessment.

All on the small offline demo (10 subjects x 60 s) with 1-2 epochs: these check wiring, not accuracy
(the demo's accuracy is checked by the slow test at the end).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bioxbridge_core.errors import ConfigError
from bioxbridge_core.pipeline import PipelineConfig, assess, prepare_data, run_pipeline

FAST = {"epochs": 2, "batch_size": 16}


def test_config_validates_and_round_trips():
    cfg = PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", calibration="subject",
                         old_finetune=True, old_finetune_epochs=2)
    assert cfg.bridge["calibration"] == "subject" and cfg.bridge["loss_on"] == "pooled"
    again = PipelineConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ConfigError, match="calibration"):
        PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", calibration="per-window")
    with pytest.raises(ConfigError, match="head"):
        PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", old_finetune=True, head="h.safetensors")
    with pytest.raises(ConfigError, match="differs"):
        PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", bridge={"calibration": "subject"})


def test_finetuned_old_encoder_is_what_the_bridge_and_the_bundle_use(tmp_path, monkeypatch):
    from bioxbridge_core.models.heads import stage_state
    from bioxbridge_core.models.registry import load_encoder
    from bioxbridge_core.runs.bundle import OLD_LAYERS, load_bundle
    from bioxbridge_core.training import trainer as trainer_mod

    seen = {}
    real_fit = trainer_mod.BridgeTrainer.fit

    def spy(self, old_encoder, new_encoder, *a, **k):
        seen["old_state"] = {n: v.clone() for n, v in old_encoder.state_dict().items()}
        return real_fit(self, old_encoder, new_encoder, *a, **k)

    monkeypatch.setattr(trainer_mod.BridgeTrainer, "fit", spy)
    cfg = PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", calibration="subject",
                         old_finetune=True, old_finetune_epochs=1, old_finetune_lr=1e-3, bridge=FAST,
                         assess_old=False)
    out = tmp_path / "run"
    report = run_pipeline(cfg, out)
    saved_cfg = json.loads((out / "pipeline_config.json").read_text())
    assert saved_cfg["old_finetune"] is True and saved_cfg["calibration"] == "subject"
    assert report["old_model"]["fine_tuned"] and report["calibration"] == "subject"

    # the bridge was trained against the fine-tuned encoder, not the registry's pre-trained one
    pretrained = load_encoder("builtin:ecg", device="cpu").state_dict()
    changed = [n for n, v in seen["old_state"].items() if v.is_floating_point() and not torch.equal(v, pretrained[n])]
    assert changed

    # the bundle keeps only the fine-tuned stages from the write position on, and loading applies them
    info = json.loads((out / "bundle.json").read_text())
    assert info["old_layers"] == OLD_LAYERS and info["calibration"] == "subject"
    model = load_bundle(out, device="cpu")
    l_idx = model.old_encoder.position(info["old_position"]).index
    for st in list(model.old_encoder.stages())[l_idx:]:
        for k, v in st.module.state_dict().items():
            assert torch.equal(v, seen["old_state"][_param_name(model.old_encoder, st.module, k)])
    stored = stage_state(model.old_encoder, info["old_position"])
    assert all(not k.startswith("embed.") for k in stored)  # stages before l are not stored

    # the reloaded model reproduces the run's own test predictions (same calibration per subject)
    data = prepare_data(cfg)
    test = data.windows.split("test")
    proba = model.predict_proba(test.x_new, subjects=test.subjects)
    lab = test.labels() >= 0
    from bioxbridge_core.metrics import classification_metrics

    bacc = classification_metrics(test.labels()[lab], proba.argmax(1)[lab], proba.shape[1])["balanced_accuracy"]
    assert bacc == pytest.approx(report["bridge"]["metrics"]["balanced_accuracy"])


def _param_name(encoder, module, key: str) -> str:
    for name, m in encoder.named_modules():
        if m is module:
            return f"{name}.{key}" if name else key
    raise KeyError(key)


def test_assessment_scores_old_model_and_handcrafted_on_the_same_folds():
    cfg = PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", seed=1)
    res = assess(cfg, n_folds=3)
    assert res["n_folds"] == 3 and res["n_subjects"] == 3 and res["chance"] == pytest.approx(1 / 3)
    for key in ("old_model", "handcrafted"):
        r = res[key]
        assert 0.0 <= r["balanced_accuracy"] <= 1.0 and len(r["per_fold"]) == 3
        assert set(r["per_subject"]) == set(res["old_model"]["per_subject"])
        assert sum(v["n_windows"] for v in r["per_subject"].values()) == res["n_windows"]
    # the demo's classes differ in heart rate: hand-crafted HRV features find them
    assert res["handcrafted"]["balanced_accuracy"] > 0.6
    assert "Old model" in res["verdict"]
    alt = res["alternatives"]["calibration=subject"]
    assert len(alt["per_fold"]) == 3 and 0.0 <= alt["balanced_accuracy"] <= 1.0


def test_cli_run_saves_the_old_model_options(tmp_path, capsys):
    from bioxbridge_core.cli import main

    out = tmp_path / "cli"
    rc = main(["run", "--demo", "ecg-ppg", "--old", "builtin:ecg", "--new", "builtin:ppg", "--out", str(out),
               "--epochs", "1", "--patience", "3", "--no-progress", "--seed", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    verdicts = json.loads((out / "report.json").read_text())["verdicts"]
    assert list(verdicts) == ["old model", "alignment", "bridge"]  # one verdict per stage, stored and printed
    for stage, v in verdicts.items():
        assert f"{stage}: {v['level'].upper()} — {v['headline']}" in printed
    bridge = json.loads((out / "report.json").read_text())["bridge"]
    assert 0.0 < bridge["agreement_chance"] <= 1.0 and bridge["n_val"] > 0
    cfg = json.loads((out / "pipeline_config.json").read_text())
    assert cfg["calibration"] == "auto" and cfg["bridge"]["patience"] == 3 and cfg["assess_old"] is True
    assessment = json.loads((out / "assessment.json").read_text())
    report = json.loads((out / "report.json").read_text())
    # "auto" was decided on train by the assessment's own comparison, and the whole run follows it
    choice = assessment["calibration_choice"]
    assert choice["requested"] == "auto" and choice["chosen"] in ("none", "subject")
    assert report["calibration"] == choice["chosen"] == json.loads((out / "bundle.json").read_text())["calibration"]
    assert set(assessment["alternatives"]) == {"calibration=" + ("none" if choice["chosen"] == "subject" else "subject")}
    assert assessment["calibration"] == choice["chosen"]
    assert report["old_model"]["assessment"]["old_model"]["balanced_accuracy"] == pytest.approx(
        assessment["old_model"]["balanced_accuracy"])


@pytest.mark.slow
def test_bridge_beats_chance_on_the_full_demo(tmp_path, monkeypatch):
    """The demo users see first, with the defaults: the bridge transfers and its loss falls."""
    monkeypatch.setenv("BIOXBRIDGE_DEMO_SIZE", "full")
    cfg = PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", assess_old=False)
    report = run_pipeline(cfg, tmp_path / "demo")  # KD left out to keep CI short (README: bridge vs KD, 3 seeds)
    b = report["bridge"]
    chance = max(1 / 3, report["chance"]["metrics"]["balanced_accuracy"])
    assert report["n_windows"]["pair"] >= 200
    assert b["metrics"]["balanced_accuracy"] >= chance + 0.3, b
    assert b["best_val_loss"] < 0.8 * b["initial_val_loss"], b
    hist = json.loads((tmp_path / "demo" / "history.json").read_text())
    assert np.mean([r["val_loss"] for r in hist[-3:]]) < hist[0]["val_loss"]


def _alignment(cka_row, sd):
    from bioxbridge_core.alignment.result import AlignmentResult

    n_old = len(cka_row)
    z = np.zeros((1, n_old))
    old = [f"blocks.{j}" for j in range(n_old)]
    j = int(np.argmax(cka_row))
    return AlignmentResult(new_positions=["layer1"], old_positions=old, probe_f1=np.array([0.8]),
                           probe_f1_std=np.array([0.1]), cka=np.array([cka_row], dtype=float), cka_biased=z,
                           null_cka=z, null_cka_std=np.full((1, n_old), sd), self_new=np.eye(1), self_old=np.eye(n_old),
                           selected={"new_position": "layer1", "old_position": old[j]}, ranked=[], n_pairs=100,
                           probe_cv="")


def test_write_ties_within_noise_go_to_the_later_cheaper_position():
    from bioxbridge_core.pipeline import prefer_cheaper_write

    # blocks.1 is best, blocks.3 is within 2 SDs of it, blocks.2 and blocks.4 are not
    al, note = prefer_cheaper_write(_alignment([0.10, 0.30, 0.20, 0.29, 0.05], sd=0.01))
    assert al.selected["old_position"] == "blocks.3" and "within" in note
    # clear winner: unchanged
    al, note = prefer_cheaper_write(_alignment([0.10, 0.30, 0.20, 0.25, 0.05], sd=0.01))
    assert al.selected["old_position"] == "blocks.1" and note is None


def test_auto_calibration_needs_a_clear_cv_gain():
    from bioxbridge_core.models.assess import AUTO_MARGIN, choose_calibration

    def result(none, sub):
        return {"calibration": "none", "old_model": {"balanced_accuracy": none},
                "alternatives": {"calibration=subject": {"balanced_accuracy": sub}}}

    assert choose_calibration(result(0.70, 0.70 + AUTO_MARGIN + 0.01))[0] == "subject"
    assert choose_calibration(result(0.70, 0.70 + AUTO_MARGIN / 2))[0] == "none"
    assert choose_calibration({"calibration": "subject", "old_model": {"balanced_accuracy": 0.9}})[0] == "none"
