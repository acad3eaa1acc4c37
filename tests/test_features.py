"""emospec.features: librosa parity on real speech, known answers on synthetic signals.

Parity with librosa is checked on the paper's features (128 mel bands, no floor: ``RECIPES["paper"]``);
the default features (64 bands floored 60 dB below each clip's peak) in ``test_default_features``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import SR, noise, sine
from emospec import audio, features, filterbank
from emospec.config import FeatureConfig
from emospec.errors import FeatureError
from emospec.recipe import RECIPES

CFG = RECIPES["paper"].features
"""The paper's features: 128 mel bands, no floor (librosa's ``power_to_db(top_db=None)``)."""


def test_paper_features_match_the_paper():
    assert (CFG.win_length, CFG.hop_length, CFG.n_fft, CFG.n_mels, CFG.top_db) == (400, 160, 512, 128, None)
    assert (CFG.fmin_hz, CFG.fmax_hz, CFG.mel_scale, CFG.amin) == (0.0, 8000.0, "slaney", 1e-10)


def test_shape_dtype_frames():
    f = features.extract(sine(440, 1.0), CFG)
    assert f.shape == (3, 128, 101) and f.dtype == torch.float32
    assert features.extract(np.zeros(1, np.float32), CFG).shape == (3, 128, 1)


def test_default_features():
    """64 bands floored 60 dB below the clip's peak: a sine's silent tail reads peak - 60 dB, not -100 dB; and that
    tail is trimmed (40 dB) but for the 5 frames kept after the last sounding one (frame 51 of 0.5 s at 10 ms)."""
    y = np.concatenate([sine(440, 0.5), np.zeros(8000, np.float32)])
    f = features.extract(y)
    assert f.shape == (3, 64, 52 + features.TRIM_PAD_FRAMES) and f.dtype == torch.float32
    assert torch.allclose(f[0, :, 52:], torch.full((64, 5), float(f[0].max()) - 60.0), atol=1e-4)
    whole = features.extract(y, FeatureConfig(trim_db=None))
    assert whole.shape == (3, 64, 101) and torch.equal(whole[:, :, :57], f)
    assert torch.allclose(whole[0, :, 70:], torch.full((64, 31), float(f[0].max()) - 60.0), atol=1e-4)
    paper = features.extract(y, CFG)
    assert paper.shape == (3, 128, 101) and float(paper[0, :, 70:].max()) == pytest.approx(-100.0, abs=1e-4)


def test_relative_to_peak_features_do_not_change_with_the_recordings_gain(ravdess_clips):
    """``relative_to_peak``: 0 dB at the clip's loudest band and frame, the floor at -60 dB, and a clip 20 dB
    quieter (another microphone gain) gives the same features (librosa's ``power_to_db(ref=np.max, top_db=60)``
    on channel 0); without it channel 0 moves by the 20 dB. Padded batches give what each clip gives alone."""
    import librosa

    rel = FeatureConfig(relative_to_peak=True)
    y = audio.load(ravdess_clips[2])
    loud, quiet = features.extract(y, rel), features.extract(0.1 * y, rel)
    assert float(loud[0].max()) == pytest.approx(0.0, abs=1e-6) and float(loud[0].min()) == pytest.approx(-60.0, abs=1e-4)
    assert torch.allclose(loud, quiet, atol=1e-3)
    absolute = features.extract(y) - features.extract(0.1 * y)
    assert float(absolute[0].mean()) == pytest.approx(20.0, abs=0.5) and torch.allclose(absolute[1:], torch.zeros(1), atol=0.05)
    start, stop = features.sound_frames(y, rel)  # the default trims the leading and trailing silence: compare those frames
    assert (stop - start) == loud.shape[-1] < len(y) // 160
    S = librosa.power_to_db(librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, window="hann", center=True, pad_mode="constant",
        power=2.0, n_mels=64, fmin=0.0, fmax=8000.0), ref=np.max, amin=1e-10, top_db=60.0)
    assert np.abs(loud[0].numpy() - S[:, start:stop]).max() < 1e-3
    short = 0.3 * y[: len(y) // 3]
    batch, frames = features.extract_batch(np.stack([y, np.pad(short, (0, len(y) - len(short)))]), rel,
                                           lengths=[len(y), len(short)])
    alone = features.extract(short, rel)
    assert torch.allclose(batch[1, :, :, : int(frames[1])], alone, atol=1e-4)
    assert int(frames[0]) == loud.shape[-1] and torch.allclose(batch[0, :, :, : int(frames[0])], loud, atol=1e-4)


def test_1khz_sine_peaks_in_the_right_mel_band():
    f = features.extract(sine(1000.0, 1.0), CFG)
    band = int(torch.argmax(f[0, :, 50]))
    fb = filterbank.mel_filterbank(CFG)
    bin_1k = int(round(1000 * CFG.n_fft / SR))  # FFT bin 32
    assert band == int(np.argmax(fb[:, bin_1k]))
    # and that band's centre is within one band width of 1 kHz
    mel_edges = np.linspace(filterbank.hz_to_mel(0, "slaney"), filterbank.hz_to_mel(8000, "slaney"), 130)
    centres = filterbank.mel_to_hz(mel_edges, "slaney")[1:-1]
    assert abs(centres[band] - 1000.0) < (centres[band + 1] - centres[band - 1]) / 2


def test_delta_of_a_ramp_is_its_slope_and_delta2_is_zero():
    # A ramp in dB over frames: the regression delta recovers the slope exactly away from edges.
    t = torch.arange(50, dtype=torch.float32)
    static = (0.7 * t - 20.0).expand(2, 50).clone()[None]  # (1, n_mels=2, frames=50)
    out = features._deltas(static, None, FeatureConfig(n_mels=2))
    assert torch.allclose(out[0, 1, :, 2:-2], torch.full((2, 46), 0.7), atol=1e-5)
    assert torch.allclose(out[0, 2, :, 2:-2], torch.zeros(2, 46), atol=1e-5)
    # edges repeated: at frame 0 the window sees [c0, c0, c0, c1, c2]
    assert out[0, 1, 0, 0].item() == pytest.approx((1 * 0.7 + 2 * 1.4) / 10, abs=1e-5)


def test_quadratic_has_constant_delta2():
    t = torch.arange(40, dtype=torch.float64)
    static = (0.05 * t**2).expand(1, 40)[None].float()
    out = features._deltas(static, None, FeatureConfig(n_mels=1))
    assert torch.allclose(out[0, 2, 0, 2:-2], torch.full((36,), 0.1), atol=1e-4)


def _librosa_reference(y):
    import librosa

    S = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, win_length=400, window="hann",
                                       center=True, pad_mode="constant", power=2.0, n_mels=128, fmin=0.0, fmax=8000.0),
        ref=1.0, amin=1e-10, top_db=None)
    d1 = librosa.feature.delta(S, width=5, order=1, mode="nearest")
    d2 = librosa.feature.delta(S, width=5, order=2, mode="nearest")
    return S, d1, d2


def test_parity_with_librosa_on_real_speech(ravdess_clips, shared_data):
    clips = list(ravdess_clips) + [shared_data / "emovo" / "f1" / "rab-f1-b1.flac"]
    worst = np.zeros(3)
    for p in clips:
        y = audio.load(p)
        S, d1, d2 = _librosa_reference(y)
        f = features.extract(y, CFG).numpy()
        assert f.shape == (3,) + S.shape
        worst = np.maximum(worst, [np.abs(f[0] - S).max(), np.abs(f[1] - d1).max(), np.abs(f[2] - d2).max()])
    assert worst[0] <= 1e-3, f"static log-Mel differs from librosa by {worst[0]:.2e} dB"
    assert worst[1] <= 1e-3 and worst[2] <= 1e-3, f"deltas differ by {worst[1]:.2e}, {worst[2]:.2e}"


def test_mel_filterbank_matches_librosa():
    import librosa

    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=128, fmin=0.0, fmax=8000.0)
    assert np.abs(filterbank.mel_filterbank(CFG) - ref).max() < 1e-6


def _framed(sound: np.ndarray, before_s: float, after_s: float) -> np.ndarray:
    """``sound`` between stretches of faint noise (80 dB below it) of ``before_s`` and ``after_s`` seconds."""
    return np.concatenate([noise(before_s, amp=5e-5, seed=7), sound, noise(after_s, amp=5e-5, seed=8)])


def test_trim_db_drops_leading_and_trailing_silence_and_keeps_pauses():
    """0.5 s faint noise, 1 s tone, 0.3 s digital silence, 0.4 s tone, 0.6 s faint noise: trimming keeps the tones,
    the pause between them and 5 frames either side, and its frames are the untrimmed features' own."""
    sound = np.concatenate([sine(440, 1.0), np.zeros(int(0.3 * SR), np.float32), sine(1000, 0.4)])
    clip = _framed(sound, 0.5, 0.6)
    cfg = replace(CFG, trim_db=40.0)
    full, trimmed = features.extract(clip, CFG), features.extract(clip, cfg)
    assert full.shape[-1] == 281
    n = trimmed.shape[-1]
    sound_frames = len(sound) / cfg.hop_length  # 170 frames of tones and pause
    assert sound_frames + 2 * features.TRIM_PAD_FRAMES <= n <= sound_frames + 2 * features.TRIM_PAD_FRAMES + 4
    start, stop = features.sound_frames(clip, cfg)
    assert stop - start == n and torch.equal(trimmed, full[:, :, start:stop])  # one stretch of the untrimmed frames
    assert features.sound_frames(clip, CFG) == (0, 281)
    assert 50 - features.TRIM_PAD_FRAMES - 2 <= start <= 50 - features.TRIM_PAD_FRAMES  # the tone starts at frame 50
    pause = trimmed[0, :, 50 - start + 110 : 50 - start + 120]  # the middle of the 0.3 s of zeros, kept
    assert float(pause.max()) < float(trimmed[0].max()) - 60.0


