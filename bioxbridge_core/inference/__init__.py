"""Inference on the new modality only."""

from .predict import predict_recording, predict_windows

__all__ = ["predict_recording", "predict_windows"]
