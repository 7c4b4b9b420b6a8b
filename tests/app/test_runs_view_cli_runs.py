"""The Runs page lists the same folders as ``runs``: app runs and ``run --out`` folders, nothing else."""

import json

from bioxbridge_core.runs.store import RunStore
from ui.runs_view import list_runs


def test_runs_page_lists_run_out_folders_and_skips_other_folders(tmp_path):
    app = RunStore(tmp_path).create("bridge", {})
    done = tmp_path / "eeg2ecg"
    done.mkdir()
    (done / "pipeline_config.json").write_text("{}")
    (done / "report.json").write_text(json.dumps({"bridge": {"metrics": {"balanced_accuracy": 0.8114, "n": 24}}}))
    half = tmp_path / "half"
    half.mkdir()
    (half / "pipeline_config.json").write_text("{}")
    (tmp_path / "photos").mkdir()
    runs = {r.run_id: r for r in list_runs(tmp_path)}
    assert set(runs) == {app.id, "eeg2ecg", "half"}
    assert runs["eeg2ecg"].state == "completed" and runs["eeg2ecg"].headline() == "test BAcc 0.811"
    assert runs["half"].state == "failed" and not runs["half"].can_resume
