"""Domain-adversarial training (``TrainConfig.adversary``): the gradient reversal, its ramp, and what
``fit`` does with a corpus or speaker classifier beside the network (8 real RAVDESS clips, 2 actors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emospec import audio, features, plots
from emospec.checkpoint import load_model
from emospec.config import TrainConfig
from emospec.epoch import DomainAdversary, adversary_ramp, grad_reverse
from emospec.errors import ConfigError
from emospec.train import fit
from test_train import _killed_after_checkpoint


@pytest.fixture(scope="module")
def clips(ravdess_clips):
    """Features, classes, labels and the actor of each of the 8 clips (4 emotions x actors 01 and 02)."""
    feats = [features.extract(audio.load(p)) for p in ravdess_clips]
    classes = ["neutral", "happy", "angry", "sad"]
    y = np.array([classes.index(c) for c in ["neutral", "happy", "sad", "angry"] * 2])
    speakers = [p.stem.split("-")[-1] for p in ravdess_clips]
    return feats, y, classes, speakers


CFG = TrainConfig(epochs=2, batch_size=4, crop_s=0.5, seed=3)


def test_grad_reverse_is_the_identity_forward_and_hands_back_minus_coeff_times_the_gradient():
    x = torch.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    w = torch.tensor([[0.5, 2.0, -1.0]])
    out = grad_reverse(x, 0.3)
    assert torch.equal(out, x)
    (out * w).sum().backward()
    assert torch.allclose(x.grad, -0.3 * w)
    assert adversary_ramp(0.0) == 0.0
    assert adversary_ramp(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.987
    assert adversary_ramp(1.0) == pytest.approx(0.99991, abs=1e-5) and adversary_ramp(3.0) == adversary_ramp(1.0)
    assert DomainAdversary(256, 5)(torch.zeros(2, 256)).shape == (2, 5)


def test_weight_zero_trains_the_very_network_of_no_adversary_and_a_weight_changes_it(clips, tmp_path):
    feats, y, classes, speakers = clips
    ref = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "none", train_config=CFG, progress=False)
    zero = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "zero", train_config=TrainConfig(
        **{**CFG.__dict__, "adversary": "speaker", "adversary_weight": 0.0}), progress=False, train_speakers=speakers)
    strong = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "strong", train_config=TrainConfig(
        **{**CFG.__dict__, "adversary": "speaker", "adversary_weight": 5.0}), progress=False, train_speakers=speakers)
    # the emotion loss, the domain head's own figures, and the reversal coefficient per epoch
    assert [h["train_loss"] for h in zero.history] == [h["train_loss"] for h in ref.history]
    a, b = ref.model.state_dict(), zero.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for h in zero.history + strong.history:
        assert 0.0 <= h["adv_acc"] <= 1.0 and h["adv_loss"] > 0
    assert [h["adv_coeff"] for h in zero.history] == [0.0, 0.0]
    # epoch 0's last step (of two) is at progress 1/4, epoch 1's at 3/4 of training
    assert [h["adv_coeff"] for h in strong.history] == pytest.approx([5.0 * adversary_ramp(0.25), 5.0 * adversary_ramp(0.75)])
    assert "adv_loss" not in ref.history[0]
    s = strong.model.state_dict()
    assert s.keys() == a.keys() and not all(torch.equal(a[k], s[k]) for k in a)
    assert plots.training_curves(strong.history, tmp_path / "curves.png").stat().st_size > 0  # with the domain accuracy
    saved = load_model(tmp_path / "strong")  # the model file holds the network alone, and names the domains
    assert saved.model.state_dict().keys() == a.keys() and saved.meta["adversary_domains"] == ["01", "02"]


def test_an_adversary_needs_two_domains_given_for_every_clip(clips, tmp_path):
    feats, y, classes, speakers = clips
    corpus = TrainConfig(**{**CFG.__dict__, "adversary": "corpus"})
    with pytest.raises(ConfigError, match="needs >= 2 corpus"):
        fit(feats, y, feats[:2], y[:2], classes, tmp_path / "one", train_config=corpus, progress=False,
            train_groups=["ravdess"] * len(feats))
    with pytest.raises(ConfigError, match="needs the speaker of every training clip"):
        fit(feats, y, feats[:2], y[:2], classes, tmp_path / "none", progress=False,
            train_config=TrainConfig(**{**CFG.__dict__, "adversary": "speaker"}))
    with pytest.raises(ConfigError, match="adversary must be one of"):
        TrainConfig(adversary="accent")
    with pytest.raises(ConfigError, match="adversary_weight"):
        TrainConfig(adversary="corpus", adversary_weight=-0.1)


def test_resume_restores_the_adversary_and_ends_where_an_unbroken_run_ends(clips, tmp_path, monkeypatch):
    feats, y, classes, speakers = clips
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 3, "adversary": "speaker", "adversary_weight": 1.0})
    ref = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "ref", train_config=cfg, progress=False, train_speakers=speakers)
    with _killed_after_checkpoint(monkeypatch, 2):
        fit(feats, y, feats[:2], y[:2], classes, tmp_path / "part", train_config=cfg, progress=False, train_speakers=speakers)
    res = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "part", train_config=cfg, progress=False, resume=True,
              train_speakers=speakers)
    for key in ("train_loss", "adv_loss", "adv_acc", "val_ua"):
        assert [h[key] for h in res.history] == [h[key] for h in ref.history], key
