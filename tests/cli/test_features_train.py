"""``features`` and ``train`` end to end on the offline demo (in this process, through the CLI's ``main``)."""

from __future__ import annotations

import json

import pytest

from bioxbridge_core.cli import main


@pytest.fixture(autouse=True)
def _one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)


@pytest.mark.slow
def test_features_then_train_from_the_shards_and_resume(tmp_path, capsys):
    common = ["--demo", "ecg-ppg", "--old", "builtin:ecg", "--new", "builtin:ppg", "--device", "cpu"]
    feats = tmp_path / "feats"
    assert main(["features", *common, "--positions", "layer4.0:blocks.4", "--shard", "0/1", "--out", str(feats),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["shard"] == "0/1" and summary["n_windows"] > 0 and not summary["skipped"]
    assert main(["features", *common, "--positions", "layer4.0:blocks.4", "--out", str(feats)]) == 0
    assert "already complete" in capsys.readouterr().out

    run = tmp_path / "run"
    args = ["train", *common, "--new-position", "layer4.0", "--old-position", "blocks.4", "--features", str(feats),
            "--epochs", "2", "--prototypes", "8", "--out", str(run), "--no-progress", "--json"]
    assert main(args) == 0
    result = json.loads((run / "train.json").read_text())
    assert result["processes"] == 1 and result["bridge"]["epochs_run"] == 2
    assert 0 <= result["bridge"]["metrics"]["balanced_accuracy"] <= 1
    for name in ("bridge.safetensors", "head.safetensors", "bundle.json", "history.json", "old_head.safetensors"):
        assert (run / name).is_file(), name
    assert main(args) == 0  # the same command again: resumes from the finished checkpoint
    assert json.loads((run / "train.json").read_text())["bridge"]["resumed_from"] == 2
    capsys.readouterr()

    assert main(["train", *common, "--out", str(tmp_path / "x")]) == 2
    assert "--alignment DIR" in capsys.readouterr().err
    assert main(["features", *common, "--shard", "2/2", "--out", str(feats)]) == 2
    assert "I/N" in capsys.readouterr().err
