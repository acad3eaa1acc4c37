"""emospec.augment: audiomentations versions of real clips, seeded, standardised like their originals,
drawn per epoch by CropDataset and used by experiment.train_on."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from emospec import audio, features
from emospec.augment import (
    AUGMENT_VERSION,
    VOICE_SEMITONES,
    VOICE_VERSION,
    augment_wave,
    augmented_features,
    contrast_versions,
    standardised_versions,
    voice_features,
    voice_shift,
    voice_wave,
)
from emospec.checkpoint import load_model
from emospec.config import FeatureConfig, TrainConfig
from emospec.data.dataset import CropDataset
from emospec.data.manifest import Utterance
from emospec.errors import ConfigError
from emospec.experiment import train_on


def test_augment_wave_is_seeded_and_leaves_the_global_streams_alone(ravdess_clips):
    w = audio.load(ravdess_clips[0])
    random.seed(5)
    np.random.seed(5)
    expect_py, expect_np = random.random(), np.random.random()
    random.seed(5)
    np.random.seed(5)
    a = augment_wave(w, 16000, seed=3)
    assert (random.random(), np.random.random()) == (expect_py, expect_np)  # callers' streams untouched
    assert np.array_equal(a, augment_wave(w, 16000, seed=3))
    outs = [augment_wave(w, 16000, seed=s) for s in range(8)]
    assert all(o.dtype == np.float32 and np.all(np.isfinite(o)) and np.abs(o).max() <= 1.0 for o in outs)
    changed = [o.shape != w.shape or np.abs(o - w).max() > 1e-3 for o in outs]
    assert sum(changed) >= 6  # almost every version carries at least one change
    assert len({o.tobytes() for o in outs}) >= 6  # seeds give different versions


@pytest.mark.parametrize("trim_db", [None, 40.0])
def test_versions_are_the_same_speech_recorded_differently(ravdess_clips, trim_db):
    """Every frame kept, a version's length differs by the tempo change alone; trimmed (the default), the noise a
    version adds may also keep more of the clip's quiet edges, never more than the whole clip."""
    cfg = FeatureConfig(trim_db=trim_db)
    orig = features.extract(audio.load(ravdess_clips[1]), cfg)
    whole = features.extract(audio.load(ravdess_clips[1]), FeatureConfig(trim_db=None)).shape[-1]
    versions = augmented_features([str(ravdess_clips[1])], 6, cfg, seed=0, progress=False)[0]
    assert len(versions) == 6
    spectrum = orig[0].mean(-1)  # long-term log-Mel spectrum, (n_mels,) dB
    moved = []
    for v in versions:
        assert v.shape[:2] == orig.shape[:2] and torch.isfinite(v).all()
        if trim_db is None:
            assert abs(v.shape[-1] - orig.shape[-1]) <= 0.1 * orig.shape[-1]  # tempo changes stay within 8 %
        else:
            assert orig.shape[-1] < whole and 0.9 * orig.shape[-1] <= v.shape[-1] <= 1.1 * whole
        s = v[0].mean(-1)
        assert np.corrcoef(spectrum.numpy(), s.numpy())[0, 1] > 0.6  # still this clip's speech
        moved.append(float((s - spectrum).abs().mean()))
    assert max(moved) > 1.0  # and at least one version is coloured or levelled by more than 1 dB a band


