"""Training recipes: features, model and training configs under one name.

A :class:`Recipe` is everything that decides what a trained model is, apart
from the data: the :class:`~emospec.config.FeatureConfig`, the
:class:`~emospec.config.ModelConfig` (its ``n_classes`` and ``n_mels`` are
filled in from the labels and features when training) and the
:class:`~emospec.config.TrainConfig`. ``emospec train|evaluate|demo
--recipe NAME|FILE --set KEY=VALUE ...`` go through :func:`recipe_from`, so
an ablation is a named recipe plus a few ``--set`` flags, and a run's own
``config.json`` replays its recipe.

Named recipes (:data:`RECIPES`):

* ``default``: the config dataclasses' own defaults, ``Recipe()``, so the
  Python API and ``--recipe default`` are one model. It is the first
  attempt's best row (``bn+spk+floor@30`` of ``benchmarks/ablate.py``)
  trained to convergence, at the budget that ``benchmarks/budget.py`` chose
  on validation speakers (row ``e100``): 64 mel bands floored 60 dB below
  each clip's peak, per-speaker standardisation, BatchNorm, half of
  AlexNet's conv channels (``width=0.5``, three times faster on a CPU,
  as accurate in-corpus, session 31), leading and trailing frames more
  than 40 dB below each clip's loudest trimmed (``trim_db=40``), class
  weights, 1 s crops, AdamW one-cycle (peak lr 2e-3) for 100 epochs keeping the best
  validation epoch, bf16 autocast, and BatchNorm statistics re-estimated in
  float32 on 10 batches of each epoch's crops before validation
  (``precise_bn``; without it the running averages that training leaves
  made the speaker split's kept model miss 37 % of its own *sad* training
  clips; in-corpus it gains, RAVDESS → EMOVO it loses, see ``robust``). ``emospec train`` and ``emospec evaluate``
  use it; to change the default, change the defaults
  in :mod:`emospec.config`.
* ``paper``: the paper's method as faithfully as it is described, its
  values spelled out rather than taken from the defaults (AlexNet's full
  channels with LRN and no BatchNorm, global standardisation, 128 mel bands without a floor, no
  augmentation, no class weights; the paper gives no optimiser, so AdamW
  1e-3 with a cosine schedule, 3 s crops, 30 epochs, early stopping on
  held-out speakers with a patience of 8, ``amp="auto"``).
* ``demo``: ``default`` under the demo's name (``emospec demo``).
* ``robust``: ``default`` as it was before session 34 (every frame kept,
  2 s crops) at AlexNet's full width with ``stats_copies=2`` (each training clip also
  standardised with two emotion-skewed subsets of its speaker's clips), for
  speakers and corpora the model never heard; the bundled model's recipe.
  Chosen on leave-one-corpus-out (RAVDESS / EMOVO / nEMO); its in-corpus
  cross-validation has not been re-run, so ``default`` stays the default.
  It keeps training's running BatchNorm averages (``precise_bn=0``): with
  precise statistics its leave-one-corpus-out UA *without adaptation* rose
  on EMOVO but fell on nEMO and on the bundled model's validation speakers
  (README), and without adaptation is what it is for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from .config import FeatureConfig, ModelConfig, TrainConfig, from_dict, to_dict
from .errors import ConfigError
from .files import load_json

__all__ = ["Recipe", "RECIPES", "recipe_from", "train_config_from", "parse_overrides"]


@dataclass(frozen=True)
class Recipe:
    """Features, model and training configs, named."""

    name: str = "default"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def model_for(self, n_classes: int) -> ModelConfig:
        """The model config for ``n_classes`` outputs and these features' mel bands."""
        return dataclasses.replace(self.model, n_classes=n_classes, n_mels=self.features.n_mels)

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "feature": to_dict(self.features), "model": to_dict(self.model), "train": to_dict(self.train)}


_DEFAULT = Recipe("default")
"""The configs' defaults: row ``bn+spk+floor@30`` of ``benchmarks/ablate.py`` (the first attempt's best) trained to
convergence, row ``e100`` of ``benchmarks/budget.py`` (100 epochs), chosen by validation-speaker UA among the
budgets that do not lose cross-corpus UA, with half the channels (session 31) and, since session 34, leading and
trailing silence trimmed at 40 dB with 1-s crops (ablation row ``trim40-crop1``; see the README)."""
_PAPER = Recipe(
    "paper",
    features=FeatureConfig(n_mels=128, top_db=None, trim_db=None),
    model=ModelConfig(n_mels=128, lrn=True, batch_norm=False, norm="global", pool="grid", width=1.0),
    train=TrainConfig(epochs=30, patience=8, optimizer="adamw", lr=1e-3, schedule="cosine", crop_s=3.0,
                      class_weights=False, amp="auto"),
)
"""Ali et al. (2024) as described; each value that the default changes is set here explicitly."""
_DEMO = dataclasses.replace(_DEFAULT, name="demo")
"""The default recipe under the demo's name (it trains both demo splits in a few minutes on 2 CPU cores)."""

