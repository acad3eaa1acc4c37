"""The emospec exception hierarchy.

::

    EmospecError                 base of everything emospec raises on purpose
    ├── ConfigError              a config value or key is invalid
    ├── AudioError               a file cannot be decoded / resampled / is not audio
    ├── FeatureError             features cannot be computed (e.g. empty waveform)
    ├── DataError                a corpus, manifest or split is unusable
    ├── CheckpointError          a saved model is missing, corrupt or incompatible
    ├── ExportError              an ONNX export failed or disagrees with the torch model
    └── ApiError                 an HTTP request is refused (carries ``status``; answered as JSON)

Every message names the file (where there is one) and the cause in one line,
e.g. ``AudioError("clip.wav: not a sound file (Format not recognised)")``.
This module imports nothing from emospec.
"""

from __future__ import annotations

__all__ = [
    "EmospecError",
    "ConfigError",
    "AudioError",
    "FeatureError",
    "DataError",
    "CheckpointError",
    "ExportError",
    "ApiError",
]


class EmospecError(Exception):
    """Base class for all errors raised deliberately by emospec."""


class ConfigError(EmospecError, ValueError):
    """A configuration value or key is invalid."""


class AudioError(EmospecError):
    """An audio file or waveform cannot be read or is not usable audio."""


class FeatureError(EmospecError, ValueError):
    """Features cannot be computed from the given input."""


class DataError(EmospecError):
    """A corpus, manifest or split cannot be used (empty, one class, missing files...)."""


class CheckpointError(EmospecError):
    """A saved model or checkpoint is missing, corrupt or incompatible."""


class ExportError(EmospecError):
    """An export failed or its ONNX file disagrees with the torch model."""


class ApiError(EmospecError):
    """An error answered as JSON ``{"error": short reason, "detail": one line}`` with ``status``.

    Raised by :mod:`emospec.serve`; ``status`` is the HTTP status code (e.g. 413, 422).
    """

    def __init__(self, status: int, error: str, detail: str = ""):
        super().__init__(f"{error}: {detail}" if detail else error)
        self.status = int(status)
        self.error = error
        self.detail = detail
