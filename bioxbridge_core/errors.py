"""One exception family for everything a user can get wrong.

Every error also subclasses the matching built-in, so callers may catch
``ValueError`` or ``KeyError`` as usual. The app shows any ``BioXError`` as a
readable message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BioXError(Exception):
    """Root of all errors raised on purpose by bioxbridge_core."""


class RecordingError(BioXError, ValueError):
    """A file, channel or sampling rate cannot be used (names the file and channel)."""


class ManifestError(BioXError, ValueError):
    """A dataset manifest is malformed (missing column, missing file, subject in two splits...)."""


class WindowingError(BioXError, ValueError):
    """Recordings cannot be paired or windowed as asked (no overlap, too short, empty class...)."""


class ConfigError(BioXError, ValueError):
    """A setting has a value outside what is allowed."""


class EncoderError(BioXError, ValueError):
    """An encoder cannot be built, loaded or fed the given input."""


class LayerNotFoundError(BioXError, KeyError):
    """A position (layer) name is not one of the encoder's discovered positions."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class NotFittedError(BioXError, RuntimeError):
    """An estimator was used before ``fit``."""


class RunError(BioXError, RuntimeError):
    """A saved run is missing, incomplete or from an incompatible version."""


class StopRequested(BioXError, RuntimeError):
    """Raised inside a training loop when the user asked it to stop."""