_ROBUST = Recipe("robust", features=FeatureConfig(trim_db=None), model=ModelConfig(width=1.0),
                 train=TrainConfig(stats_copies=2, precise_bn=0, crop_s=2.0))
"""The default plus two versions of every training clip standardised with emotion-skewed subsets of its speaker's
clips (:func:`emospec.norm.skewed_subset_versions`), without precise BatchNorm statistics, at AlexNet's full
channels (``width=1``, as the bundled model was trained before the default halved them), every frame kept and 2-s
crops (as before the default trimmed silence, session 34): the bundled model's recipe (issues #14 and #16, README)."""

RECIPES: Dict[str, Recipe] = {r.name: r for r in (_PAPER, _DEFAULT, _DEMO, _ROBUST)}
"""The named recipes: ``paper``, ``default``, ``demo``, ``robust`` (see the module docstring)."""

_PARTS = {"feature": ("features", FeatureConfig), "features": ("features", FeatureConfig), "model": ("model", ModelConfig),
          "train": ("train", TrainConfig)}


def _parse_value(field_type: Any, key: str, text: str):
    if isinstance(field_type, str) and field_type.startswith("Optional["):
        if text.strip().lower() in ("none", "null", ""):
            return None
        field_type = field_type[len("Optional["):-1]
    if field_type in ("bool", bool):
        low = text.strip().lower()
        if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError(f"{key}={text!r}: expected true or false")
        return low in ("1", "true", "yes", "on")
    for kind, conv in (("int", int), ("float", float)):
        if field_type in (kind, conv):
            try:
                return conv(text)
            except ValueError as e:
                raise ConfigError(f"{key}={text!r}: expected {kind}") from e
    return text


def parse_overrides(items) -> Dict[str, str]:
    """``["model.batch_norm=true", "lr=0.01"]`` (``--set`` flags) -> ``{"model.batch_norm": "true", "lr": "0.01"}``."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def _from_file(path: str) -> Recipe:
    data = load_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a JSON object")
    if any(k in data for k in ("train", "model", "feature", "features")):  # a Recipe or a run's config.json
        unknown = set(data) - {"name", "train", "model", "feature", "features"}
        if unknown:
            raise ConfigError(f"{path}: unknown recipe keys {sorted(unknown)}")
        model = dict(data.get("model") or {})
        return Recipe(str(data.get("name", path)),
                      from_dict(FeatureConfig, data.get("feature") or data.get("features") or {}, source=path),
                      from_dict(ModelConfig, model, source=path),
                      from_dict(TrainConfig, data.get("train") or {}, source=path))
    return Recipe(str(path), train=from_dict(TrainConfig, data, source=path))  # a bare TrainConfig


def recipe_from(recipe: str = "default", overrides: Optional[Mapping[str, object]] = None) -> Recipe:
    """A :class:`Recipe` from a name (:data:`RECIPES`) or a JSON file, plus overrides.

    A file holds a recipe (``{"train": {...}, "model": {...}, "feature": {...}}``,
    which is also a run's ``config.json``) or a bare TrainConfig object; what
    it leaves out is the default recipe's.
    ``overrides`` maps ``part.field`` (``model.batch_norm``, ``feature.n_mels``,
    ``train.lr``) or a bare TrainConfig field (``lr``) to a value or a string,
    as from ``--set KEY=VALUE``; unknown names are a :class:`ConfigError`.
    ``feature.n_mels`` also sets ``model.n_mels`` (they must match) unless
    that is overridden too.
    """
    base = RECIPES.get(recipe) or _from_file(recipe)
    changes: Dict[str, Dict[str, Any]] = {"features": {}, "model": {}, "train": {}}
    for key, value in (overrides or {}).items():
        part, _, name = key.rpartition(".")
        if (part or "train") not in _PARTS:
            raise ConfigError(f"--set {key}: unknown part {part!r}; use feature., model. or train.")
        attr, cls = _PARTS[part or "train"]
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        if name not in types:
            raise ConfigError(f"unknown {cls.__name__} key {name!r}; known: {', '.join(types)}")
        changes[attr][name] = _parse_value(types[name], key, value) if isinstance(value, str) else value
    if "n_mels" in changes["features"]:
        changes["model"].setdefault("n_mels", changes["features"]["n_mels"])
    try:
        return Recipe(base.name if not overrides else f"{base.name}+{len(overrides)} overrides",
                      dataclasses.replace(base.features, **changes["features"]),
                      dataclasses.replace(base.model, **changes["model"]),
                      dataclasses.replace(base.train, **changes["train"]))
    except TypeError as e:
        raise ConfigError(f"recipe: {e}") from e


def train_config_from(recipe: str = "default", overrides: Optional[Mapping[str, object]] = None) -> TrainConfig:
    """The :class:`TrainConfig` part of :func:`recipe_from`."""
    return recipe_from(recipe, overrides).train
