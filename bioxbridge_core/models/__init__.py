"""Encoder adapters, built-in encoders, the registry and the old model's task head."""
