"""Training recipes: a :class:`~emospec.config.TrainConfig` from a name or a file, plus overrides.

``emospec evaluate --recipe NAME|FILE --set KEY=VALUE ...`` goes through
:func:`train_config_from`, so a recipe ablation is one JSON file or a few
``--set`` flags, and a run's own ``config.json`` replays its recipe.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

from .config import TrainConfig, from_dict, load_json
from .errors import ConfigError

__all__ = ["RECIPES", "train_config_from"]

RECIPES = ("demo", "default")
"""Named recipes: ``demo`` (:data:`emospec.demo.DEMO_TRAIN`) and ``default`` (``TrainConfig()``)."""


def _parse_value(field_type: str, key: str, text: str):
    if field_type in ("bool", bool):
        low = text.strip().lower()
        if low not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"{key}={text!r}: expected true or false")
        return low in ("1", "true", "yes")
    for kind, conv in (("int", int), ("float", float)):
        if field_type in (kind, conv):
            try:
                return conv(text)
            except ValueError as e:
                raise ConfigError(f"{key}={text!r}: expected {kind}") from e
    return text


def train_config_from(recipe: str = "demo", overrides: Optional[Mapping[str, object]] = None) -> TrainConfig:
    """A :class:`TrainConfig` from a recipe name or file, plus overrides.

    ``recipe`` is ``"demo"`` (:data:`emospec.demo.DEMO_TRAIN`), ``"default"``
    (``TrainConfig()``), or a JSON file: a TrainConfig object (missing keys
    default) or a run's ``config.json`` (its ``"train"`` part). ``overrides``
    maps field names to values or to strings (``"true"``, ``"3"``), as from
    ``--set KEY=VALUE``; unknown names are a :class:`ConfigError`.
    """
    from .demo import DEMO_TRAIN

    if recipe == RECIPES[0]:
        cfg = DEMO_TRAIN
    elif recipe == RECIPES[1]:
        cfg = TrainConfig()
    else:
        data = load_json(recipe)
        if isinstance(data, dict) and isinstance(data.get("train"), dict):
            data = data["train"]
        cfg = from_dict(TrainConfig, data, source=str(recipe))
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    changes = {}
    for key, value in (overrides or {}).items():
        if key not in types:
            raise ConfigError(f"unknown TrainConfig key {key!r}; known: {', '.join(types)}")
        changes[key] = _parse_value(types[key], key, value) if isinstance(value, str) else value
    try:
        return dataclasses.replace(cfg, **changes)
    except TypeError as e:
        raise ConfigError(f"TrainConfig: {e}") from e
