"""emospec.model: the modified AlexNet's layout, shapes for any length, torchvision key layout.

The layout tests are about the paper's model (LRN, no BatchNorm, 128 mel bands: the ``paper`` recipe);
the default recipe adds BatchNorm (``test_batchnorm_and_stride_options``, ``test_default_model_is_the_default_recipes``).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from emospec.errors import CheckpointError, ConfigError
from emospec.model import MIN_SIZE, ChannelLRN, EmoAlexNet, conv_channels, final_rows, infer, load_imagenet_weights, stats_pool
from emospec.recipe import RECIPES

PAPER = RECIPES["paper"].model_for(4)
"""The paper's model for 4 classes: 128 mel bands, LRN, no BatchNorm."""


def paper_model() -> EmoAlexNet:
    return EmoAlexNet(config=PAPER)

TORCHVISION_FEATURES = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
}


def test_layout_lrn_after_conv1_fc7_removed():
    m = paper_model()
    names = list(m.features._modules)
    assert names[:4] == ["0", "1", "lrn", "2"]
    lrn = m.features.lrn
    assert isinstance(lrn, nn.LocalResponseNorm) and (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)
    convs = [mod for mod in m.features if isinstance(mod, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (64, 11, 4), (192, 5, 1), (384, 3, 1), (256, 3, 1), (256, 3, 1)]
    assert sum(isinstance(mod, nn.MaxPool2d) for mod in m.features) == 3
    linears = [mod for mod in m.classifier if isinstance(mod, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(9216, 256), (256, 4)]
    assert isinstance(m.avgpool, nn.AdaptiveAvgPool2d) and m.avgpool.output_size == (6, 6)


@pytest.mark.parametrize("size,beta", [(5, 0.75), (4, 0.75), (3, 0.5)])
def test_channel_lrn_matches_torchs_local_response_norm(size, beta):
    """The faster LRN is torch's: values and gradients to float32 rounding, on post-ReLU activations as large
    as a first conv gives (where the sum of squares matters), on an odd and an even window, and a beta != 3/4."""
    torch.manual_seed(0)
    x = torch.relu(torch.randn(4, 64, 15, 49) * 40)
    ours, ref = ChannelLRN(size, alpha=1e-4, beta=beta, k=2.0), nn.LocalResponseNorm(size, alpha=1e-4, beta=beta, k=2.0)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(a), ref(b)
    assert 0.2 < float((yb.detach() / x.clamp(min=1e-3))[x > 1].min()) < 0.9  # the denominator is far from 1 here
    torch.testing.assert_close(ya, yb, rtol=2e-6, atol=1e-5)
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    torch.testing.assert_close(a.grad, b.grad, rtol=2e-5, atol=1e-6)
    assert list(ours.state_dict()) == list(ref.state_dict()) == []  # no weights: checkpoints load either way


def test_channel_lrn_sums_squares_in_float32_under_half_precision():
    """First-conv activations of a few hundred square to more than float16 holds; the LRN stays finite."""
    torch.manual_seed(0)
    x = torch.relu(torch.randn(2, 16, 5, 7) * 300)
    ref = ChannelLRN(5, alpha=1e-4, beta=0.75, k=2.0)(x)
    for dtype in (torch.float16, torch.bfloat16):
        xh = x.to(dtype).requires_grad_()
        y = ChannelLRN(5, alpha=1e-4, beta=0.75, k=2.0)(xh)
        assert y.dtype == dtype and torch.isfinite(y).all()
        torch.testing.assert_close(y.float(), ref, rtol=1e-2, atol=1e-2)
        y.sum().backward()
        assert xh.grad is not None and xh.grad.dtype == dtype and torch.isfinite(xh.grad).all()
    assert not torch.isfinite(x.half() * x.half() * 5).all()  # what a half-precision sum of squares would meet


def test_state_dict_keys_follow_torchvision():
    sd = paper_model().state_dict()
    for k, shape in TORCHVISION_FEATURES.items():
        assert tuple(sd[k].shape) == shape


@pytest.mark.parametrize("seconds", [0.2, 3.0, 30.0])
def test_any_clip_length(seconds):
    frames = 1 + int(seconds * 16000) // 160
    m = paper_model().eval()
    x = torch.randn(2, 3, 128, frames)
    assert m(x).shape == (2, 4)
    assert m.embed(x).shape == (2, 256)
    assert m.forward_features(x).shape[:2] == (2, 256)


def test_62_and_63_frames_work_and_short_input_is_padded_not_rejected():
    m = paper_model().eval()
    for t in (1, 62, MIN_SIZE):
        assert m(torch.randn(1, 3, 128, t)).shape == (1, 4)
    # padding happens after normalisation: 62 frames == 62 frames + zero (mean) column
    x = torch.randn(1, 3, 128, 62)
    m.set_normalization(torch.zeros(3, 128), torch.ones(3, 128))
    assert torch.allclose(m(x), m(torch.cat([x, torch.zeros(1, 3, 128, 1)], -1)), atol=1e-5)


def test_embedding_feeds_the_classifier():
    m = paper_model().eval()
    x = torch.randn(3, 3, 128, 100)
    e = m.embed(x)
    assert torch.allclose(m.classifier[4](e), m(x), atol=1e-5)
    assert torch.all(e >= 0)  # post-ReLU


def test_normalisation_buffers_are_applied():
    m = paper_model().eval()
    mean, std = torch.randn(3, 128), torch.rand(3, 128) + 0.5
    m.set_normalization(mean, std)
    x = torch.randn(1, 3, 128, 80) * 10
    n = m.normalize(x)
    assert torch.allclose(n, (x - mean[..., None]) / std[..., None], atol=1e-5)


def test_load_imagenet_weights_from_torchvision_layout(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(*s, generator=g) for k, s in TORCHVISION_FEATURES.items()}
    sd.update({"classifier.1.weight": torch.randn(4096, 9216), "classifier.1.bias": torch.zeros(4096),
               "classifier.6.weight": torch.randn(1000, 4096), "classifier.6.bias": torch.zeros(1000)})
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(sd, path)
    m = paper_model()
    fc6_before = m.classifier[1].weight.clone()
    out = load_imagenet_weights(m, path)
    assert sorted(out["loaded"]) == sorted(TORCHVISION_FEATURES)
    assert "classifier.6.weight" in out["skipped"]
    for k in TORCHVISION_FEATURES:
        assert torch.equal(m.state_dict()[k], sd[k])
    assert torch.equal(m.classifier[1].weight, fc6_before)


def test_load_imagenet_weights_bad_file(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_imagenet_weights(paper_model(), bad)


def test_infer_groups_by_length_and_keeps_order():
    torch.manual_seed(0)
    m = paper_model().eval()
    feats = [torch.randn(3, 128, t) for t in (70, 120, 70, 300)]
    logits, emb = infer(m, feats)
    for i, f in enumerate(feats):
        assert torch.allclose(logits[i], m(f[None])[0], atol=1e-5)
    assert emb.shape == (4, 256)


def test_batchnorm_and_stride_options():
    m = EmoAlexNet(config=replace(PAPER, n_classes=3, batch_norm=True, first_stride=2)).eval()
    assert m(torch.randn(1, 3, 128, 90)).shape == (1, 3)
    assert "features.0.weight" in m.state_dict() and "features.bn0.weight" in m.state_dict()


def test_default_model_is_the_default_recipes():
    m = EmoAlexNet(4).eval()
    assert m.config == RECIPES["default"].model_for(4)
    names = list(m.features._modules)
    assert names[:5] == ["0", "bn0", "1", "lrn", "2"]  # BatchNorm after conv1, then the paper's ReLU, LRN, pool
    assert m(torch.randn(2, 3, RECIPES["default"].features.n_mels, 90)).shape == (2, 4)


@pytest.mark.parametrize("n_mels,stride", [(40, 4), (64, 4), (128, 4), (64, 2), (128, 3)])
def test_final_rows_are_the_conv_stacks_and_size_the_stats_head(n_mels, stride):
    cfg = replace(PAPER, n_mels=n_mels, first_stride=stride, pool="stats")
    m = EmoAlexNet(config=cfg).eval()
    maps = m.forward_features(torch.randn(2, 3, n_mels, 150))
    assert maps.shape[2] == final_rows(cfg)
    assert final_rows(replace(cfg, n_mels=64, first_stride=4)) == 1 and final_rows(replace(cfg, n_mels=128, first_stride=4)) == 3
    assert m.classifier[1].in_features == 2 * 256 * final_rows(cfg)
    for frames in (1, 63, 200, 3000):  # any length, one embedding size
        assert m.embed(torch.randn(1, 3, n_mels, frames)).shape == (1, 256)


def test_stats_pool_is_the_mean_and_std_over_each_clips_own_positions():
    x = torch.tensor([[1.0, 3.0, 5.0, 100.0], [2.0, 2.0, 2.0, 2.0]]).reshape(1, 1, 2, 4)  # (batch, c, rows, time)
    full = stats_pool(x)
    assert full.shape == (1, 4)
    assert torch.allclose(full[0, :2], torch.tensor([27.25, 2.0]))
    assert torch.allclose(full[0, 2], torch.tensor([1.0, 3.0, 5.0, 100.0]).std(unbiased=False), atol=1e-4)
    assert torch.allclose(full[0, 3], torch.tensor(1e-3))  # sqrt(0 + 1e-6): finite at a constant map
    cut = stats_pool(torch.cat([x, x]), torch.tensor([3, 4]))  # the first clip ends after 3 positions
    assert torch.allclose(cut[0], torch.tensor([3.0, 2.0, (8 / 3 + 1e-6) ** 0.5, 1e-3]), atol=1e-5)
    assert torch.allclose(cut[1], full[0])
    big = 300 + 2 * torch.randint(-3, 4, (2, 8, 1, 50)).float()  # exact in fp16 and bf16 (whose step at 300 is 2)
    for dtype in (torch.float16, torch.bfloat16):
        pooled = stats_pool(big.to(dtype))
        assert pooled.dtype == torch.float32  # computed in float32, so the half-precision input loses nothing
        assert torch.allclose(pooled, stats_pool(big), atol=1e-5)


def test_stats_pool_sees_where_a_pattern_is_not_and_grid_does():
    """A burst moved by 256 frames inside a long clip (8 × the stack's total stride of 32, so
    every conv and pool samples it in the same phase): the same embedding with pool="stats", a different one with
    the paper's 6 × 6 grid, whose FC6 weights are tied to positions in time."""
    torch.manual_seed(0)
    x = torch.zeros(1, 3, 64, 800)  # both bursts beyond the stack's receptive field (about 200 frames) from either end
    burst = 3 * torch.randn(1, 3, 64, 60)
    early, late = x.clone(), x.clone()
    early[..., 200:260], late[..., 456:516] = burst, burst
    dist = {}
    for pool in ("grid", "stats"):
        m = EmoAlexNet(config=replace(RECIPES["default"].model_for(4), pool=pool)).eval()
        with torch.no_grad():
            a, b = m.embed(early), m.embed(late)
        dist[pool] = float((a - b).norm() / a.norm())
    assert dist["stats"] < 1e-4 < 0.1 < dist["grid"], dist


def test_pool_must_be_known():
    with pytest.raises(ConfigError, match="pool"):
        replace(PAPER, pool="max")


@pytest.mark.parametrize("pool", ["grid", "stats"])
def test_width_scales_every_conv_and_the_head_and_keeps_the_keys(pool):
    full = EmoAlexNet(config=replace(RECIPES["default"].model_for(4), pool=pool, width=1.0))
    half = EmoAlexNet(config=replace(RECIPES["default"].model_for(4), pool=pool, width=0.5)).eval()
    convs = [mod for mod in half.features if isinstance(mod, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 96, 192, 128, 128] == list(conv_channels(half.config))
    assert [c.in_channels for c in convs] == [3, 32, 96, 192, 128]
    assert half.classifier[1].in_features == (128 * 36 if pool == "grid" else 2 * 128 * 1)
    assert list(half.state_dict()) == list(full.state_dict())  # same layers, same names: checkpoints and ONNX as before
    conv_half, conv_full = (sum(p.numel() for p in m.features.parameters()) for m in (half, full))
    assert 0.24 < conv_half / conv_full < 0.26, (conv_half, conv_full)  # channels in and out both halve: a quarter
    for frames in (30, 200, 1000):
        assert half(torch.randn(2, 3, 64, frames)).shape == (2, 4) and half.embed(torch.randn(1, 3, 64, frames)).shape == (1, 256)
    assert conv_channels(replace(PAPER, width=1.0)) == (64, 192, 384, 256, 256)
    assert conv_channels(replace(PAPER, width=0.01)) == (1, 2, 4, 3, 3)


def test_width_must_be_positive():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="width"):
            replace(PAPER, width=bad)


def test_a_checkpoint_saved_before_width_existed_loads_at_alexnets_full_width(tmp_path):
    """Models saved before ``ModelConfig.width`` (the bundled one among them) were trained at AlexNet's channels: their
    description has no ``width``, and they must rebuild at 1.0 with their weights, not at today's default of 0.5."""
    from emospec.checkpoint import load_model, load_state, save_model, save_state
    from emospec.config import FeatureConfig
    from emospec.saved_config import saved_model_config

    assert RECIPES["default"].model.width == 0.5  # the default differs, or this test would prove nothing
    torch.manual_seed(0)
    full = EmoAlexNet(config=replace(RECIPES["default"].model_for(4), width=1.0)).eval()
    path = tmp_path / "old.pt"
    save_model(path, full, FeatureConfig(), ["neutral", "happy", "angry", "sad"], {"note": "test"}, half=False)
    obj = load_state(path)
    del obj["model_config"]["width"]
    save_state(path, obj)
    loaded = load_model(path).model
    assert loaded.config.width == 1.0 and conv_channels(loaded.config)[0] == 64
    x = torch.randn(1, 3, 64, 150)
    assert torch.allclose(loaded(x), full(x), atol=1e-5)
    assert saved_model_config({"n_mels": 64}).width == 1.0 and saved_model_config({"width": 0.5}).width == 0.5


def test_a_checkpoint_saved_before_trim_db_existed_keeps_every_frame(tmp_path):
    """Models saved before ``FeatureConfig.trim_db`` (the bundled one among them) were trained on every frame: their
    description has no ``trim_db``, and they must read as untrimmed, not as today's default of 40 dB."""
    import numpy as np

    from emospec.checkpoint import load_model, load_state, save_model, save_state
    from emospec.config import FeatureConfig
    from emospec.features import extract
    from emospec.saved_config import saved_feature_config

    assert FeatureConfig().trim_db == 40.0  # the default trims, or this test would prove nothing
    path = tmp_path / "old.pt"
    model = EmoAlexNet(config=RECIPES["default"].model_for(4)).eval()
    save_model(path, model, FeatureConfig(), ["neutral", "happy", "angry", "sad"], {"note": "test"}, half=False)
    assert load_model(path).feature_config.trim_db == 40.0  # a description with the key keeps its value
    obj = load_state(path)
    del obj["feature_config"]["trim_db"]
    save_state(path, obj)
    cfg = load_model(path).feature_config
    assert cfg.trim_db is None and cfg == replace(FeatureConfig(), trim_db=None)
    t = np.arange(16000) / 16000.0  # 0.5 s of silence, 0.5 s of tone, 0.5 s of silence: 151 frames, about 61 kept by 40 dB
    wave = torch.from_numpy(np.concatenate([np.zeros(8000), 0.3 * np.sin(2 * np.pi * 220 * t[:8000]), np.zeros(8000)]).astype(np.float32))
    assert extract(wave, cfg).shape[-1] == 151 and extract(wave, FeatureConfig()).shape[-1] < 80
    assert saved_feature_config({"n_mels": 64}).trim_db is None and saved_feature_config({"trim_db": 30.0}).trim_db == 30.0


def test_make_bench_times_a_training_step_at_alexnets_width_against_the_defaults():
    """``make bench``'s width rows: both models really train (finite times, in ms) and the default's row carries the
    paired ratio against width 1. No speed is asserted: that is measured by ``make bench``, not by tests."""
    import math

    from benchmark_scripts import load_benchmark

    rows = load_benchmark("bench_model").bench_width(batch=2, repeat=1)
    assert [r.case.split(", ")[-1] for r in rows] == ["width 1 (AlexNet's channels)", "width 0.5 (the default)"]
    assert all(r.unit == "ms" and math.isfinite(r.value) and r.value > 0 for r in rows)
    assert rows[0].ratio is None and rows[1].ref == rows[0].case.split(", ")[-1] and rows[1].ratio and rows[1].ratio > 0


def test_make_bench_times_a_training_step_in_the_default_layout_against_trainings():
    """``make bench``'s layout rows: both layouts really train (finite times, in ms), the second row is channels-last
    (training's layout on CPU) and carries the paired ratio against the first. No speed is asserted here."""
    import math

    from benchmark_scripts import load_benchmark

    rows = load_benchmark("bench_model").bench_layout(batch=2, repeat=1)
    assert [r.case.split(", ")[-1] for r in rows] == ["default layout (contiguous_format)", "training's layout (channels_last)"]
    assert all(r.unit == "ms" and math.isfinite(r.value) and r.value > 0 for r in rows)
    assert rows[0].ratio is None and rows[1].ref == "default layout (contiguous_format)" and rows[1].ratio and rows[1].ratio > 0
