"""Recognizer: inputs, exact ragged batching, embeddings, streaming timelines, bundled model, checkpoint errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

import emospec
from conftest import LABELS4, SR, noise
from emospec.checkpoint import FORMAT_VERSION, load_state, save_state
from emospec.errors import AudioError, CheckpointError, ConfigError
from emospec.model import EmoAlexNet
from emospec.norm import model_input
from emospec.predict import SILENCE_DBFS, Prediction, Recognizer
from emospec.ragged import RaggedAlexNet, pad_waves, pool_matrix
from emospec.recipe import RECIPES


@pytest.fixture(scope="module")
def rec(random_model_path) -> Recognizer:
    return emospec.load(random_model_path, device="cpu")


@pytest.fixture(scope="module")
def clip_set(ravdess_clips, tmp_path_factory):
    """Real clips of several lengths: 8 RAVDESS clips, a 0.5 s cut of speech (< 63 frames) and a 14 s concatenation."""
    d = tmp_path_factory.mktemp("clips")
    waves = [sf.read(p, dtype="float32")[0] for p in ravdess_clips]
    short, long_ = d / "short.wav", d / "long.flac"
    sf.write(short, waves[2][16000:24000], SR, subtype="FLOAT")  # 1.0-1.5 s: speech (0.5-1.0 s is silent)
    sf.write(long_, np.concatenate(waves[:4]), SR)
    return [*ravdess_clips, short, long_]


# --------------------------------------------------------------------------- ragged batching, exactness
@pytest.mark.parametrize("length", [1, 5, 6, 7, 13, 59, 60])
def test_pool_matrix_equals_adaptive_avg_pool(length):
    x = torch.randn(2, 4, 64)
    ref = torch.nn.functional.adaptive_avg_pool1d(x[..., :length], 6)
    got = torch.einsum("bcw,bwj->bcj", x, pool_matrix(torch.tensor([length, length]), 64, 6))
    assert torch.allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("recipe", ["default", "paper"])  # with BatchNorm and 64 mel bands, and without with 128
@pytest.mark.parametrize("pool", ["grid", "stats"])
def test_ragged_net_equals_model_clip_by_clip(recipe, pool):
    torch.manual_seed(1)
    model = EmoAlexNet(config=replace(RECIPES[recipe].model_for(4), pool=pool)).eval()
    n_mels = model.config.n_mels
    model.set_normalization(-40 + 4 * torch.randn(3, n_mels), 6 + torch.rand(3, n_mels))
    frames = [1, 40, 62, 63, 64, 101, 350]
    feats = [-40 + 10 * torch.randn(3, n_mels, t) for t in frames]
    batch = torch.zeros(len(frames), 3, n_mels, max(frames))
    for i, f in enumerate(feats):
        batch[i, ..., : f.shape[-1]] = f
    with torch.no_grad():
        probs, emb = RaggedAlexNet(model)(batch, torch.tensor(frames))
        for i, f in enumerate(feats):
            x = model_input(model, f[None])  # the default's per-speaker model standardises each clip alone
            ref_emb = model.embed(x)[0]
            assert torch.allclose(emb[i], ref_emb, atol=1e-5), frames[i]
            assert torch.allclose(probs[i], torch.softmax(model(x), 1)[0], atol=1e-6)
        # zero-padding the same clip through the plain model does change it: the wrapper is needed
        padded = torch.nn.functional.pad(feats[3], (0, 287))[None]
        assert (model.embed(padded)[0] - model.embed(feats[3][None])[0]).abs().max() > 1e-3


def test_pad_waves_shapes():
    batch, lengths = pad_waves([np.ones(3, np.float32), np.ones(5, np.float32)])
    assert batch.shape == (2, 5) and batch.dtype == np.float32
    assert lengths.tolist() == [3, 5] and batch[0, 3:].tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- API
def test_predict_returns_prediction(rec, ravdess_clips):
    p = rec.predict(ravdess_clips[0])
    assert isinstance(p, Prediction)
    assert p.label in LABELS4 and set(p.scores) == set(LABELS4)
    assert math.isclose(sum(p.scores.values()), 1.0, abs_tol=1e-5)
    assert p.label == max(p.scores, key=p.scores.get)
    assert len(p.embedding) == 256 and p.duration_s == pytest.approx(sf.info(ravdess_clips[0]).duration, abs=1e-3)
    assert p.silent is False and p.source == str(ravdess_clips[0])
    d = p.to_dict()
    assert [x["label"] for x in d["predictions"]] == [k for k, _ in p.top()]
    assert all(a["score"] >= b["score"] for a, b in zip(d["predictions"], d["predictions"][1:]))
    assert len(p.to_dict(top_k=2)["predictions"]) == 2 and "embedding" not in p.to_dict(embedding=False)


def test_scores_are_the_logits_divided_by_the_models_temperature(rec, ravdess_clips):
    from emospec import audio
    from emospec.features import extract

    assert float(rec.model.temperature) == pytest.approx(1.75)
    p = rec.predict(ravdess_clips[2])
    wave = torch.from_numpy(audio.load(ravdess_clips[2]))
    with torch.no_grad():
        logits = rec.model(model_input(rec.model, extract(wave, rec.feature_config)[None]))[0]
    want = torch.softmax(logits / 1.75, 0).numpy()
    assert np.allclose([p.scores[c] for c in rec.labels], want, atol=1e-5)
    assert not np.allclose(want, torch.softmax(logits, 0).numpy(), atol=1e-3)  # the temperature changed them


def test_model_is_not_trivially_uniform(rec, clip_set):
    """The fixture model's outputs vary enough for the parity tests below to mean something."""
    probs = np.array([[p.scores[c] for c in LABELS4] for p in rec.predict_batch(clip_set[:8])])
    assert probs.max() - probs.min() > 0.2
    assert np.abs(np.diff(probs, axis=0)).max() > 0.01


