"""Grad-CAM: on a model trained where the evidence is known, the heatmap must sit on it."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import SR, noise, run_cli
from emospec.checkpoint import save_model
from emospec.config import FeatureConfig, ModelConfig
from emospec.errors import ConfigError
from emospec.explain import evidence_span, grad_cam
from emospec.model import EmoAlexNet

pytestmark = pytest.mark.slow  # trains a small AlexNet (about 30 s on 2 cores)

N_MELS, FRAMES, BURST, BAND = 64, 160, 24, (20, 44)


def _clip(rng: np.random.Generator, start: int | None) -> torch.Tensor:
    """``(3, 64, 160)`` dB: noise floor, plus (class 1) a +30 dB block at frames [start, start+24) in bands 20-43."""
    x = rng.normal(-60.0, 3.0, size=(3, N_MELS, FRAMES)).astype(np.float32)
    x[1:] = rng.normal(0.0, 1.0, size=(2, N_MELS, FRAMES))
    if start is not None:
        x[0, BAND[0]:BAND[1], start:start + BURST] += 30.0
    return torch.from_numpy(x)


@pytest.fixture(scope="module")
def burst_model() -> EmoAlexNet:
    """EmoAlexNet trained to tell 'a loud block somewhere' (class 1) from 'noise only' (class 0)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    starts = [int(s) for s in rng.integers(0, FRAMES - BURST, 16)]
    feats = [_clip(rng, s) for s in starts] + [_clip(rng, None) for _ in range(16)]
    x = torch.stack(feats)
    y = torch.tensor([1] * 16 + [0] * 16)
    model = EmoAlexNet(config=ModelConfig(n_classes=2, n_mels=N_MELS, dropout=0.0))
    model.set_normalization(x.mean((0, 3)), x.std((0, 3)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(40):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 16):
            b = perm[i:i + 16]
            loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            loss = float(torch.nn.functional.cross_entropy(model(x), y))
        if loss < 0.05:
            break
    assert loss < 0.05, f"the synthetic task must be learnt (training loss {loss:.3f})"
    return model


@pytest.mark.parametrize("start", [20, 116])  # mirror images of each other: a time-flipped map fails both
def test_heatmap_mass_sits_on_the_burst(burst_model, start):
    rng = np.random.default_rng(100 + start)
    feats = _clip(rng, start)
    heat, k, probs = grad_cam(burst_model, feats)
    assert heat.shape == (N_MELS, FRAMES) and heat.dtype == np.float32
    assert k == 1 and probs[1] > 0.9
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    profile = heat.sum(0)
    lo, hi = max(0, start - 12), start + BURST + 12  # the block plus half a conv-map cell either side
    inside = profile[lo:hi].sum() / profile.sum()
    # the window is 48 of 160 frames (30 %): a map that ignored the burst would put ~30 % there
    assert inside > 0.5, f"only {inside:.2f} of the relevance lies on the burst"
    a, b = evidence_span(profile, 0.5)
    assert lo <= a and b <= hi
    peak_frame = int(np.argmax(profile))
    assert lo <= peak_frame < hi


def test_chosen_class_and_layers(burst_model):
    feats = _clip(np.random.default_rng(7), 60)
    heat1, k1, p1 = grad_cam(burst_model, feats, target=1)
    heat0, k0, p0 = grad_cam(burst_model, feats, target=0)
    assert (k1, k0) == (1, 0)
    np.testing.assert_allclose(p0, p1)
    # evidence *against* the burst class is not concentrated on the burst the way evidence for it is
    on = slice(60, 60 + BURST)
    share1 = heat1.sum(0)[on].sum() / heat1.sum()
    share0 = heat0.sum(0)[on].sum() / max(heat0.sum(), 1e-9)
    assert share1 > share0
    conv, _, _ = grad_cam(burst_model, feats, layer="features.8")
    assert conv.shape == (N_MELS, FRAMES)
    with pytest.raises(ConfigError):
        grad_cam(burst_model, feats, layer="classifier.1")
    with pytest.raises(ConfigError):
        grad_cam(burst_model, feats, target=5)


def test_short_clip_is_cropped_back_to_its_own_size(burst_model):
    feats = _clip(np.random.default_rng(3), None)[..., :40]  # padded to 63 frames inside the model
    heat, _, _ = grad_cam(burst_model, feats)
    assert heat.shape == (N_MELS, 40)


def test_evidence_span_exact():
    assert evidence_span(np.array([0, 0, 1, 3, 1, 0, 0.0]), 0.5) == (3, 4)
    assert evidence_span(np.array([0, 0, 1, 3, 1, 0, 0.0]), 0.8) == (2, 4)
    assert evidence_span(np.array([0, 0, 1, 3, 1, 0, 0.0]), 0.9) == (2, 5)
    assert evidence_span(np.array([1.0, 1, 1, 1]), 0.5) == (0, 2)
    assert evidence_span(np.zeros(5), 0.5) == (0, 5)


def test_explain_cli_writes_png(tmp_path):
    from PIL import Image

    fcfg = FeatureConfig(n_mels=64)
    torch.manual_seed(0)
    model = EmoAlexNet(config=ModelConfig(n_classes=4, n_mels=64))
    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "model.pt", model, fcfg, ["neutral", "happy", "angry", "sad"])
    clip = tmp_path / "clip.wav"
    sf.write(clip, noise(1.5, amp=0.2), SR)
    out = tmp_path / "cam.png"
    r = run_cli("-q", "explain", str(clip), "--model", str(run), "--class", "sad", "--out", str(out), "--device", "cpu")
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode()
    assert "explained class sad" in text and str(out) in text
    with Image.open(out) as im:
        assert im.size == (1210, 396)
    bad = run_cli("-q", "explain", str(clip), "--model", str(run), "--class", "bored", "--out", str(out))
    assert bad.returncode == 1 and "bored" in bad.stderr.decode() and len(bad.stderr.decode().strip().splitlines()) == 1


def test_evidence_span_counts_from_the_clips_start_when_leading_silence_was_trimmed():
    """With ``FeatureConfig.trim_db`` the first frame explained is ``start_s`` into the clip: spans are clip times."""
    from emospec.explain import GradCam

    heat = np.zeros((4, 100), np.float32)
    heat[:, 30:40] = 1.0
    untrimmed = GradCam(heat, np.zeros_like(heat), "sad", "sad", {"sad": 1.0}, 10.0)
    trimmed = GradCam(heat, np.zeros_like(heat), "sad", "sad", {"sad": 1.0}, 10.0, start_s=0.45)
    assert untrimmed.evidence_span(1.0) == pytest.approx((0.30, 0.40))
    assert trimmed.evidence_span(1.0) == pytest.approx((0.75, 0.85))
