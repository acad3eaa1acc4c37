"""emospec.features fast paths give the same numbers as the plain ones.

The optimised CPU paths (sparse filterbank, STFT in blocks for long inputs,
batching of many clips) must not change the features: each is checked
against the straightforward computation, and long real speech against librosa.
Tests that fix the shape or compare with librosa use the paper's features
(128 mel bands, no floor: ``RECIPES["paper"]``); the others the default ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import noise, sine
from emospec import audio, features, filterbank
from emospec.errors import FeatureError
from emospec.recipe import RECIPES

CFG = RECIPES["paper"].features
"""The paper's features: 128 mel bands, no floor (librosa's ``power_to_db(top_db=None)``)."""


def test_extract_many_equals_extract_clip_by_clip_in_input_order():
    clips = [noise(1.3, seed=1), sine(440, 0.7), sine(2000, 0.05), noise(0.7, seed=2), sine(300, 2.1)]
    singles = [features.extract(c) for c in clips]
    for budget in (1, 300, None, 10**6):  # alone, small groups, the default, everything in one batch
        many = features.extract_many(clips, max_batch_frames=budget)
        assert [m.shape for m in many] == [s.shape for s in singles]
        worst = max(float((m - s).abs().max()) for m, s in zip(many, singles))
        assert worst <= 1e-4, f"max_batch_frames={budget}: batched differs from single by {worst:.1e} dB"


def test_extract_many_names_the_bad_clip():
    with pytest.raises(FeatureError, match=r"waveforms\[1\]"):
        features.extract_many([sine(), np.zeros(0, np.float32)])
    with pytest.raises(FeatureError, match="max_batch_frames"):
        features.extract_many([sine()], max_batch_frames=-1)


def test_long_input_in_blocks_equals_one_stft(monkeypatch):
    x = noise(12.0, seed=3) + sine(700, 12.0, amp=0.2)  # 1201 frames: two blocks of 768 at the default
    assert CFG.n_frames(len(x)) > features.CPU_BLOCK_FRAMES
    blocked = features.extract(x, CFG)
    monkeypatch.setattr(features, "CPU_BLOCK_FRAMES", 10**9)
    whole = features.extract(x, CFG)
    assert blocked.shape == whole.shape == (3, 128, 1201)
    assert torch.equal(blocked, whole)
    # a batch is cut into blocks too (frames summed over the batch)
    monkeypatch.setattr(features, "CPU_BLOCK_FRAMES", 100)
    batch, _ = features.extract_batch(np.stack([x[:32000], x[16000:48000]]), CFG)
    assert torch.allclose(batch[0], features.extract(x[:32000], CFG), atol=1e-4)


def test_sparse_filterbank_equals_dense():
    power = torch.rand(CFG.n_fft // 2 + 1, 3, 50) * torch.logspace(-8, 2, 50)  # (n_freqs, batch, frames)
    sparse = features._apply_mel(power, CFG)
    assert sparse.shape == (3, 128, 50)
    ref = torch.einsum("mf,fbt->bmt", torch.from_numpy(filterbank.mel_filterbank(CFG)), power.double())
    assert torch.allclose(sparse.double(), ref, rtol=1e-5, atol=0)


def test_traced_path_gives_the_same_features(monkeypatch):
    # What exporters see (float64 power, dense filterbank, one STFT) equals the fast CPU path.
    x = np.concatenate([noise(9.0, seed=4), sine(500, 0.5)])  # 951 frames: the fast path uses blocks
    fast = features.extract(x)
    monkeypatch.setattr(features, "_tracing", lambda: True)
    plain = features.extract(x)
    assert fast.shape == plain.shape
    assert float((fast - plain).abs().max()) <= 1e-4


def test_front_end_exports_to_onnx():
    import onnxruntime as ort

    class FrontEnd(torch.nn.Module):
        def forward(self, waves, lengths):
            keep = torch.arange(waves.shape[1])[None, :] < lengths[:, None]
            return features._deltas(features._log_mel(waves * keep, CFG, torch.float64), features.frames_for(lengths, CFG), CFG)

    for dt in (torch.float64, torch.float32):  # real constants in the cache before tracing (as emospec.export does)
        features._constants(CFG, "cpu", dt)
    n = [24000, 16000]
    dims = ({0: torch.export.Dim("batch", min=1, max=64), 1: torch.export.Dim("samples", min=1, max=1 << 30)},
            {0: torch.export.Dim("batch", min=1, max=64)})
    prog = torch.onnx.export(FrontEnd().eval(), (torch.zeros(2, max(n)), torch.tensor(n)), None, dynamo=True,
                             dynamic_shapes=dims, input_names=["waves", "lengths"], output_names=["features"], verbose=False)
    sess = ort.InferenceSession(prog.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = noise(9.0, seed=5)  # longer than the example and than one CPU block
    got = sess.run(None, {"waves": x[None], "lengths": np.array([x.size])})[0][0]
    assert got.shape == (3, 128, CFG.n_frames(x.size))
    assert np.abs(got - features.extract(x, CFG).numpy()).max() <= 1e-3


def test_long_real_speech_matches_librosa(ravdess_clips):
    import librosa

    y = np.concatenate([audio.load(p) for p in ravdess_clips[:4]])  # ~14 s: blocks on CPU
    assert CFG.n_frames(len(y)) > features.CPU_BLOCK_FRAMES
    S = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, window="hann",
                                       center=True, pad_mode="constant", power=2.0, n_mels=128, fmin=0.0, fmax=8000.0),
        ref=1.0, amin=1e-10, top_db=None)
    ref = np.stack([S, librosa.feature.delta(S, width=5, order=1, mode="nearest"),
                    librosa.feature.delta(S, width=5, order=2, mode="nearest")])
    got = features.extract(y, CFG).numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-3