def test_inputs_path_file_bytes_numpy_torch_agree(rec, ravdess_clips):
    path = ravdess_clips[1]
    wave, sr = sf.read(path, dtype="float32")
    ref = rec.predict(path)
    with open(path, "rb") as f:
        from_file = rec.predict(f)
    others = [from_file, rec.predict(path.read_bytes()), rec.predict(wave, sr=sr), rec.predict(torch.from_numpy(wave), sr=sr),
              rec.predict(np.stack([wave, wave], axis=1), sr=sr), rec.predict(str(path))]
    for p in others:
        assert p.label == ref.label
        assert max(abs(p.scores[c] - ref.scores[c]) for c in LABELS4) < 1e-6
        assert np.abs(np.array(p.embedding) - np.array(ref.embedding)).max() < 1e-5
    # a waveform at another rate is resampled to 16 kHz first
    up = rec.predict(rec.waveform(wave, sr=sr), sr=16000)
    assert up.duration_s == pytest.approx(ref.duration_s)


def test_predict_batch_equals_predict(rec, clip_set):
    single = [rec.predict(p) for p in clip_set]
    batched = rec.predict_batch(clip_set, batch_size=3)
    assert [b.source for b in batched] == [str(p) for p in clip_set]
    durations = [p.duration_s for p in single]
    assert min(durations) < 0.63 and max(durations) > 10
    for s, b in zip(single, batched):
        assert max(abs(s.scores[c] - b.scores[c]) for c in LABELS4) < 1e-5
        assert np.abs(np.array(s.embedding) - np.array(b.embedding)).max() < 1e-5
        assert s.label == b.label and s.duration_s == b.duration_s


def test_embed_is_the_prediction_embedding(rec, ravdess_clips):
    e = rec.embed(ravdess_clips[3])
    assert e.shape == (256,) and e.dtype == np.float32
    assert np.allclose(e, rec.predict(ravdess_clips[3]).embedding, atol=1e-6)
    assert (e >= 0).all()  # post-ReLU FC6