def test_an_unreadable_clip_gets_no_versions_and_one_line(tmp_path, ravdess_clips, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not audio")
    out = augmented_features([str(bad), str(ravdess_clips[0])], 2, seed=0, progress=False)
    assert out[0] == [] and len(out[1]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.wav" in err[0]
    with pytest.raises(ConfigError):
        TrainConfig(augment_copies=-1)


def test_crop_dataset_draws_every_version_and_keeps_its_crops_without_them():
    feats = [torch.zeros(3, 4, 50), torch.zeros(3, 4, 80)]
    plain = CropDataset(feats, [0, 1], 20, torch.zeros(3, 4), seed=1)
    again = CropDataset(feats, [0, 1], 20, torch.zeros(3, 4), seed=1, versions=None)
    seen = set()
    ds = CropDataset(feats, [0, 1], 20, torch.zeros(3, 4), seed=1,
                     versions=[[torch.ones(3, 4, 50), torch.full((3, 4, 50), 2.0)], []])
    for e in range(40):
        for d in (plain, again, ds):
            d.set_epoch(e)
        assert np.array_equal(plain.starts, again.starts)
        x0, _ = ds[0]
        x1, _ = ds[1]
        assert x0.shape == (3, 4, 20) and float(x1.abs().max()) == 0.0  # a clip without versions is itself
        seen.add(float(x0[0, 0, 0]))
    assert seen == {0.0, 1.0, 2.0} and len(ds) == 2


def test_version_k_of_a_speaker_is_standardised_as_a_speaker_of_its_own():
    rows = [Utterance(f"{i}.wav", "c", str(i), f"s{i % 2}", "f", "x", "neutral") for i in range(4)]
    g = torch.Generator().manual_seed(0)
    versions = [[torch.randn(3, 4, 30, generator=g) * 3 + 10 * (k + 1) for k in range(2)] for _ in rows]
    normed = standardised_versions(rows, versions, "speaker")
    for k in range(2):
        for spk in (0, 1):
            x = torch.cat([normed[i][k] for i in range(4) if i % 2 == spk], -1)
            assert torch.allclose(x.mean(-1), torch.zeros(3, 4), atol=1e-4)
            assert torch.allclose(x.std(-1, unbiased=False), torch.ones(3, 4), atol=1e-3)
    raw = standardised_versions(rows, versions, "global")
    assert torch.equal(raw[2][1], versions[2][1])


def _eight_real_clips(ravdess_clips):
    """The 8 RAVDESS clips as rows of two speakers, their dB features, class indices and the four classes."""
    classes = ["neutral", "happy", "angry", "sad"]
    emotions = ["neutral", "happy", "sad", "angry"] * 2
    rows = [Utterance(str(p), "ravdess", p.stem, f"a{i // 4}", "f", e, e) for i, (p, e) in enumerate(zip(ravdess_clips, emotions))]
    feats = [features.extract(audio.load(p)) for p in ravdess_clips]
    return rows, feats, np.array([classes.index(e) for e in emotions]), classes


def test_train_on_trains_on_augmented_versions_and_says_so(ravdess_clips, tmp_path):
    rows, feats, y, classes = _eight_real_clips(ravdess_clips)
    cfg = TrainConfig(epochs=2, batch_size=4, crop_s=0.5, val_fraction=0.0, select="last", augment_copies=1)
    trained = train_on(rows, feats, y, classes, np.arange(8), tmp_path / "run", name="aug", speaker_independent=True,
                       train_config=cfg, progress=False)
    assert trained.fit.best_epoch == 1
    saved = load_model(tmp_path / "run")
    assert saved.meta["augment"] == AUGMENT_VERSION
    assert all(np.isfinite(h["train_loss"]) for h in trained.fit.history)


def test_skewed_statistics_versions_standardise_a_speaker_with_an_unbalanced_subset():
    from emospec.norm import _skewed_subset, skewed_subset_versions

    # 2 speakers x 4 classes x 6 clips; class c sits 12*c dB up, so a subset's mean shows its class mix
    rows, feats, y = [], [], []
    g = torch.Generator().manual_seed(0)
    for spk in ("s1", "s2"):
        for c in range(4):
            for k in range(6):
                rows.append(Utterance(f"{spk}{c}{k}.wav", "x", f"{spk}{c}{k}", spk, "f", "e", "neutral"))
                feats.append(torch.randn(3, 2, 40, generator=g) + 12.0 * c)
                y.append(c)
    versions = skewed_subset_versions(rows, feats, y, "speaker", 12, seed=3)
    assert len(versions) == 48 and all(len(v) == 12 for v in versions)
    again = skewed_subset_versions(rows, feats, y, "speaker", 12, seed=3)
    assert all(torch.equal(a, b) for va, vb in zip(versions, again) for a, b in zip(va, vb))
    shifts = []
    for k in range(12):  # within a speaker one (mean, std) per bin maps every raw clip to its version
        x = torch.stack([feats[i] for i in range(24)])
        v = torch.stack([versions[i][k] for i in range(24)])
        slope = (v[1] - v[0]).mean(-1) / (x[1] - x[0]).mean(-1)
        assert torch.allclose(v, (x - x[0]) * slope[..., None] + v[0], atol=1e-3)
        shifts.append(float(v[:, 0].mean()))  # standardised mean of the speaker: 0 only for a balanced subset
    assert max(abs(s) for s in shifts) > 0.5 and len({round(s, 3) for s in shifts}) > 6
    rng = np.random.default_rng(0)
    by_class = {c: list(range(c * 10, c * 10 + 10)) for c in range(4)}
    tops = []
    for _ in range(200):
        subset = _skewed_subset(rng, by_class, [0, 1, 2, 3], 20)
        counts = np.bincount(np.array(subset) // 10, minlength=4)
        assert 1 <= len(subset) <= 22 and counts.max() >= counts.sum() / 4 - 1
        tops.append(int(counts.argmax()))
    assert set(tops) == {0, 1, 2, 3}  # every class is sometimes the dominant one
    assert skewed_subset_versions(rows, feats, y, "global", 3) == [[] for _ in rows]


def test_population_versions_leave_each_speakers_offset_in_as_inference_without_adaptation_does(tmp_path):
    from emospec.norm import inference_model, population_versions

    # two speakers 20 dB apart: standardised per speaker they look alike; with the pooled statistics they do not
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(3, 64, 60, generator=g) + (20.0 if i >= 4 else 0.0) for i in range(8)]
    versions = population_versions(feats, "speaker")
    assert all(len(v) == 1 for v in versions)
    pooled = torch.cat(feats, -1)
    mean, std = pooled.mean(-1, keepdim=True), pooled.std(-1, unbiased=False, keepdim=True)
    for f, (v,) in zip(feats, versions):
        assert torch.allclose(v, (f - mean) / std, atol=1e-4)
    low, high = (float(torch.stack([versions[i][0] for i in idx]).mean()) for idx in (range(4), range(4, 8)))
    assert low < -0.9 and high > 0.9  # the speakers' offsets stay in, about one pooled std each way
    assert population_versions(feats, "global") == [[] for _ in feats] == population_versions(feats, "utterance")

    rows = [Utterance(f"c{i}.wav", "x", f"c{i}", f"s{i // 4}{i % 2}", "f", "e", "neutral") for i in range(8)]
    y = np.array([0, 1] * 4)
    cfg = TrainConfig(epochs=1, batch_size=4, crop_s=0.3, val_fraction=0.0, select="last", population_copy=True, precise_bn=0)
    train_on(rows, feats, y, ["neutral", "sad"], np.arange(8), tmp_path / "run", name="pop", speaker_independent=True,
             feature_config=FeatureConfig(n_mels=64), train_config=cfg, progress=False)
    saved = load_model(tmp_path / "run")
    assert saved.meta["population_copy"] is True
    from emospec.experiment import _versions  # what train_on hands fit (drawn per epoch by CropDataset)
    from emospec.norm import normalize_for

    handed = _versions(rows, feats, normalize_for(rows, feats, "speaker"), y, ["neutral", "sad"], np.arange(8), "speaker",
                       FeatureConfig(n_mels=64), cfg, False)
    assert handed is not None and all(torch.equal(a[0], b[0]) for a, b in zip(handed, versions))
    folded = inference_model(saved.model, saved.meta)  # the population statistics the versions were standardised with
    assert torch.allclose(folded.input_mean.reshape(3, 64) - saved.model.input_mean.reshape(3, 64) * std.reshape(3, 64),
                          mean.reshape(3, 64), atol=1e-3)


def test_train_on_chooses_the_clip_weight_on_the_validation_speakers_and_saves_it(tmp_path):
    """A per-speaker model's file says how far each clip's own statistics move the population's without
    adaptation clips: the weight :func:`choose_clip_weight` picks on the validation speakers' raw clips."""
    from emospec.norm import CLIP_WEIGHT_KEY, CLIP_WEIGHTS, choose_clip_weight

    g = torch.Generator().manual_seed(2)
    feats = [torch.randn(3, 64, 60, generator=g) - 40.0 + 10.0 * (i % 2) for i in range(16)]
    rows = [Utterance(f"c{i}.wav", "x", f"c{i}", f"s{i // 4}", "f", "e", "neutral") for i in range(16)]
    y = np.array([0, 1] * 8)
    cfg = TrainConfig(epochs=1, batch_size=4, crop_s=0.3, val_fraction=0.25, precise_bn=0)
    trained = train_on(rows, feats, y, ["neutral", "sad"], np.arange(16), tmp_path / "run", name="w", speaker_independent=True,
                       feature_config=FeatureConfig(n_mels=64), train_config=cfg, progress=False)
    saved = load_model(tmp_path / "run")
    assert len(trained.val_idx) == 4 and saved.meta[CLIP_WEIGHT_KEY] in CLIP_WEIGHTS
    again = choose_clip_weight(saved.model, saved.meta, [feats[i] for i in trained.val_idx], y[trained.val_idx])
    assert {k: saved.meta[k] for k in again} == again and len(again["clip_weight_val_ua"]) == len(CLIP_WEIGHTS)
    assert trained.population[CLIP_WEIGHT_KEY] == saved.meta[CLIP_WEIGHT_KEY]


def test_contrast_versions_move_each_clip_part_of_the_way_to_its_speakers_neutral():
    # 2 speakers x (neutral, angry) x 3 clips, 5 bands x 30 frames; angry sits 6 dB up with 3 dB more in the top band;
    # speaker s2 is 10 dB louder; a third speaker has angry clips only
    g = torch.Generator().manual_seed(1)
    feats, groups, y = [], [], []
    for spk, level in (("s1", 0.0), ("s2", 10.0), ("s3", 5.0)):
        for c in ((0, 2) if spk != "s3" else (2,)):
            for _ in range(3):
                f = torch.randn(3, 5, 30, generator=g) + level
                if c == 2:
                    f[0] += 6.0
                    f[0, 4] += 3.0
                feats.append(f)
                groups.append(spk)
                y.append(c)
    versions = contrast_versions(feats, groups, y, 4, reference=0, low=0.25, seed=7)
    assert len(versions) == len(feats) and all(len(v) == 4 for v in versions)
    again = contrast_versions(feats, groups, y, 4, reference=0, low=0.25, seed=7)
    assert all(torch.equal(a, b) for va, vb in zip(versions, again) for a, b in zip(va, vb))
    other = contrast_versions(feats, groups, y, 4, reference=0, low=0.25, seed=8)
    assert not torch.equal(versions[3][0], other[3][0])
    shares = []
    for i, (f, vs) in enumerate(zip(feats, versions)):
        same = [j for j in range(len(feats)) if groups[j] == groups[i] and (y[j] == 0 or groups[i] == "s3")]
        ref = torch.stack([feats[j][0].mean(-1) for j in same]).mean(0)  # s3 has no neutral: its own mean
        m = f[0].mean(-1)
        for v in vs:
            assert v.shape == f.shape and torch.equal(v[1:], f[1:])  # deltas of a constant offset: none
            assert torch.allclose(v[0] - v[0].mean(-1, keepdim=True), f[0] - m[:, None], atol=1e-4)  # dynamics kept
            d, moved = m - ref, v[0].mean(-1) - ref
            s = float(moved @ d / (d @ d))  # the same share of the distance kept in every band
            assert torch.allclose(moved, s * d, atol=1e-4)
            shares.append(s)
    assert 0.25 - 1e-3 <= min(shares) and max(shares) <= 1.0 + 1e-3 and max(shares) - min(shares) > 0.4
    angry_s1 = [float(v[0].mean() - feats[3][0].mean()) for v in versions[3]]  # angry moves down, by up to 3/4 of 6.6 dB
    assert all(-5.1 < d < 0.0 for d in angry_s1)
    assert contrast_versions(feats, groups, y, 0) == [[] for _ in feats]
    with pytest.raises(ConfigError):
        contrast_versions(feats, groups, y, 1, low=1.5)
    with pytest.raises(ConfigError):
        TrainConfig(contrast_copies=-1)


def test_train_on_trains_on_contrast_versions_and_says_so(ravdess_clips, tmp_path):
    rows, feats, y, classes = _eight_real_clips(ravdess_clips)
    cfg = TrainConfig(epochs=2, batch_size=4, crop_s=0.5, val_fraction=0.0, select="last", contrast_copies=2, contrast_low=0.5)
    trained = train_on(rows, feats, y, classes, np.arange(8), tmp_path / "run", name="contrast", speaker_independent=True,
                       train_config=cfg, progress=False)
    saved = load_model(tmp_path / "run")
    assert (saved.meta["contrast_copies"], saved.meta["contrast_low"]) == (2, 0.5)
    from emospec.experiment import _versions  # what train_on hands fit: shrunk towards each speaker's neutral clip
    from emospec.norm import normalize_for

    normed = normalize_for(rows, feats, "speaker")
    handed = _versions(rows, feats, normed, y, classes, np.arange(8), "speaker", FeatureConfig(), cfg, False)
    expected = contrast_versions(normed, [("ravdess", r.speaker) for r in rows], y, 2, reference=0, low=0.5)
    assert handed is not None and all(len(h) == 2 and all(torch.equal(a, b) for a, b in zip(h, e)) for h, e in zip(handed, expected))
    neutral = normed[0][0].mean(-1)  # speaker a0's one neutral clip is its reference
    kept = [float((v[0].mean(-1) - neutral).norm() / (normed[3][0].mean(-1) - neutral).norm()) for v in handed[3]]
    assert all(0.5 - 1e-4 <= k <= 1.0 + 1e-4 for k in kept)
    assert all(np.isfinite(h["train_loss"]) for h in trained.fit.history)


def test_virtual_speakers_shift_every_clip_of_a_speaker_by_one_draw():
    draws = {(spk, k): voice_shift(spk, k, seed=0) for spk in ("ravdess/01", "ravdess/02", "emovo/m1") for k in range(3)}
    assert voice_shift("ravdess/01", 1, seed=0) == draws[("ravdess/01", 1)]  # stable: one draw per speaker and version
    assert len(set(draws.values())) == len(draws)  # speakers and versions get their own voices
    assert voice_shift("ravdess/01", 1, seed=1) != draws[("ravdess/01", 1)]
    assert all(abs(st) <= VOICE_SEMITONES and 0.9 <= t <= 1.1 for st, t in draws.values())


def test_voice_wave_moves_pitch_by_the_semitones_and_length_by_the_tempo():
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)

    def peak_hz(x):
        spec = np.abs(np.fft.rfft(x[2000:-2000] * np.hanning(len(x) - 4000)))
        return float(np.fft.rfftfreq(len(x) - 4000, 1 / sr)[np.argmax(spec)])

    up = voice_wave(tone, sr, 3.0, 1.0)
    down = voice_wave(tone, sr, -3.0, 1.0)
    assert abs(peak_hz(up) - 440.0 * 2 ** (3 / 12)) < 8.0  # 523 Hz
    assert abs(peak_hz(down) - 440.0 * 2 ** (-3 / 12)) < 8.0  # 370 Hz
    faster = voice_wave(tone, sr, 0.0, 1.1)
    assert abs(len(faster) - sr / 1.1) < 0.01 * sr and abs(peak_hz(faster) - 440.0) < 8.0
    assert all(o.dtype == np.float32 and np.abs(o).max() <= 1.0 for o in (up, down, faster))


def test_voice_versions_of_real_clips_and_a_bad_clip(ravdess_clips, tmp_path, capsys):
    cfg = FeatureConfig()
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not audio")
    paths = [str(ravdess_clips[0]), str(ravdess_clips[1]), str(bad)]
    out = voice_features(paths, ["a", "a", "a"], 2, cfg, seed=0, progress=False)
    assert out[2] == [] and [len(v) for v in out[:2]] == [2, 2]
    assert "broken.wav" in capsys.readouterr().err
    for path, versions in zip(paths[:2], out[:2]):
        orig = features.extract(audio.load(path), cfg)
        for k, v in enumerate(versions):
            _, tempo = voice_shift("a", k, seed=0)
            assert v.shape[:2] == orig.shape[:2] and torch.isfinite(v).all()
            assert abs(v.shape[-1] - orig.shape[-1] / tempo) <= 3  # frames follow the speaker's tempo
    with pytest.raises(ConfigError):
        TrainConfig(voice_copies=-1)


def test_train_on_trains_on_virtual_speakers_and_says_so(ravdess_clips, tmp_path):
    rows, feats, y, classes = _eight_real_clips(ravdess_clips)
    cfg = TrainConfig(epochs=2, batch_size=4, crop_s=0.5, val_fraction=0.0, select="last", voice_copies=1)
    trained = train_on(rows, feats, y, classes, np.arange(8), tmp_path / "run", name="voices", speaker_independent=True,
                       train_config=cfg, progress=False)
    saved = load_model(tmp_path / "run")
    assert saved.meta["voices"] == VOICE_VERSION and saved.meta["voice_copies"] == 1
    assert all(np.isfinite(h["train_loss"]) for h in trained.fit.history)
