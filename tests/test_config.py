"""Configs: frozen, validated, JSON round trip, unknown keys rejected; the public API."""

from __future__ import annotations

import dataclasses

import pytest

import emospec
from emospec.config import FeatureConfig, ModelConfig, TrainConfig, from_dict, to_dict
from emospec.errors import ConfigError
from emospec.files import load_json, save_json


def test_round_trip_and_frozen(tmp_path):
    cfg = FeatureConfig(n_mels=64)
    save_json(tmp_path / "c.json", cfg)
    assert from_dict(FeatureConfig, load_json(tmp_path / "c.json")) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_mels = 3  # type: ignore[misc]


def test_unknown_key_rejected():
    with pytest.raises(ConfigError, match="n_melz"):
        from_dict(FeatureConfig, {**to_dict(FeatureConfig()), "n_melz": 3}, source="x.json")


@pytest.mark.parametrize("cls, bad", [(FeatureConfig, {"n_fft": 100}), (FeatureConfig, {"fmax_hz": 9000.0}),
                                      (FeatureConfig, {"trim_db": 0.0}), (FeatureConfig, {"trim_db": -10.0}),
                                      (ModelConfig, {"n_classes": 1}), (TrainConfig, {"optimizer": "adam"}),
                                      (TrainConfig, {"epochs": 0})])
def test_invalid_values(cls, bad):
    with pytest.raises(ConfigError):
        cls(**bad)


def test_bad_json_names_the_file(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json"):
        load_json(p)


def test_public_api_is_exported():
    for name in emospec.__all__:
        assert hasattr(emospec, name), name
    assert {"load", "Recognizer", "FeatureConfig", "EmospecError", "AudioError"} <= set(emospec.__all__)
