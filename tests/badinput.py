"""The bad-input corpus: the awkward files real corpora hold, generated at test time (no binaries).

Each :class:`Case` writes one thing (a file, a directory, a link) into a folder
and states what emospec must do with it:

* ``error`` -- the cause that must appear in the one-line
  :class:`~emospec.errors.AudioError` from :func:`emospec.audio.load` (the
  message also names the file); ``None`` means the file loads,
* ``samples`` / ``check`` -- for files that load: the exact length at 16 kHz
  and an assertion on the waveform's numbers,
* ``silent`` -- :meth:`Recognizer.predict` flags it ``silent`` and gives it no label
  and no scores (it predicts every file that loads: short clips are padded by the model),
* ``http`` / ``http_error`` -- the REST API's status and ``error`` for the
  file's bytes (``http=None``: not something a client can upload).

``build(folder)`` writes every case and returns ``{name: path}``;
:data:`CASES` is the table the tests iterate over.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import soundfile as sf

from emospec.config import FeatureConfig

SR = 16000
TONE_HZ = 440.0
LONG_S = 600.0
"""The long file: ten minutes."""

MP3_OK = "MP3" in sf.available_formats() and "MPEG_LAYER_III" in sf.available_subtypes("MP3")
VORBIS_OK = "OGG" in sf.available_formats() and "VORBIS" in sf.available_subtypes("OGG")
OPUS_OK = "OGG" in sf.available_formats() and "OPUS" in sf.available_subtypes("OGG")
NOT_AUDIO = "not a readable audio file"


def tone(duration_s: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    """``(samples,)`` float64 440 Hz sine."""
    t = np.arange(int(round(duration_s * sr))) / sr
    return amp * np.sin(2 * np.pi * TONE_HZ * t)


def wav_bytes(x: np.ndarray, sr: int = SR, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    """``(samples[, channels])`` -> the bytes of a sound file."""
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def peak_hz(x: np.ndarray, sr: int = SR) -> float:
    """Frequency (Hz) of the largest FFT bin of ``x``."""
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec)) * sr / x.size


def _is_tone(amp: Optional[float] = 0.5, tol: float = 1e-4) -> Callable[[np.ndarray], None]:
    """Check: the waveform is the 1 s tone (sample for sample within ``tol`` if ``amp`` is given)."""

    def check(x: np.ndarray) -> None:
        assert abs(peak_hz(x) - TONE_HZ) <= 1.0, peak_hz(x)
        if amp is not None:
            err = float(np.max(np.abs(x - tone(amp=amp)[: x.size])))
            assert err < tol, err

    return check


@dataclass(frozen=True)
class Case:
    """One bad or odd input and its expected outcome (see the module docstring)."""

    name: str
    make: Callable[[Path], Path]
    error: Optional[str] = None
    samples: Optional[int] = None
    check: Optional[Callable[[np.ndarray], None]] = None
    silent: bool = False
    http: Optional[int] = 200
    http_error: str = ""
    heavy: bool = False  # too slow to push through the network in every batch test
    note: str = ""


def _file(name: str, data: Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        p = folder / name
        p.write_bytes(data())
        return p

    return make


def _sound(name: str, x: Callable[[], np.ndarray], sr: int = SR, subtype: str = "PCM_16", fmt: str = "WAV"):
    return _file(name, lambda: wav_bytes(x(), sr, subtype, fmt))


def _mp3_or_stub() -> bytes:
    if MP3_OK:
        return wav_bytes(tone(), fmt="MP3", subtype="MPEG_LAYER_III")
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(413)  # a tag and one empty frame


def _truncated_data() -> bytes:
    whole = wav_bytes(tone())
    return whole[: 44 + 2 * 8000 + 1]  # header + 8,000 16-bit samples + half a sample


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _ten_minutes(folder: Path) -> Path:
    """600 s of a tone at 16 kHz, PCM_16, written 60 s at a time (about 19 MB, well under a second)."""
    p = folder / "ten_minutes.wav"
    block = tone(60.0, amp=0.3)
    with sf.SoundFile(p, "w", SR, 1, subtype="PCM_16") as f:
        for _ in range(int(LONG_S // 60)):
            f.write(block)
    return p


def _directory(folder: Path) -> Path:
    p = folder / "x.wav"
    p.mkdir()
    return p


def _broken_link(folder: Path) -> Path:
    p = folder / "broken_link.wav"
    os.symlink(folder / "nowhere" / "gone.wav", p)
    return p


def _unreadable(folder: Path) -> Path:
    p = folder / "unreadable.wav"
    p.write_bytes(wav_bytes(tone()))
    p.chmod(0)
    return p


NON_UTF8_NAME = os.fsdecode(b"caf\xe9-\xff.wav")
"""A Latin-1 file name (not UTF-8), as ``os.listdir`` returns it (surrogate escapes)."""


def _non_utf8(folder: Path) -> Path:
    p = folder / NON_UTF8_NAME
    p.write_bytes(wav_bytes(tone()))
    return p


def _six_channels() -> np.ndarray:
    return np.stack([tone(amp=0.5 * (k + 1) / 6) for k in range(6)], axis=1)


def _dc(x: np.ndarray) -> None:
    assert abs(float(np.mean(x)) - 0.5) < 1e-3 and abs(float(np.min(x)) - 0.2) < 1e-3, (np.mean(x), np.min(x))
    _is_tone(None)(x - 0.5)


def _clipped(x: np.ndarray) -> None:
    assert 0.999 <= float(np.max(np.abs(x))) <= 1.0
    assert float(np.mean(np.abs(x) > 0.999)) > 0.8  # 4x overdriven: |sin| > 1/4 for 84 % of the time


def _scaled(x: np.ndarray) -> None:
    assert float(np.max(np.abs(x))) == 1.0
    _is_tone(1.0, tol=1e-6)(x)


def _with(x: np.ndarray, index: int, value: float) -> np.ndarray:
    x = x.copy()
    x[index] = value
    return x


CASES: List[Case] = [
    # --- not audio, or not all there
    Case("empty_0_bytes", _file("empty.wav", bytes), error="empty file (0 bytes)", http=422, http_error="empty body"),
    Case("truncated_header", _file("truncated_header.wav", lambda: wav_bytes(tone())[:20]), error=NOT_AUDIO,
         http=415, http_error="unsupported media"),
    Case("header_only", _file("header_only.wav", lambda: wav_bytes(tone())[:44]), error="no audio samples",
         http=422, http_error="undecodable audio", note="a complete header and no data"),
    Case("truncated_data", _file("truncated_data.wav", _truncated_data), samples=8000, check=_is_tone(),
         note="the samples that are there load (libsndfile trusts the file size over the header)"),
    Case("truncated_flac", _file("truncated.flac", lambda: wav_bytes(tone(), fmt="FLAC")[:1500]), error=NOT_AUDIO,
         http=422, http_error="undecodable audio", note="the header reads, the frames do not"),
    Case("text_named_wav", _file("text.wav", lambda: b"utterance_id,label\nspk1_001,angry\n"), error=NOT_AUDIO,
         http=415, http_error="unsupported media"),
    Case("html_named_wav", _file("page.wav", lambda: b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>"),
         error=NOT_AUDIO, http=415, http_error="unsupported media", note="an error page saved by a downloader"),
    Case("jpeg_named_wav", _file("photo.wav", _jpeg), error=NOT_AUDIO, http=415, http_error="unsupported media"),
    Case("raw_pcm_named_wav", _file("raw.wav", lambda: (tone() * 32767).astype("<i2").tobytes()), error=NOT_AUDIO,
         http=415, http_error="unsupported media", note="headerless samples: no rate or format to trust"),
    # --- other containers and codecs
    Case("aiff_named_wav", _sound("aiff.wav", tone, fmt="AIFF"), samples=SR, check=_is_tone(tol=1e-4)),
    Case("flac_named_wav", _sound("flac.wav", tone, fmt="FLAC"), samples=SR, check=_is_tone(tol=1e-4)),
    Case("mp3", _file("tone.mp3", _mp3_or_stub), error=None if MP3_OK else NOT_AUDIO,
         samples=SR if MP3_OK else None, check=_is_tone(None) if MP3_OK else None,
         http=200 if MP3_OK else 415, http_error="" if MP3_OK else "unsupported media",
         note="libsndfile has MP3" if MP3_OK else "this libsndfile has no MP3"),
    Case("ogg_vorbis", _sound("tone.ogg", tone, fmt="OGG", subtype="VORBIS") if VORBIS_OK
         else _file("tone.ogg", lambda: b"OggS" + bytes(60)), error=None if VORBIS_OK else NOT_AUDIO,
         samples=SR if VORBIS_OK else None, check=_is_tone(None) if VORBIS_OK else None,
         http=200 if VORBIS_OK else 415, http_error="" if VORBIS_OK else "unsupported media"),
    Case("ogg_opus", _sound("tone.opus", tone, fmt="OGG", subtype="OPUS") if OPUS_OK
         else _file("tone.opus", lambda: b"OggS" + bytes(60)), error=None if OPUS_OK else NOT_AUDIO,
         samples=SR if OPUS_OK else None, check=_is_tone(None) if OPUS_OK else None,
         http=200 if OPUS_OK else 415, http_error="" if OPUS_OK else "unsupported media",
         note="Opus overshoots full scale by ~13 % here: scaled back to [-1, 1]"),
    # --- bit depths, rates, channels
    Case("wav_u8", _sound("u8.wav", tone, subtype="PCM_U8"), samples=SR, check=_is_tone(tol=0.01)),
    Case("wav_24bit", _sound("s24.wav", tone, subtype="PCM_24"), samples=SR, check=_is_tone(tol=1e-6)),
    Case("wav_32bit_int", _sound("s32.wav", tone, subtype="PCM_32"), samples=SR, check=_is_tone(tol=1e-6)),
    Case("wav_float", _sound("f32.wav", tone, subtype="FLOAT"), samples=SR, check=_is_tone(tol=1e-7)),
    Case("wav_double", _sound("f64.wav", tone, subtype="DOUBLE"), samples=SR, check=_is_tone(tol=1e-7)),
    Case("rate_8k", _sound("r8k.wav", lambda: tone(sr=8000), sr=8000), samples=SR, check=_is_tone(None)),
    Case("rate_96k", _sound("r96k.wav", lambda: tone(sr=96000), sr=96000), samples=SR, check=_is_tone(None)),
    Case("six_channels", _sound("six.wav", _six_channels), samples=SR,
         check=_is_tone(0.5 * 3.5 / 6, tol=1e-4), note="channels are averaged: amplitude 0.5 * mean(1..6)/6"),
    # --- sample values
    Case("nan_samples", _sound("nan.wav", lambda: _with(tone(), 100, np.nan), subtype="FLOAT"),
         error="1 sample(s) are NaN or infinite", http=422, http_error="undecodable audio"),
    Case("inf_samples", _sound("inf.wav", lambda: _with(_with(tone(), 5, np.inf), 9, -np.inf), subtype="FLOAT"),
         error="2 sample(s) are NaN or infinite", http=422, http_error="undecodable audio"),
    Case("digital_silence", _sound("silence.wav", lambda: np.zeros(SR)), samples=SR,
         check=lambda x: np.testing.assert_array_equal(x, 0.0), silent=True),
    Case("near_silence", _sound("hiss.wav", lambda: np.random.default_rng(0).normal(0, 1e-4, SR), subtype="FLOAT"),
         samples=SR, silent=True, note="-80 dBFS hiss: below the -60 dBFS silence threshold"),
    Case("full_scale_clipping", _sound("clipped.wav", lambda: np.clip(8 * tone(), -1, 1)), samples=SR, check=_clipped),
    Case("float_far_above_1", _sound("loud.wav", lambda: 1e6 * tone(), subtype="FLOAT"), samples=SR, check=_scaled,
         note="float audio past full scale is scaled by its peak (warning logged)"),
    Case("double_past_float32", _sound("huge.wav", lambda: 1e300 * tone(), subtype="DOUBLE"), samples=SR,
         check=_scaled, note="finite doubles past float32's range: scaled before narrowing"),
    Case("stereo_float_max", _sound("max.wav", lambda: np.stack([3.4e38 / 0.5 * tone(), 3.4e38 / 0.5 * tone()], 1),
                                    subtype="FLOAT"), samples=SR, check=_scaled,
         note="the channel mean must not overflow float32"),
    Case("dc_only", _sound("flat.wav", lambda: np.full(SR, 0.5)), samples=SR,
         check=lambda x: np.testing.assert_allclose(x, 0.5, atol=1e-4), silent=True,
         note="a flat line at +0.5 is silence with an offset: flagged silent"),
    Case("dc_offset", _sound("dc.wav", lambda: 0.3 * tone() / 0.5 + 0.5), samples=SR, check=_dc,
         note="loaded unchanged: DC is the user's signal, not removed"),
    # --- lengths
    Case("one_sample", _sound("one.wav", lambda: np.array([0.25])), samples=1, silent=True,
         check=lambda x: np.testing.assert_array_equal(x, [0.25]),
         note="predicted (the model pads to 63 frames) and flagged silent: one sample holds no sound"),
    Case("one_sample_96k", _sound("one96k.wav", lambda: np.array([0.25]), sr=96000), samples=1, silent=True,
         note="1/6 of an output sample: padded so that one sample comes out"),
    Case("ten_ms", _sound("ten_ms.wav", lambda: tone(0.01)), samples=160, check=lambda x: np.testing.assert_allclose(
        x, tone(0.01), atol=1e-4)),
    Case("ten_minutes", _ten_minutes, samples=int(LONG_S * SR), http=413, http_error="audio too long", heavy=True,
         note="the API refuses it from the header (limit 300 s) before decoding"),
    # --- not a regular readable file
    Case("missing", lambda d: d / "missing.wav", error="file not found", http=None),
    Case("directory_named_wav", _directory, error="is a directory", http=None),
    Case("broken_symlink", _broken_link, error="broken symbolic link", http=None),
    Case("unreadable", _unreadable, error="permission denied", http=None,
         note="as root the file is readable (and loads): the test asks os.access"),
    Case("non_utf8_name", _non_utf8, samples=SR, check=_is_tone(), http=None),
]

BY_NAME: Dict[str, Case] = {c.name: c for c in CASES}


def build(folder: Path, cases: List[Case] = CASES) -> Dict[str, Path]:
    """Write ``cases`` into ``folder`` (created); ``{case name: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {c.name: c.make(folder) for c in cases}


def tree(folder: Path) -> Dict[str, tuple]:
    """A snapshot of everything under ``folder``: ``{relative path: (kind, size, mtime_ns)}`` (links not followed)."""
    out: Dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            kind = "dir" if os.path.isdir(p) and not os.path.islink(p) else ("link" if os.path.islink(p) else "file")
            out[os.path.relpath(p, folder)] = (kind, st.st_size if kind == "file" else 0, st.st_mtime_ns if kind == "file" else 0)
    return out


# --------------------------------------------------------------------------- model files
def _model_variant(good: Path, folder: Path, name: str, edit: Callable[[dict], None]) -> Path:
    """A copy of the model file ``good`` with ``edit`` applied to its dict."""
    import torch

    obj = torch.load(good, map_location="cpu", weights_only=True)
    edit(obj)
    p = folder / name
    torch.save(obj, p)
    return p


def _bytes_of(good: Path, folder: Path, name: str, cut: Callable[[bytes], bytes]) -> Path:
    p = folder / name
    p.write_bytes(cut(good.read_bytes()))
    return p


def _set(d: dict, key: str, sub: str, value) -> None:
    d[key] = {**d[key], sub: value}


_MELS = FeatureConfig().n_mels
"""Mel bands of the good model (``serve_support.make_model``: the default features)."""


@dataclass(frozen=True)
class ModelCase:
    """A damaged or mismatched ``model.pt``: ``make(good model, folder) -> path``; ``error`` None means it loads."""

    name: str
    make: Callable[[Path, Path], Path]
    error: Optional[str]


MODEL_CASES: List[ModelCase] = [
    ModelCase("empty_model", lambda g, d: _bytes_of(g, d, "empty.pt", lambda b: b""), "corrupt or unreadable checkpoint"),
    ModelCase("truncated_model", lambda g, d: _bytes_of(g, d, "truncated.pt", lambda b: b[: len(b) // 2]),
              "corrupt or unreadable checkpoint"),
    ModelCase("zeroed_header_model", lambda g, d: _bytes_of(g, d, "zeroed.pt", lambda b: b[:100] + bytes(4096) + b[4196:]),
              "corrupt or unreadable checkpoint"),
    ModelCase("zeroed_weights_model", lambda g, d: _bytes_of(g, d, "rot.pt", lambda b: b[: len(b) // 2] + bytes(64)
                                                               + b[len(b) // 2 + 64:]),
              "checksum mismatch in"),
    ModelCase("text_as_model", lambda g, d: _bytes_of(g, d, "notes.pt", lambda b: b"not a model\n"),
              "corrupt or unreadable checkpoint"),
    ModelCase("bare_state_dict", lambda g, d: _model_variant(g, d, "bare.pt", lambda o: [o.pop(k) for k in list(o)
                                                                                          if k != "state_dict"]),
              "not an emospec model file"),
    ModelCase("future_format", lambda g, d: _model_variant(g, d, "v99.pt", lambda o: o.update(format_version=99)),
              "model format version 99 is not supported"),
    ModelCase("feature_config_n_mels_mismatch",
              lambda g, d: _model_variant(g, d, "mels_x2.pt", lambda o: _set(o, "feature_config", "n_mels", 2 * _MELS)),
              f"feature n_mels={2 * _MELS} does not match model n_mels={_MELS}"),
    ModelCase("feature_config_unknown_key",
              lambda g, d: _model_variant(g, d, "newkey.pt", lambda o: _set(o, "feature_config", "pre_emphasis", 0.97)),
              "unknown FeatureConfig key(s) ['pre_emphasis']"),
    ModelCase("feature_config_invalid_value",
              lambda g, d: _model_variant(g, d, "fmax.pt", lambda o: _set(o, "feature_config", "fmax_hz", 12000.0)),
              "need 0 <= fmin_hz < fmax_hz <= sr/2"),
    ModelCase("labels_do_not_fit", lambda g, d: _model_variant(g, d, "labels3.pt", lambda o: o.update(labels=o["labels"][:3])),
              "3 labels but the model has 4 outputs"),
    ModelCase("weights_do_not_fit", lambda g, d: _model_variant(g, d, "weights.pt", lambda o: o["state_dict"].pop(
        "classifier.4.weight")), "weights do not fit the described model"),
    ModelCase("other_feature_config_consistent",
              lambda g, d: _model_variant(g, d, "hop20.pt", lambda o: _set(o, "feature_config", "hop_ms", 20.0)), None),
]
"""``other_feature_config_consistent``: a model trained with other (valid) feature settings loads and uses them."""
