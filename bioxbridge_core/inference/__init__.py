"""Inference on the new modality only."""

from .predict import calibration_of, predict_logits, predict_recording, predict_windows

__all__ = ["calibration_of", "predict_logits", "predict_recording", "predict_windows"]
