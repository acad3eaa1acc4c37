"""What the endpoints compute, as plain synchronous functions of a Recognizer and bytes.

These run in a worker thread (never on the event loop): decoding with
soundfile/soxr, the 3D log-Mel features and the network are all CPU-bound.
Every function returns a JSON-able dict; every failure is an
:class:`~emospec.serve.uploads.ApiError` carrying the HTTP status.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import info
from ..errors import AudioError, EmospecError
from ..features import extract
from ..predict import Recognizer
from .uploads import ApiError, Upload

__all__ = ["Limits", "decode", "prediction", "embedding", "spectrogram_image", "STATIC_RANGE_DB"]

STATIC_RANGE_DB = 80.0
"""The static channel image spans ``[max - 80 dB, max]``; quieter bins are clipped to black."""

DELTA_PERCENTILE = 99.5
"""Delta channels span ``±`` this percentile of ``|value|`` (a few outliers clip, the rest keep contrast)."""


@dataclass(frozen=True)
class Limits:
    """Per-request limits: upload size (bytes), audio length (s), parallel inferences, timeline windows."""

    max_upload_bytes: int = 25 * 2**20
    max_duration_s: float = 300.0
    max_concurrency: int = 2
    max_windows: int = 2000

    def to_dict(self) -> Dict[str, float]:
        return {"max_upload_mb": self.max_upload_bytes / 2**20, "max_duration_s": self.max_duration_s,
                "max_concurrency": self.max_concurrency, "max_timeline_windows": self.max_windows}


def _renamed(e: AudioError, upload: Upload) -> str:
    """The AudioError's one line with ``<N bytes>`` replaced by the upload's name."""
    msg, prefix = re.sub(r"Error opening <[^>]*>: ", "", str(e)), f"<{len(upload.data)} bytes>"
    return upload.name + msg[len(prefix):] if msg.startswith(prefix) else msg


def decode(rec: Recognizer, upload: Upload, limits: Limits) -> Tuple[np.ndarray, Dict]:
    """Decode an upload in memory to ``(samples,)`` float32 at the model's rate.

    Returns the waveform and what the upload held: ``{"format", "subtype",
    "sample_rate_hz", "channels", "duration_s"}`` (from the file's header).

    Raises
    ------
    ApiError
        415 when libsndfile does not recognise the bytes as audio, 413 when the
        header's duration exceeds ``limits.max_duration_s`` (checked before
        decoding), 422 when the header reads but the samples do not (truncated,
        NaN/Inf, zero frames).
    """
    try:
        head = info(upload.data)
    except AudioError as e:
        raise ApiError(415, "unsupported media", _renamed(e, upload)) from e
    if head.duration_s > limits.max_duration_s:
        raise ApiError(413, "audio too long", f"{upload.name}: {head.duration_s:.1f} s exceeds the limit of "
                       f"{limits.max_duration_s:g} s")
    try:
        wave = rec.waveform(upload.data)
    except AudioError as e:
        raise ApiError(422, "undecodable audio", _renamed(e, upload)) from e
    if wave.size == 0:
        raise ApiError(422, "undecodable audio", f"{upload.name}: no audio samples")
    if wave.size / rec.sample_rate_hz > limits.max_duration_s:  # headers can understate (e.g. some MP3s)
        raise ApiError(413, "audio too long", f"{upload.name}: {wave.size / rec.sample_rate_hz:.1f} s exceeds the "
                       f"limit of {limits.max_duration_s:g} s")
    return wave, {"format": head.format, "subtype": head.subtype, "sample_rate_hz": head.sample_rate_hz,
                  "channels": head.channels, "duration_s": head.duration_s}


def prediction(rec: Recognizer, wave: np.ndarray, source: str, *, timeline: Optional[tuple] = None,
               features_frames: Optional[int] = None, limits: Limits = Limits()) -> Dict:
    """``Recognizer.predict`` as JSON (no embedding), plus the timeline / spectrogram image on request.

    A silent clip has ``"label": None`` and empty ``"scores"`` / ``"predictions"``
    (see :class:`~emospec.predict.Prediction`).

    ``timeline`` is ``(window_s, hop_s)``; ``features_frames`` the image width
    (see :func:`spectrogram_image`).
    """
    try:
        out = rec.predict(wave, sr=rec.sample_rate_hz).to_dict()
        out.pop("embedding")
        out["source"] = source
        out["silent"] = bool(out["silent"])  # Prediction.silent can be a numpy bool
        if timeline is not None:
            window_s, hop_s = timeline
            n = int(np.ceil(max(0.0, wave.size / rec.sample_rate_hz - window_s) / hop_s)) + 1
            if n > limits.max_windows:
                raise ApiError(422, "too many timeline windows", f"{source}: {n} windows of {window_s:g} s every "
                               f"{hop_s:g} s; the limit is {limits.max_windows} (raise hop_s)")
            out["timeline"] = rec.timeline(wave, window_s=window_s, hop_s=hop_s, sr=rec.sample_rate_hz).to_dict()
        if features_frames is not None:
            out["features"] = spectrogram_image(rec, wave, max_frames=features_frames)
    except ApiError:
        raise
    except EmospecError as e:
        raise ApiError(422, "cannot analyse audio", f"{source}: {e}") from e
    return out


def embedding(rec: Recognizer, wave: np.ndarray, source: str) -> Dict:
    """The 256-d FC6 embedding as JSON."""
    try:
        e = rec.embed(wave, sr=rec.sample_rate_hz)
    except EmospecError as err:
        raise ApiError(422, "cannot analyse audio", f"{source}: {err}") from err
    return {"source": source, "duration_s": wave.size / rec.sample_rate_hz, "dim": int(e.size),
            "embedding": [float(v) for v in e]}


def _quantise(x: np.ndarray, lo: float, hi: float) -> str:
    """``(n_mels, frames)`` float -> base64 of row-major uint8, ``q = round(255 (x - lo) / (hi - lo))`` clipped."""
    q = np.rint(np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)
    return base64.b64encode(np.ascontiguousarray(q).tobytes()).decode("ascii")


def spectrogram_image(rec: Recognizer, wave: np.ndarray, *, max_frames: int = 400) -> Dict:
    """The clip's 3D log-Mel features, time-averaged to at most ``max_frames`` columns, as 8-bit images.

    Parameters
    ----------
    wave
        ``(samples,)`` float32 at the model's rate.
    max_frames
        Width of the image: blocks of frames are averaged
        (``adaptive_avg_pool1d``) when the clip has more frames than this.

    Returns
    -------
    dict
        ``n_mels``, ``frames`` (image width), ``source_frames``, ``frame_s``
        (seconds per image column), ``duration_s`` and ``channels``: three
        ``{"name", "unit", "lo", "hi", "data"}`` for static (dB), delta and
        delta-delta (dB per frame, per frame²); ``data`` is base64 uint8,
        row-major ``(n_mels, frames)`` with mel band 0 (lowest) first, and a
        byte ``q`` stands for ``lo + q / 255 * (hi - lo)``.
    """
    with torch.no_grad():
        feats = extract(torch.from_numpy(wave), rec.feature_config)  # (3, n_mels, frames) dB
    n_mels, frames = int(feats.shape[1]), int(feats.shape[2])
    width = min(frames, int(max_frames))
    img = F.adaptive_avg_pool1d(feats, width).numpy().astype(np.float64)  # (3, n_mels, width)
    hi = float(img[0].max())
    ranges = [(max(float(img[0].min()), hi - STATIC_RANGE_DB), hi)]
    for ch in (1, 2):
        a = float(np.percentile(np.abs(img[ch]), DELTA_PERCENTILE))
        ranges.append((-a, a))
    channels = []
    for ch, (name, unit) in enumerate((("static", "dB"), ("delta", "dB/frame"), ("delta2", "dB/frame²"))):
        lo, hi = ranges[ch]
        if hi - lo < 1e-6:  # a constant channel (e.g. digital silence)
            lo, hi = lo - 0.5, lo + 0.5
        channels.append({"name": name, "unit": unit, "lo": lo, "hi": hi, "data": _quantise(img[ch], lo, hi)})
    hop_s = rec.feature_config.hop_length / rec.sample_rate_hz
    return {"n_mels": n_mels, "frames": width, "source_frames": frames, "frame_s": frames * hop_s / width,
            "duration_s": wave.size / rec.sample_rate_hz, "channels": channels}
