"""emospec.audio: decoding, mono mixing, resampling, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, sine
from emospec import audio
from emospec.errors import AudioError


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_bit_depths_load_as_float32_in_range(tmp_path, subtype):
    p = tmp_path / f"x_{subtype}.wav"
    sf.write(p, sine(440, 0.5), SR, subtype=subtype)
    x = audio.load(p)
    assert x.dtype == np.float32 and x.shape == (8000,)
    tol = 0.01 if subtype == "PCM_U8" else 1e-4
    assert np.max(np.abs(x - sine(440, 0.5))) < tol


def test_aiff_named_wav_loads(tmp_path):
    p = tmp_path / "actually_aiff.wav"
    sf.write(p, sine(440, 0.25), SR, format="AIFF", subtype="PCM_16")
    x = audio.load(p)
    assert x.shape == (4000,)
    assert np.max(np.abs(x - sine(440, 0.25))) < 1e-3


def test_stereo_is_averaged_and_48k_resampled(tmp_path):
    p = tmp_path / "stereo48k.flac"
    left, right = sine(440, 1.0, sr=48000, amp=0.4), np.zeros(48000, dtype=np.float32)
    sf.write(p, np.stack([left, right], 1), 48000, subtype="PCM_16")
    x = audio.load(p, sr=16000)
    assert x.shape == (16000,)
    # mono = mean of channels: amplitude 0.2; resampled sine keeps its frequency
    assert abs(np.max(np.abs(x[1000:-1000])) - 0.2) < 2e-3
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 16000 / len(x) - 440) <= 1


def test_real_48k_wav_matches_16k_flac_release(shared_data):
    wav = shared_data / "ravdess-wav-sample" / "Actor_01" / "03-01-05-01-01-01-01.wav"
    flac = shared_data / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.flac"
    a, b = audio.load(wav), audio.load(flac)
    assert abs(len(a) - len(b)) <= 1
    n = min(len(a), len(b))
    # the shared FLACs are an independent 48k->16k conversion; both are the same speech
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.99


def test_info_reads_header(tmp_path):
    p = tmp_path / "h.wav"
    sf.write(p, sine(440, 0.5, sr=8000), 8000)
    i = audio.info(p)
    assert (i.sample_rate_hz, i.channels, i.frames) == (8000, 1, 4000)
    assert i.duration_s == pytest.approx(0.5)


@pytest.mark.parametrize(
    "make, cause",
    [
        (lambda d: d / "missing.wav", "file not found"),
        (lambda d: (d / "empty.wav").write_bytes(b"") and d / "empty.wav" or d / "empty.wav", "empty file"),
        (lambda d: (d / "text.wav").write_text("hello, not audio") and d / "text.wav", "not a readable audio file"),
        (lambda d: (d / "dir.wav").mkdir() or d / "dir.wav", "is a directory"),
    ],
)
def test_errors_are_one_line_and_name_the_file(tmp_path, make, cause):
    p = make(tmp_path)
    with pytest.raises(AudioError) as ei:
        audio.load(p)
    msg = str(ei.value)
    assert str(p) in msg and cause in msg and "\n" not in msg


def test_nan_samples_rejected(tmp_path):
    p = tmp_path / "nan.wav"
    x = sine(440, 0.1)
    x[10] = np.nan
    sf.write(p, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        audio.load(p)


def test_float_above_full_scale_is_scaled(tmp_path):
    p = tmp_path / "loud.wav"
    sf.write(p, 8.0 * sine(440, 0.1), SR, subtype="FLOAT")
    x = audio.load(p)
    assert np.max(np.abs(x)) == pytest.approx(1.0, abs=1e-6)


def test_bytes_and_file_objects(sine_wav):
    a = audio.load(sine_wav)
    b = audio.load(sine_wav.read_bytes())
    with open(sine_wav, "rb") as f:
        c = audio.load(f)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_stream_blocks_cover_the_file(tmp_path):
    p = tmp_path / "long.wav"
    x = sine(440, 5.0)
    sf.write(p, x, SR, subtype="FLOAT")
    blocks = list(audio.stream_blocks(p, SR, 2.0))
    assert [s for s, _ in blocks] == [0.0, 2.0, 4.0]
    assert np.allclose(np.concatenate([b for _, b in blocks]), x, atol=1e-7)
