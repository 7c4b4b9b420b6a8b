"""BioX-Bridge Studio engine: move a working biosignal model to a new modality without labels.

Importable without Streamlit. Public names are listed in ``__all__`` and
loaded lazily so ``import bioxbridge_core`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_PUBLIC = {
    "BioXError": ".errors", "RecordingError": ".errors", "ManifestError": ".errors",
    "WindowingError": ".errors", "ConfigError": ".errors", "EncoderError": ".errors",
    "LayerNotFoundError": ".errors", "NotFittedError": ".errors", "RunError": ".errors",
    "StopRequested": ".errors",
    "SignalSpec": ".spec",
    "Recording": ".data.recording", "Annotation": ".data.recording", "infer_ch_type": ".data.recording",
    "PairedWindows": ".data.windows",
    "EncoderAdapter": ".models.base", "Position": ".models.base", "Stage": ".models.base",
    "resolve_device": ".device",
    # data
    "read_recording": ".data.readers", "read_recording_bytes": ".data.readers", "write_recording": ".data.readers",
    "read_header": ".data.readers", "RecordingHeader": ".data.readers", "start_offset_s": ".data.recording",
    "read_uploads": ".data.uploads", "stage_uploads": ".data.uploads", "UploadResult": ".data.uploads",
    "match_channels": ".data.channels", "parse_derivation": ".data.channels", "eeg_position": ".data.channels",
    "normalise_unit": ".data.units", "unit_scale": ".data.units",
    "Manifest": ".data.manifest", "read_manifest": ".data.manifest", "write_manifest": ".data.manifest",
    "Preprocessing": ".data.preprocess",
    "make_paired_windows": ".data.pairing", "window_recording": ".data.pairing", "RecordingWindows": ".data.pairing",
    "demo_manifest": ".data.demo", "eegmat_manifest": ".data.recipes", "cinc2015_manifest": ".data.recipes",
    "stress_predict_manifest": ".data.recipes", "Span": ".data.events", "read_events": ".data.events",
    "events_to_spans": ".data.events",
    "assign_splits": ".data.splits", "grouped_folds": ".data.splits",
    "manifest_from_files": ".data.uploads", "UploadManifest": ".data.uploads", "read_label_table": ".data.uploads",
    "DEFAULT_SUBJECT_PATTERN": ".data.uploads",
    # models
    "load_encoder": ".models.registry", "encoder_spec": ".models.registry", "list_encoders": ".models.registry",
    "register_adapter": ".models.registry", "GenericAdapter": ".models.adapters.generic",
    "TaskHead": ".models.heads", "train_task_head": ".models.heads", "pseudo_labels": ".models.heads",
    "evaluate_head": ".models.heads",
    "classification_metrics": ".metrics", "chance_metrics": ".metrics",
    # alignment
    "align": ".alignment", "AlignmentResult": ".alignment", "collect_features": ".alignment",
    "linear_cka": ".alignment", "cka_matrix": ".alignment", "cka_maps": ".alignment",
    "shuffled_baseline": ".alignment", "probe_scores": ".alignment",
    # bridge, training, runs, inference, baselines
    "BridgeConfig": ".bridge", "Bridge": ".bridge", "BridgedModel": ".bridge",
    "BridgeTrainer": ".training",
    "RunStore": ".runs.store", "save_bundle": ".runs.bundle", "load_bundle": ".runs.bundle",
    "start_job": ".jobs", "job_state": ".jobs", "stop_job": ".jobs",
    "predict_windows": ".inference.predict", "predict_recording": ".inference.predict",
    "KDStudent": ".baselines.kd",
    "PipelineConfig": ".pipeline", "run_pipeline": ".pipeline", "check_windows": ".pipeline",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module = importlib.import_module(_PUBLIC[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'bioxbridge_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
