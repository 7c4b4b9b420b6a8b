"""Recordings, readers, manifests, pairing and windowing."""