def test_bad_items_are_reported_and_the_rest_processed(rec, ravdess_clips, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    items = [ravdess_clips[0], bad, tmp_path / "missing.flac", ravdess_clips[1]]
    got = dict(rec.predict_iter(items, batch_size=2))
    assert sorted(got) == [0, 1, 2, 3]
    assert isinstance(got[0], Prediction) and isinstance(got[3], Prediction)
    assert isinstance(got[1], AudioError) and str(got[1]).startswith(f"{bad}: ")
    assert isinstance(got[2], AudioError) and "file not found" in str(got[2])
    with pytest.raises(AudioError, match="bad.wav"):
        rec.predict_batch(items)


def test_waveform_input_errors(rec):
    with pytest.raises(AudioError, match="sr="):
        rec.predict(np.zeros(1600, np.float32))
    with pytest.raises(AudioError, match="NaN"):
        rec.predict(np.full(1600, np.nan, np.float32), sr=SR)
    with pytest.raises(AudioError, match="empty"):
        rec.predict(np.zeros(0, np.float32), sr=SR)
    silent = rec.predict(np.zeros(1600, np.float32), sr=SR)
    assert (silent.silent, silent.label, silent.scores, silent.top()) == (True, None, {}, [])


def test_silence_is_not_an_emotion(rec, ravdess_clips):
    """A silent clip (below SILENCE_DBFS) gets no label and no scores; its embedding is still given."""
    speech = sf.read(ravdess_clips[0], dtype="float32")[0]
    quiet = 10 ** (SILENCE_DBFS / 20) / 2 * np.sign(np.sin(np.arange(SR) / 3)).astype(np.float32)  # -66 dBFS
    loud_enough = quiet * 4  # -54 dBFS: sound, so it gets an emotion
    got = rec.predict_batch([speech, np.zeros(10 * SR, np.float32), quiet, loud_enough], sr=SR, batch_size=4)
    assert [p.silent for p in got] == [False, True, True, False]
    assert [p.label is None for p in got] == [False, True, True, False]
    assert [len(p.scores) for p in got] == [4, 0, 0, 4] and got[1].duration_s == 10.0
    assert got[0].label == rec.predict(ravdess_clips[0]).label and len(got[1].embedding) == 256
    d = json.loads(json.dumps(got[1].to_dict(top_k=3)))
    assert (d["label"], d["scores"], d["predictions"], d["silent"]) == (None, {}, [], True)


def test_quiet_speech_between_long_pauses_is_not_silence(rec, ravdess_clips):
    """Silence is decided by the loudest 50 ms, not the clip's average: softly spoken speech with long pauses (six
    of RAVDESS's *sad* clips of actors 09 and 20 average -60 to -64 dBFS, peaks near -40) still gets an emotion."""
    speech = sf.read(ravdess_clips[0], dtype="float32")[0]
    pauses = np.zeros(4 * SR, np.float32)
    soft = np.concatenate([pauses, speech, pauses])
    soft *= 10 ** (-64 / 20) / np.sqrt(np.mean(np.square(soft - soft.mean())))  # -64 dBFS on average over the clip
    word = np.concatenate([np.zeros(5 * SR), 10 ** (-50 / 20) * np.sqrt(2) * np.sin(np.arange(SR // 4) / 3),
                           np.zeros(5 * SR)]).astype(np.float32)  # a 0.25 s sound at -50 dBFS in 10 s of silence
    got = rec.predict_batch([soft, word, 10 ** (-70 / 20) * np.sign(np.sin(np.arange(SR) / 3)).astype(np.float32)], sr=SR)
    assert [p.silent for p in got] == [False, False, True]
    assert got[0].label in rec.labels and len(got[0].scores) == len(rec.labels)


# --------------------------------------------------------------------------- long audio
@pytest.fixture(scope="module")
def long_file(ravdess_clips, tmp_path_factory):
    """A 2-minute 16 kHz FLAC: real clips back to back with quiet noise between."""
    parts, n = [], 0
    k = 0
    while n < 120 * SR:
        w = sf.read(ravdess_clips[k % len(ravdess_clips)], dtype="float32")[0]
        parts += [w, noise(0.5, amp=0.01, seed=k)]
        n += w.size + SR // 2
        k += 1
    path = tmp_path_factory.mktemp("long") / "two_minutes.flac"
    sf.write(path, np.concatenate(parts)[: 120 * SR], SR)
    return path


def test_timeline_streams_a_long_file(rec, long_file, monkeypatch):
    reads = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *a, **k):
        reads.append(frames)
        return real_read(self, frames, *a, **k)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    tl = rec.timeline(long_file, window_s=3.0, hop_s=1.0, batch_size=8)
    monkeypatch.undo()
    n = 1 + math.ceil((120 - 3) / 1)
    assert len(tl.starts_s) == n == 118 and tl.scores.shape == (n, 4)
    assert np.allclose(np.diff(tl.starts_s), 1.0) and tl.starts_s[-1] == 117.0
    assert tl.duration_s == pytest.approx(120.0)
    assert np.allclose(tl.scores.sum(1), 1.0, atol=1e-5)
    # streamed: one window per read, never the whole file
    assert len(reads) == n and all(0 < r <= 3 * SR for r in reads)
    # every window equals predicting that stretch of audio alone
    wave = sf.read(long_file, dtype="float32")[0]
    for k in (0, 57, 117):
        ref = rec.predict(wave[k * SR : (k + 3) * SR], sr=SR)
        assert np.abs(tl.scores[k] - [ref.scores[c] for c in LABELS4]).max() < 1e-5
    # the envelope covers the whole file at ENVELOPE_S resolution
    assert tl.envelope_t_s.size == pytest.approx(120 / 0.02, abs=2)
    assert tl.envelope_max.max() == wave.max() and tl.envelope_min.min() == wave.min()
    # the same recording as an array gives the same windows
    arr = rec.timeline(wave, window_s=3.0, hop_s=1.0, sr=SR, batch_size=5)
    assert np.allclose(arr.starts_s, tl.starts_s) and np.abs(arr.scores - tl.scores).max() < 1e-5


def test_timeline_short_and_uneven(rec, ravdess_clips, tmp_path):
    wave = sf.read(ravdess_clips[0], dtype="float32")[0]
    one = rec.timeline(ravdess_clips[0], window_s=10.0, hop_s=2.0)
    assert one.starts_s.tolist() == [0.0]
    ref = rec.predict(ravdess_clips[0])
    assert np.abs(one.scores[0] - [ref.scores[c] for c in LABELS4]).max() < 1e-5
    path = tmp_path / "ten_and_a_half.wav"
    sf.write(path, np.tile(wave, 4)[: int(10.5 * SR)], SR)
    with open(path, "rb") as f:
        tl = rec.timeline(f, window_s=3.0, hop_s=1.0)
    assert tl.starts_s.tolist() == [float(k) for k in range(9)]  # 1 + ceil(7.5) windows, the last one reaches 10.5 s
    windows = tl.to_dict()["windows"]
    assert windows[-1]["end_s"] == pytest.approx(10.5) and windows[0]["end_s"] == 3.0
    with pytest.raises(ConfigError):
        rec.timeline(path, window_s=0.0)


def test_timeline_plot_png(rec, ravdess_clips, tmp_path):
    import matplotlib.image as mpimg

    tl = rec.timeline(ravdess_clips[4], window_s=1.0, hop_s=0.5)
    out = tl.plot(tmp_path / "tl.png", title="test")
    img = mpimg.imread(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img.shape[0] > 300 and img.shape[1] > 800
    assert img[..., :3].std() > 0.05  # something is drawn


# --------------------------------------------------------------------------- models: bundled, errors
def test_bundled_model_loads_offline_and_predicts(ravdess_clips):
    rec = emospec.load(device="cpu")
    assert rec.labels == LABELS4 and rec.backend == "torch"
    assert next(iter(rec.model.parameters())).dtype == torch.float32
    p = rec.predict(ravdess_clips[0])
    assert p.label in LABELS4 and len(p.embedding) == 256
    card = rec.meta["model_card"]
    assert "CC BY-NC-SA 4.0" in card["licence"]["summary"] and "non-commercial" in card["licence"]["summary"]


def test_checkpoint_errors_name_the_file_and_cause(random_model_path, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(random_model_path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"corrupt\.pt: corrupt or unreadable checkpoint"):
        emospec.load(corrupt, device="cpu")
    obj = load_state(random_model_path)
    cases = {
        "version.pt": ({**obj, "format_version": FORMAT_VERSION + 1}, r"version\.pt: model format version 2 is not supported"),
        "foreign.pt": ({"state_dict": obj["state_dict"]}, r"foreign\.pt: not an emospec model file"),
        "config.pt": ({**obj, "model_config": {**obj["model_config"], "n_heads": 8}},
                      r"config\.pt: incompatible model description .*unknown ModelConfig key"),
        "labels.pt": ({**obj, "labels": ["a", "b"]}, r"labels\.pt: 2 labels but the model has 4 outputs"),
        "weights.pt": ({**obj, "model_config": {**obj["model_config"], "embed_dim": 128}},
                       r"weights\.pt: weights do not fit the described model"),
    }
    for name, (content, pattern) in cases.items():
        save_state(tmp_path / name, content)
        with pytest.raises(CheckpointError, match=pattern):
            emospec.load(tmp_path / name, device="cpu")
    with pytest.raises(CheckpointError, match="missing.pt: file not found"):
        emospec.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="ONNX file runs with backend='onnx'"):
        emospec.load(tmp_path / "x.onnx", backend="torch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(random_model_path, ravdess_clips):
    cpu = emospec.load(random_model_path, device="cpu").predict_batch(ravdess_clips[:4])
    gpu = emospec.load(random_model_path, device="cuda").predict_batch(ravdess_clips[:4])
    for a, b in zip(cpu, gpu):
        assert max(abs(a.scores[c] - b.scores[c]) for c in LABELS4) < 1e-3
