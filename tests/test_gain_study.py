"""benchmarks/gain_study.py: the same clips at several recording gains, classified as a user runs a model."""

from __future__ import annotations

import dataclasses

import numpy as np
import soundfile as sf
import torch

from benchmark_scripts import load_benchmark
from emospec.checkpoint import save_model
from emospec.config import FeatureConfig, ModelConfig
from emospec.features import extract
from emospec.model import EmoAlexNet
from emospec.predict import load

LABELS = ["neutral", "happy", "angry", "sad"]


def _script():
    return load_benchmark("gain_study")


def test_a_model_relative_to_the_peak_answers_the_same_at_every_gain_and_an_absolute_one_does_not(ravdess_clips, tmp_path):
    """Real clips at -12 ... +0 dB: features relative to each clip's peak give the same labels at every gain (no
    clip reaches full scale); the same weights on absolute dB change their answers, and UA is scored against truth."""
    waves = [sf.read(p, dtype="float32")[0] for p in ravdess_clips]
    y = np.arange(len(waves)) % 4
    torch.manual_seed(0)
    net = EmoAlexNet(config=ModelConfig(n_mels=64, batch_norm=True, norm="global")).eval()
    with torch.no_grad():
        net.classifier[4].weight.mul_(40.0)  # confident, varied answers from random weights
    out = {}
    for rel in (False, True):
        fc = dataclasses.replace(FeatureConfig(), relative_to_peak=rel)
        net.set_normalization(torch.full((3, 64), -30.0 if rel else -60.0), torch.full((3, 64), 10.0))
        with torch.no_grad():  # centre the logits on these clips, so that the random weights answer differently per clip
            emb = torch.cat([net.embed(extract(torch.from_numpy(w), fc)[None]) for w in waves])
            net.classifier[4].bias.copy_(-net.classifier[4](net.classifier[3](emb)).mean(0) + net.classifier[4].bias)
        save_model(tmp_path / f"{rel}.pt", net, fc, LABELS, {})
        rec = load(tmp_path / f"{rel}.pt", device="cpu")
        out[rel] = _script().gain_table(rec, waves, y, [-12.0, -6.0, 0.0])
        pred0 = np.array([LABELS.index(p.label) for p in rec.predict_batch(waves, sr=16000)])
        assert out[rel]["+0"]["ua"] == np.mean([((pred0 == k) & (y == k)).sum() / (y == k).sum() for k in range(4)])
        assert sum(out[rel]["+0"]["predicted"].values()) == len(waves)
        if rel:  # 90 dB down every clip is below the silence threshold: no label, counted as silent, not as changed
            deep = _script().gain_table(rec, waves, y, [-90.0, 0.0])["-90"]
            assert deep["silent"] == 1.0 and np.isnan(deep["changed_vs_0db"]) and sum(deep["predicted"].values()) == 0
    assert all(out[True][g]["changed_vs_0db"] == 0.0 and out[True][g]["silent"] == 0.0 for g in ("-12", "-6"))
    assert max(out[False][g]["changed_vs_0db"] for g in ("-12", "-6")) > 0.0
