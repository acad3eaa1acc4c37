"""emospec.device: bf16's rounding at float32's speed (``amp="bf16-round"``), checked against real bf16 autocast; the
warning when other work already keeps the CPU busy."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import emospec.device
from emospec.config import ModelConfig, TrainConfig
from emospec.device import BF16Rounding, amp_dtype, cpu_contention, cpu_has_fast_bf16
from emospec.errors import ConfigError
from emospec.model import EmoAlexNet
from emospec.train import fit

CLASSES = ["neutral", "happy", "angry", "sad"]


def _on_bf16_grid(x: torch.Tensor) -> bool:
    return bool(torch.equal(x, x.to(torch.bfloat16).float()))


def _step(model: EmoAlexNet, x: torch.Tensor, y: torch.Tensor, mode: str):
    """Logits and the flattened gradient of one training-mode step, in float32, bf16 autocast or BF16Rounding."""
    model.zero_grad()
    torch.manual_seed(1)  # the same dropout masks
    if mode == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model.forward_head(model.features(x)).float()
    elif mode == "round":
        with BF16Rounding():
            logits = model.forward_head(model.features(x))
    else:
        logits = model.forward_head(model.features(x))
    F.cross_entropy(logits, y).backward()
    return logits.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_rounding_gives_bf16_autocasts_numbers_not_float32s():
    """One step of the default model (BatchNorm, LRN) on 4 random inputs: logits and gradients under BF16Rounding
    are closer to real bf16 autocast's than float32's are. Where oneDNN emulates bf16 (AVX2 only, the CPUs the
    rounding mode is for) the gradients are 2.7x closer; where it runs bf16 natively (AVX-512 BF16) its kernels
    round and accumulate otherwise and the gradients are only closer (0.16 against 0.20 on such a CPU).
    What is left (LRN, pooling and ReLU on bf16 tensors) is not rounded."""
    torch.manual_seed(0)
    model = EmoAlexNet(config=ModelConfig(n_classes=4, n_mels=64)).train()
    x, y = torch.randn(4, 3, 64, 120), torch.tensor([0, 1, 2, 3])
    (l32, g32), (l16, g16), (lr, gr) = (_step(model, x, y, m) for m in ("fp32", "bf16", "round"))
    far, near = (l32 - l16).abs().mean().item(), (lr - l16).abs().mean().item()  # 0.0068 and 0.0045 here
    assert far > 1e-3 and near < 0.8 * far, (near, far)
    g_far, g_near = ((g32 - g16).norm() / g16.norm()).item(), ((gr - g16).norm() / g16.norm()).item()  # 0.20, 0.08
    assert g_far > 0.05 and g_near < (g_far if cpu_has_fast_bf16() else g_far / 2), (g_near, g_far)
    assert _on_bf16_grid(lr) and not _on_bf16_grid(l32)  # FC8's output is rounded; float32's is not


def test_rounding_touches_only_conv_linear_and_batchnorm():
    a, b = torch.full((3,), 1.0 + 2**-12), torch.full((3,), 2**-12)
    with BF16Rounding():
        assert torch.equal(a + b, torch.full((3,), 1.0 + 2**-11))  # addition is left alone: exact in float32
        out = F.linear(a[None], torch.eye(3))
    assert torch.equal(out, torch.ones(1, 3))  # 1 + 2^-12 is not a bf16 number: rounded to 1 on the way in
    assert F.linear(a[None], torch.eye(3)).ne(1.0).all()  # and outside the mode it is not rounded at all


def test_rounding_leaves_batchnorms_running_statistics_to_update():
    """The running averages are updated in place: rounding a copy of them would freeze them at 0 and 1 (it did)."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * 2 + torch.tensor([1.0, 2.0, 3.0])[:, None, None]
    plain, rounded = torch.nn.BatchNorm2d(3).train(), torch.nn.BatchNorm2d(3).train()
    plain(x)
    with BF16Rounding():
        rounded(x)
    assert rounded.running_mean.dtype == torch.float32 and rounded.running_mean.min() > 0.05
    torch.testing.assert_close(rounded.running_mean, plain.running_mean, rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(rounded.running_var, plain.running_var, rtol=2e-2, atol=1e-3)
    mean, var = torch.zeros(3), torch.ones(3)  # torch.batch_norm itself takes the statistics 4th and 5th
    with BF16Rounding():
        torch.batch_norm(x, torch.ones(3), torch.zeros(3), mean, var, True, 0.1, 1e-5, False)
    torch.testing.assert_close(mean, plain.running_mean, rtol=1e-2, atol=1e-3)


def test_bf16_round_trains_in_float32_kernels_and_says_so_in_the_model(tmp_path):
    assert amp_dtype("bf16-round", torch.device("cpu")) is None  # no autocast: float32 kernels
    with pytest.raises(ConfigError, match="bf16-round"):
        TrainConfig(amp="bf16-rounded")
    torch.manual_seed(0)
    feats = [torch.randn(3, 64, 150) + 0.3 * (i % 4) for i in range(16)]
    y = [i % 4 for i in range(16)]
    train = TrainConfig(epochs=2, batch_size=8, crop_s=1.0, device="cpu", patience=100, precise_bn=0, amp="off")
    runs = {amp: fit(feats, y, [], [], CLASSES, tmp_path / amp, model_config=ModelConfig(n_classes=4, n_mels=64),
                     train_config=replace(train, amp=amp), progress=False) for amp in ("off", "bf16-round")}
    off, rounded = (runs[a].history[-1]["train_loss"] for a in ("off", "bf16-round"))
    assert off != rounded and abs(off - rounded) < 0.1 * off  # the same run but for bf16's rounding
    assert torch.load(tmp_path / "bf16-round" / "model.pt", weights_only=False)["meta"]["autocast"] == "bf16-round"
    assert all(v.dtype == torch.float32 for v in runs["bf16-round"].model.state_dict().values()
               if v.is_floating_point())  # the weights stay float32


def test_training_builds_its_model_channels_last_on_cpu_with_the_default_layouts_numbers():
    """On CPU ``build`` puts every 4-D conv weight in channels-last (oneDNN's fast layout, ``make bench``), leaves the
    rest alone, and the model computes what the same weights in torch's default layout compute (forward and gradients,
    up to the order of float32 sums); a checkpoint's weights load into a default-layout model unchanged."""
    import numpy as np

    from emospec import distributed
    from emospec.config import FeatureConfig
    from emospec.device import conv_memory_format
    from emospec.epoch import build

    assert conv_memory_format(torch.device("cpu")) == torch.channels_last
    assert conv_memory_format(torch.device("cuda")) == torch.contiguous_format
    torch.manual_seed(0)
    feats = [torch.randn(3, 64, 120) * 10 - 40 for _ in range(8)]
    ctx = distributed.DistContext(0, 0, 1, torch.device("cpu"), "none", created=False)
    p = build(feats, np.repeat([0, 1], 4), 2, ctx, feature_config=FeatureConfig(n_mels=64),
              mcfg=ModelConfig(n_classes=2, n_mels=64), tcfg=TrainConfig(batch_size=4, epochs=1), train_groups=None)
    convs = [m.weight for m in p.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)
    plain = EmoAlexNet(config=p.model.config)
    plain.load_state_dict(p.model.state_dict())
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    x, y = torch.stack(feats[:4]), torch.tensor([0, 0, 1, 1])
    grads = []
    for model in (p.model, plain):
        model.train().zero_grad()
        torch.manual_seed(1)  # the same dropout masks
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        grads.append((logits.detach(), torch.cat([q.grad.flatten() for q in model.parameters()])))
    (l_cl, g_cl), (l_plain, g_plain) = grads
    assert torch.allclose(l_cl, l_plain, atol=1e-4, rtol=1e-4)
    assert torch.allclose(g_cl, g_plain, atol=1e-5, rtol=1e-3) and float(g_plain.abs().max()) > 1e-3


def test_cpu_contention_speaks_only_when_the_cores_are_oversubscribed():
    assert cpu_contention(2, others=0, cores=2) is None  # an idle machine
    assert cpu_contention(2, others=1, cores=16) is None  # room to spare
    said = cpu_contention(2, others=2, cores=2)
    assert said is not None and "keep 2 of this machine's 2 CPU cores busy" in said and "adds 2 threads" in said
    assert cpu_contention(1, others=1, cores=2) is None and cpu_contention(1, others=2, cores=2) is not None
    assert cpu_contention(8, others=9, cores=16) is not None and cpu_contention(8, others=8, cores=16) is None


def test_others_running_is_the_least_of_a_few_instant_counts_less_the_caller(tmp_path, monkeypatch):
    """The one-minute load average lags (1.1 right after a test run, the machine idle); the instant count does not."""
    f = tmp_path / "loadavg"

    def line(running: int) -> str:
        return f"1.93 1.70 1.62 {running}/120 19909\n"

    for running, want in (([3, 3, 3], 2), ([1, 4, 1], 0), ([3, 5, 4], 2), ([0, 0, 0], 0)):
        later = iter(running[1:])
        f.write_text(line(running[0]))
        monkeypatch.setattr(emospec.device.time, "sleep", lambda s, later=later: f.write_text(line(next(later))))  # the next read's count
        assert emospec.device.others_running(samples=3, path=str(f)) == want, running
    assert emospec.device.others_running(path=str(tmp_path / "missing")) is None  # not Linux: nothing said
    f.write_text("no counts here\n")
    assert emospec.device.others_running(path=str(f)) is None


def test_training_commands_say_so_before_they_start_and_the_environment_can_silence_it(monkeypatch, caplog, tmp_path):
    """``emospec train|evaluate|demo`` check as they start, before their own work; other commands do not, and
    ``EMOSPEC_NO_LOAD_CHECK`` (set for the rest of the suite) silences it."""
    from emospec.cli import main

    monkeypatch.setattr(emospec.device, "others_running", lambda: 3)
    monkeypatch.setattr(emospec.device.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(emospec.device.torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(emospec.device.NO_LOAD_CHECK_ENV, raising=False)
    missing = str(tmp_path / "no-such-corpus")
    with caplog.at_level("WARNING", logger="emospec.device"):
        assert main(["-q", "evaluate", "--protocol", "loso", "--corpus", f"folder:{missing}"]) == 1  # fails after the check
        assert main(["-q", "prepare", "folder", missing]) == 1
    said = [r.getMessage() for r in caplog.records if "CPU cores busy" in r.getMessage()]
    assert len(said) == 1 and "keep 3 of this machine's 2 CPU cores busy" in said[0]
    assert emospec.device.warn_if_cpu_busy(2) is not None
    monkeypatch.setenv(emospec.device.NO_LOAD_CHECK_ENV, "1")
    assert emospec.device.warn_if_cpu_busy(2) is None
    monkeypatch.setenv(emospec.device.NO_LOAD_CHECK_ENV, "0")
    assert emospec.device.warn_if_cpu_busy(2) is not None
