"""Models page options: per-subject calibration and fine-tuning the old encoder, carried into the bridge run.

The committed CinC 2015 fixtures (ECG lead II + PLETH, 6 records) as a small dataset; the bridge job's start is
replaced by a recorder, so no subprocess runs (the slow test runs the job itself in-process, 1 epoch).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pages import _app, _problems, manifest  # noqa: E402,F401 - the fixture is used by name

POSITIONS = {"read": "layer2.0", "write": "blocks.4"}


@pytest.fixture
def started(monkeypatch):
    """Record bridge runs instead of starting their worker process."""
    import bioxbridge_core.jobs as jobs

    runs: list[Path] = []
    monkeypatch.setattr(jobs, "start_job", lambda run_dir, **kw: runs.append(Path(run_dir)) or 0)
    return runs


def _train_head(at, *, calibration=None, fine_tune=False, epochs=1, lr=None):
    at.switch_page("pages/models.py").run()
    assert not _problems(at), _problems(at)
    if calibration:
        at.selectbox(key="w_models_calibration").set_value(calibration).run()
    if fine_tune:
        at.checkbox(key="w_models_finetune").check().run()
        at.number_input(key="w_models_ft_epochs").set_value(epochs).run()
        if lr is not None:
            at.number_input(key="w_models_ft_lr").set_value(lr).run()
    at.button(key="w_models_train_head").click().run()
    assert not _problems(at), _problems(at)
    return at


def _start_bridge(at, started):
    at.switch_page("pages/train.py").run()
    assert not _problems(at), _problems(at)
    at.number_input(key="w_train_epochs").set_value(1).run()
    at.button(key="w_train_start").click().run()
    assert not _problems(at), _problems(at)
    assert len(started) == 1
    return started[0], json.loads((started[0] / "config.json").read_text())


def test_options_default_to_the_pipelines_and_key_the_head(tmp_path, manifest):
    from bioxbridge_core.pipeline import PipelineConfig

    at = _app(tmp_path, data_source="server", manifest_path=str(manifest))
    at.switch_page("pages/models.py").run()
    assert not _problems(at), _problems(at)
    d = PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg")
    assert at.selectbox(key="w_models_calibration").value == d.calibration
    assert at.checkbox(key="w_models_finetune").value is d.old_finetune
    assert at.number_input(key="w_models_ft_epochs").value == d.old_finetune_epochs
    assert at.number_input(key="w_models_ft_lr").value == pytest.approx(d.old_finetune_lr)
    assert "own unlabelled windows" in at.selectbox(key="w_models_calibration").help

    from ui import actions

    base = {"manifest_path": str(manifest), "old_encoder": "builtin:ecg", "new_encoder": "builtin:ppg",
            "window_s": None, "step_s": None}
    folders = {actions.head_dir({**base, "head": h}) for h in (
        None, {"calibration": "subject"}, {"fine_tune": True}, {"fine_tune": True, "epochs": 2})}
    assert len(folders) == 4  # every different choice is a different head
    # settings that only matter when fine-tuning do not split frozen heads
    assert actions.head_dir({**base, "head": {"epochs": 9}}) == actions.head_dir(base)


def test_subject_calibration_reaches_the_head_report_and_the_bridge_run(tmp_path, manifest, started):
    at = _app(tmp_path, data_source="server", manifest_path=str(manifest), positions=POSITIONS)
    _train_head(at, calibration="subject")
    summary = [m.value for m in at.markdown if "Per-subject calibration" in m.value]
    assert summary and "**on**" in summary[0] and "**frozen**" in summary[0], summary
    assert any(m.label == "Balanced accuracy" for m in at.metric)
    run_dir, cfg = _start_bridge(at, started)
    assert cfg["bridge"]["calibration"] == "subject"
    assert cfg["old_model"] == {"calibration": "subject", "fine_tuned": False}
    assert "old_encoder_state" not in cfg
    head_meta = json.loads(Path(cfg["head"]).with_suffix(".json").read_text())
    assert head_meta["calibration"] == "subject"

    # the job trains (1 epoch, in this process) and bundles the calibration; Predict says what it means
    from bioxbridge_core.data.readers import read_recording, write_recording
    from bioxbridge_core.jobs import run_worker
    from bioxbridge_core.models.subject_norm import MIN_WINDOWS
    from bioxbridge_core.runs import read_status

    assert run_worker(run_dir) == 0, read_status(run_dir)
    assert json.loads((run_dir / "bundle.json").read_text())["calibration"] == "subject"
    at.switch_page("pages/predict.py").run()
    assert not _problems(at), _problems(at)
    assert any("each uploaded recording is standardised with its own windows" in i.value for i in at.info)
    window_s = json.loads((run_dir / "bundle.json").read_text())["window_s"]
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "cinc2015_vt"
    rec = read_recording(fixtures / "v143l.hea", channels=["PLETH"]).crop(0, window_s * (MIN_WINDOWS - 1) + 1)
    short = write_recording(rec, tmp_path / "short.npz")
    at.file_uploader(key="w_predict_upload").set_value(("short.npz", short.read_bytes(), "application/octet-stream"))
    at.run()
    at.button(key="w_predict_go").click().run()
    assert not _problems(at), _problems(at)
    n = int(next(m.value for m in at.metric if m.label == "Windows"))
    assert 0 < n < MIN_WINDOWS
    assert any("Too few windows for per-subject calibration" in w.value and f"short.npz ({n})" in w.value
               for w in at.warning), [w.value for w in at.warning]


def test_auto_calibration_says_what_it_chose_and_why(tmp_path, manifest):
    at = _app(tmp_path, data_source="server", manifest_path=str(manifest))
    _train_head(at, calibration="auto")
    summary = [m.value for m in at.markdown if "Per-subject calibration" in m.value]
    assert summary and "(auto: " in summary[0], summary
    reason = summary[0].split("(auto: ", 1)[1]
    assert reason.strip(") ") and "no reason recorded" not in reason


def test_fine_tuned_encoder_is_saved_and_used_by_the_bridge_job(tmp_path, manifest, started):
    import torch

    from bioxbridge_core._io import load_safetensors
    from bioxbridge_core.jobs import run_worker
    from bioxbridge_core.models.registry import load_encoder
    from bioxbridge_core.runs import read_status

    at = _app(tmp_path, data_source="server", manifest_path=str(manifest), positions=POSITIONS)
    _train_head(at, calibration="none", fine_tune=True, epochs=1, lr=1e-3)
    summary = [m.value for m in at.markdown if "Per-subject calibration" in m.value]
    assert summary and "**fine-tuned**" in summary[0] and "1 epochs" in summary[0], summary
    run_dir, cfg = _start_bridge(at, started)
    state = Path(cfg["old_encoder_state"])
    assert state.is_file() and state.parent == Path(cfg["head"]).parent
    tuned = load_safetensors(state)
    frozen = load_encoder("builtin:ecg", device="cpu").state_dict()
    assert set(tuned) == set(frozen)
    assert any(not torch.equal(tuned[k], frozen[k]) for k in frozen), "fine-tuning changed nothing"
    assert cfg["old_model"]["fine_tuned"] is True and cfg["bridge"]["calibration"] == "none"

    assert run_worker(run_dir) == 0, read_status(run_dir)  # the job itself, in this process (1 epoch)
    info = json.loads((run_dir / "bundle.json").read_text())
    assert info["old_finetuned"] is True and info["calibration"] == "none"
    layers = load_safetensors(run_dir / info["old_layers"])
    write = cfg["positions"]["write"]
    assert layers and all(k.split(".")[0] in {"blocks", "norm"} for k in layers)
    assert all(torch.equal(v, tuned[k]) for k, v in layers.items()), f"bundle layers from {write} are not fine-tuned"
