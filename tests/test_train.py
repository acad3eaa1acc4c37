"""emospec.train / experiment: loss falls on real clips; the run dir is complete and reloads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emospec import audio, features
from emospec.checkpoint import load_model
from emospec.config import FeatureConfig, TrainConfig
from emospec.errors import DataError
from emospec.train import fit


@pytest.fixture(scope="module")
def real_feats(ravdess_clips):
    feats = [features.extract(audio.load(p)) for p in ravdess_clips]
    labels = ["neutral", "happy", "sad", "angry"] * 2  # emotions 01, 03, 04, 05 per actor
    classes = ["neutral", "happy", "angry", "sad"]
    return feats, np.array([classes.index(l) for l in labels]), classes


def test_loss_falls_on_a_few_real_clips(real_feats, tmp_path):
    feats, y, classes = real_feats
    # 2 s of speech from each clip (frames 50-250 skip the leading silence); crop = clip, so
    # every epoch sees the same 8 inputs: one full-batch step per epoch.
    speech = [f[..., 50:250] for f in feats]
    cfg = TrainConfig(epochs=24, batch_size=8, lr=1e-4, crop_s=2.0, patience=100, seed=0, schedule="constant")
    from emospec.config import ModelConfig

    res = fit(speech, y, speech[:4], y[:4], classes, tmp_path / "run", train_config=cfg,
              model_config=ModelConfig(n_classes=4, dropout=0.0), progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[0] == pytest.approx(np.log(4), abs=0.05)  # chance at the start
    assert losses[-1] < 0.7 * losses[0], losses
    for name in ("model.pt", "checkpoint.pt", "config.json", "labels.json", "norm_stats.json", "history.json", "versions.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert json.loads((tmp_path / "run" / "labels.json").read_text()) == classes
    versions = json.loads((tmp_path / "run" / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and "git_commit" in versions
    b = load_model(tmp_path / "run")
    assert b.labels == classes and b.feature_config == FeatureConfig()
    # normalisation statistics travel with the model
    mean = torch.tensor(json.loads((tmp_path / "run" / "norm_stats.json").read_text())["mean_db"])
    assert torch.allclose(b.model.input_mean[..., 0], mean, atol=1e-4)


def test_same_seed_same_result(real_feats, tmp_path):
    feats, y, classes = real_feats
    cfg = TrainConfig(epochs=2, batch_size=4, crop_s=0.5, seed=3)
    a = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "a", train_config=cfg, progress=False)
    b = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "b", train_config=cfg, progress=False)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_resume_continues_to_the_same_end(real_feats, tmp_path, monkeypatch):
    feats, y, classes = real_feats
    cfg = TrainConfig(epochs=3, batch_size=4, crop_s=0.5, seed=1, patience=100)
    ref = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "ref", train_config=cfg, progress=False)

    # Crash right after the epoch-1 checkpoint is written (history.json is saved next).
    import emospec.train as T

    real_save_json, calls = T.save_json, {"history": 0}

    def crashing_save_json(path, obj):
        if str(path).endswith("history.json"):
            calls["history"] += 1
            if calls["history"] == 2:
                raise KeyboardInterrupt("simulated kill")
        return real_save_json(path, obj)

    monkeypatch.setattr(T, "save_json", crashing_save_json)
    with pytest.raises(KeyboardInterrupt):
        fit(feats, y, feats[:2], y[:2], classes, tmp_path / "part", train_config=cfg, progress=False)
    monkeypatch.setattr(T, "save_json", real_save_json)
    assert torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    res = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "part", train_config=cfg, progress=False, resume=True)
    assert [h["train_loss"] for h in res.history] == [h["train_loss"] for h in ref.history]
    assert [h["val_ua"] for h in res.history] == [h["val_ua"] for h in ref.history]


def test_single_class_is_a_clear_error(real_feats, tmp_path):
    feats, _, classes = real_feats
    with pytest.raises(DataError, match="single class"):
        fit(feats, np.zeros(len(feats), int), [], [], classes, tmp_path / "x", progress=False)
