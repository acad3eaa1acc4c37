"""emospec: speech emotion recognition with 3D log-Mel spectrograms and a modified AlexNet.

The pipeline, one module per stage: :mod:`emospec.audio` (decode, resample) ->
:mod:`emospec.features` (3D log-Mel) -> :mod:`emospec.model` (EmoAlexNet) ->
:mod:`emospec.train` / :mod:`emospec.metrics` -> :mod:`emospec.cli`.
"""

from .config import FeatureConfig, ModelConfig, TrainConfig
from .errors import AudioError, CheckpointError, ConfigError, DataError, EmospecError, FeatureError
from .predict import Prediction, Recognizer, load
from .versions import __version__

__all__ = [
    "__version__",
    "load",
    "Recognizer",
    "Prediction",
    "FeatureConfig",
    "ModelConfig",
    "TrainConfig",
    "EmospecError",
    "AudioError",
    "ConfigError",
    "FeatureError",
    "DataError",
    "CheckpointError",
]
