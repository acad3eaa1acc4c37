"""The configs of saved models: fields a model predates read as what it was trained with.

A checkpoint, an ONNX file or a run summary describes its model with the
config dataclasses of :mod:`emospec.config` as they were when it was saved.
A field added later must not take today's default there: a model trained
before ``width`` existed had AlexNet's full channels, one trained before
``trim_db`` existed kept every frame. :func:`saved_model_config` and
:func:`saved_feature_config` are :func:`emospec.config.from_dict` with those
fields filled in; recipe files and replayed ``config.json`` files, which
describe what to train *now*, go through ``from_dict`` and take today's
defaults.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .config import FeatureConfig, ModelConfig, from_dict

__all__ = ["saved_feature_config", "saved_model_config", "TRIM_BEFORE_IT_WAS_SAVED", "WIDTH_BEFORE_IT_WAS_SAVED"]


TRIM_BEFORE_IT_WAS_SAVED: Optional[float] = None
"""The ``FeatureConfig.trim_db`` of features described without one: every model saved before ``trim_db`` existed
(session 33) kept every frame, whatever today's default."""

WIDTH_BEFORE_IT_WAS_SAVED = 1.0
"""The ``ModelConfig.width`` of a model described without one: every model saved before ``width`` existed (session 30)
had AlexNet's full channels, whatever today's default."""


def saved_model_config(data: Mapping[str, Any], *, source: str = "config") -> ModelConfig:
    """The :class:`ModelConfig` of a saved model (a checkpoint's or a run's ``config.json``).

    Like :func:`from_dict`, except that a description without ``width`` reads
    as :data:`WIDTH_BEFORE_IT_WAS_SAVED` (1.0), the width it was trained at,
    not as today's default (0.5): older checkpoints, the bundled model's
    among them, rebuild at the size of their weights.
    """
    if isinstance(data, Mapping) and "width" not in data:
        data = {**data, "width": WIDTH_BEFORE_IT_WAS_SAVED}
    return from_dict(ModelConfig, data, source=source)


def saved_feature_config(data: Mapping[str, Any], *, source: str = "config") -> FeatureConfig:
    """The :class:`FeatureConfig` a saved model was trained with (a checkpoint's, an ONNX file's or a run's).

    Like :func:`from_dict`, except that a description without ``trim_db``
    reads as :data:`TRIM_BEFORE_IT_WAS_SAVED` (None: no trimming), what it
    was trained on, not as today's default (40 dB): older checkpoints, the
    bundled model's among them, see the frames they were trained on.
    """
    if isinstance(data, Mapping) and "trim_db" not in data:
        data = {**data, "trim_db": TRIM_BEFORE_IT_WAS_SAVED}
    return from_dict(FeatureConfig, data, source=source)