def test_trim_db_leaves_a_clip_without_silence_whole():
    cfg = replace(CFG, trim_db=40.0)
    clip = sine(440, 0.7)
    assert torch.equal(features.extract(clip, cfg), features.extract(clip, CFG))


@pytest.mark.parametrize("trim_db", [None, 40.0])
def test_batch_with_lengths_equals_single_clips(trim_db):
    cfg = replace(CFG, trim_db=trim_db)
    clips = [sine(440, 0.7), noise(1.3, seed=1), sine(2000, 0.05), _framed(sine(300, 0.4), 0.3, 0.5)]
    n = max(len(c) for c in clips)
    waves = np.zeros((len(clips), n), np.float32)
    for i, c in enumerate(clips):
        waves[i, : len(c)] = c
    batch, frames = features.extract_batch(waves, cfg, lengths=[len(c) for c in clips])
    assert batch.shape == (len(clips), 3, 128, cfg.n_frames(n))
    if trim_db is not None:
        assert int(frames[3]) < cfg.n_frames(len(clips[3])) - 60  # 0.8 s of faint noise trimmed
    assert [t.shape[-1] for t in features.extract_many(clips, cfg)] == frames.tolist()
    for i, c in enumerate(clips):
        single = features.extract(c, cfg)
        assert int(frames[i]) == single.shape[-1]
        assert torch.allclose(batch[i, :, :, : single.shape[-1]], single, atol=1e-4)
        assert torch.all(batch[i, :, :, single.shape[-1]:] == 0)


def test_bad_inputs_raise_feature_error():
    with pytest.raises(FeatureError, match="empty"):
        features.extract(np.zeros(0, np.float32))
    with pytest.raises(FeatureError, match="shape"):
        features.extract(np.zeros((2, 10), np.float32))
    with pytest.raises(FeatureError, match="lengths"):
        features.extract_batch(np.zeros((2, 10), np.float32), lengths=[5, 11])


def test_silence_share_probe_counts_the_quiet_frames_and_what_trimming_keeps():
    """``benchmarks/silence_share.py`` on 0.5 s faint noise, 1 s tone, 0.5 s faint noise (201 frames): about half the
    frames are quiet, and trimming keeps the tone's 100 frames plus 5 either side (and the frames its edges touch)."""
    from benchmark_scripts import load_benchmark

    probe = load_benchmark("silence_share")
    quiet, kept = probe.silence_shares(_framed(sine(440, 1.0), 0.5, 0.5), FeatureConfig(), 40.0)
    assert 95 / 201 <= quiet <= 101 / 201
    assert 110 / 201 <= kept <= 114 / 201
    quiet, kept = probe.silence_shares(sine(440, 1.0), FeatureConfig(), 40.0)
    assert quiet == 0.0 and kept == 1.0
