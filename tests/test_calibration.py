"""emospec.calibration: the fitted temperature, ECE and NLL on numbers worked out by hand or by construction;
the model's temperature buffer in its probabilities, its file and the ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emospec.calibration import (
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    fittable,
    format_calibration,
    nll,
)
from emospec.checkpoint import load_model, save_model
from emospec.config import FeatureConfig, ModelConfig
from emospec.model import EmoAlexNet


def _drawn(t_true: float, n: int = 20000, seed: int = 0):
    """Logits ``(n, 4)`` and classes drawn from ``softmax(logits / t_true)``: ``t_true`` is the right temperature."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 4.0, size=(n, 4))
    p = np.exp(z / t_true - (z / t_true).max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return z, y


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_classes_were_drawn_with(t_true):
    z, y = _drawn(t_true)
    t = fit_temperature(z, y)
    assert t == pytest.approx(t_true, rel=0.06)
    assert nll(z, y, t) <= min(nll(z, y, t * 1.2), nll(z, y, t / 1.2), nll(z, y, 1.0))


def test_logits_fifty_times_too_sharp_get_a_temperature_of_fifty():
    # a model whose logits grew large (long training, no adaptation clips) needs T far above 1: the search must
    # reach it, not stop at its bound with probabilities still overconfident (session 23's runs met T = 20)
    z, y = _drawn(1.0)
    t = fit_temperature(50.0 * z, y)
    assert t == pytest.approx(50.0, rel=0.06)
    p = torch.softmax(torch.as_tensor(50.0 * z / t), 1).numpy()
    assert calibration_summary(p, y)["ece"] < 0.02


def test_overconfident_logits_get_a_temperature_above_one_and_lose_most_of_their_calibration_error():
    z, y = _drawn(3.0)  # the logits are three times too sharp for how often they are right
    before = calibration_summary(torch.softmax(torch.as_tensor(z), 1).numpy(), y)
    t = fit_temperature(z, y)
    after = calibration_summary(torch.softmax(torch.as_tensor(z / t), 1).numpy(), y)
    assert t > 2.5
    assert before["mean_confidence"] > before["accuracy"] + 0.1
    assert after["ece"] < 0.02 < 0.1 < before["ece"]
    assert after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]  # dividing by T keeps every argmax


def test_expected_calibration_error_on_a_hand_worked_example():
    # bin (0.5, 0.6]: confidences 0.55, 0.55, one right -> |0.5 - 0.55| = 0.05, weight 2/4
    # bin (0.9, 1.0]: confidences 0.95, 0.95, both right -> |1 - 0.95| = 0.05, weight 2/4
    probs = np.array([[0.55, 0.45], [0.55, 0.45], [0.95, 0.05], [0.05, 0.95]])
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probs, y) == pytest.approx(0.05)
    s = calibration_summary(probs, y)
    assert s["accuracy"] == pytest.approx(0.75) and s["mean_confidence"] == pytest.approx(0.75)
    assert s["nll"] == pytest.approx(-np.mean(np.log([0.55, 0.45, 0.95, 0.95])))
    assert np.isnan(expected_calibration_error(np.zeros((0, 2)), []))
    assert fit_temperature(np.zeros((0, 2)), []) == 1.0


def test_no_temperature_is_fitted_when_every_clip_is_right_or_every_clip_wrong():
    z = np.array([[3.0, 0.0, -1.0], [0.0, 2.0, 1.0], [1.0, 0.0, 4.0]])
    assert not fittable(z, [0, 1, 2]) and fit_temperature(z, [0, 1, 2]) == 1.0  # the likelihood grows as T -> 0
    assert nll(z, [0, 1, 2], 0.5) < nll(z, [0, 1, 2], 1.0)
    assert not fittable(z, [1, 2, 0]) and fit_temperature(z, [1, 2, 0]) == 1.0
    assert fittable(z, [0, 1, 0]) and fit_temperature(z, [0, 1, 0]) != 1.0


def test_the_models_probabilities_divide_by_its_temperature_and_keep_every_argmax():
    torch.manual_seed(0)
    m = EmoAlexNet(config=ModelConfig(n_classes=4, n_mels=64)).eval()
    logits = torch.randn(16, 4) * 5
    assert torch.allclose(m.probabilities(logits), torch.softmax(logits, 1))  # 1 until fitted
    m.temperature.fill_(2.5)
    p = m.probabilities(logits)
    assert torch.allclose(p, torch.softmax(logits / 2.5, 1))
    assert torch.equal(p.argmax(1), logits.argmax(1))
    assert p.max(1).values.mean() < torch.softmax(logits, 1).max(1).values.mean()


def test_the_temperature_travels_in_the_model_file_and_a_file_without_one_loads_with_one(tmp_path):
    m = EmoAlexNet(config=ModelConfig(n_classes=4, n_mels=64))
    m.temperature.fill_(1.75)
    save_model(tmp_path / "t.pt", m, FeatureConfig(), ["neutral", "happy", "angry", "sad"], half=True)
    assert float(load_model(tmp_path / "t.pt").model.temperature) == pytest.approx(1.75)
    # a model written before temperature scaling (no such key in its state dict): softmax as before
    state = torch.load(tmp_path / "t.pt", weights_only=False)
    del state["state_dict"]["temperature"]
    torch.save(state, tmp_path / "old.pt")
    assert float(load_model(tmp_path / "old.pt").model.temperature) == 1.0


def test_format_calibration_says_what_the_temperature_did_on_test_or_validation_clips():
    s = {"ece": 0.2, "nll": 1.0, "mean_confidence": 0.95, "accuracy": 0.75}
    fitted = {"temperature": 2.5, "fitted": True, "n_clips": 60, "before": s, "after": dict(s, ece=0.04, mean_confidence=0.74)}
    assert format_calibration(fitted, dict(s, ece=0.05, mean_confidence=0.77), s) == (
        "probabilities: logits / 2.50 (fitted on 60 validation clips); on the test clips ECE 0.200 -> 0.050, "
        "mean top probability 0.95 -> 0.77 at accuracy 0.75")
    assert format_calibration(fitted).endswith("on them ECE 0.200 -> 0.040, mean top probability 0.95 -> 0.74 at accuracy 0.75")
    assert "not fitted" in format_calibration({"temperature": 1.0, "fitted": False, "n_clips": 4})
    assert "no validation clips" in format_calibration({})
