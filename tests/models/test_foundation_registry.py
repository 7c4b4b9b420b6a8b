"""The published-model adapters are listed with their contracts and what file to point at."""

from __future__ import annotations

import argparse
import json

import pytest

from bioxbridge_core.models import registry

FOUNDATION = {"labram": ("EEG", 200.0, 19), "biot": ("EEG", 200.0, 18), "cbramod": ("EEG", 200.0, 19),
              "papagei": ("PPG", 125.0, 1), "hubert-ecg": ("ECG", 100.0, 12)}


@pytest.mark.parametrize("prefix", sorted(FOUNDATION))
def test_listed_with_contract_without_a_checkpoint(prefix):
    rows = {r["name"]: r for r in registry.list_encoders()}
    row = rows[f"{prefix}:<path>"]
    modality, sfreq, n_chans = FOUNDATION[prefix]
    assert (row["modality"], row["sampling_rate"], row["n_chans"]) == (modality, sfreq, n_chans)
    assert row["spec"]["sfreq"] == sfreq and row["spec"]["window_s"] == row["window_s"]
    assert row["checkpoint"] and row["description"] and row["kind"] == "adapter"
    if prefix != "hubert-ecg":
        assert row["params"] > 1_000_000 and row["spec"]["max_window_s"] > row["spec"]["min_window_s"]
        assert row["available"] is True  # no optional package needed


def test_cli_json_lists_all_adapters(capsys):
    from bioxbridge_core.cli import models_cmd

    assert models_cmd.run(argparse.Namespace(json=True)) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {f"{p}:<path>" for p in FOUNDATION} <= names
    labram = next(r for r in rows if r["name"] == "labram:<path>")
    assert "labram-base.pth" in labram["checkpoint"] and labram["spec"]["units"] == "uV"


def test_unknown_adapter_suggests_the_published_names():
    with pytest.raises(Exception, match="labram"):
        registry.load_encoder("labrm:/x.pth", device="cpu")
