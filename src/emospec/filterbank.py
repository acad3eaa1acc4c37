"""The fixed matrices of the 3D log-Mel features: triangular mel filters and delta kernels.

:func:`mel_filterbank` gives the ``(n_mels, n_fft // 2 + 1)`` filters on the
Slaney or HTK mel scale (librosa's ``filters.mel``, to 1e-6);
:func:`delta_kernels` the first- and second-derivative regression kernels of
``librosa.feature.delta``. Both are float64 NumPy, built once per
:class:`~emospec.config.FeatureConfig` and applied in torch by
:mod:`emospec.features`.
"""

from __future__ import annotations

import math

import numpy as np

from .config import FeatureConfig

__all__ = ["mel_filterbank", "delta_kernels", "hz_to_mel", "mel_to_hz"]


def hz_to_mel(f: float | np.ndarray, scale: str) -> np.ndarray:
    """Frequencies in Hz (any shape) -> mels, float64: ``scale="htk"`` (2595·log10(1 + f/700)) or ``"slaney"``
    (linear below 1 kHz, logarithmic above; librosa's default)."""
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    mels = f / f_sp
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, mels)


def mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    """Mels (any shape) -> Hz, float64; the inverse of :func:`hz_to_mel` on the same ``scale``."""
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """Triangular mel filters, ``(n_mels, n_fft // 2 + 1)`` float64.

    Band edges are equally spaced on the Slaney (or HTK) mel scale between
    ``fmin_hz`` and ``fmax_hz``; with ``mel_norm='slaney'`` each triangle is
    divided by its width in Hz / 2 (constant energy per band), as librosa does.
    """
    n_freqs = cfg.n_fft // 2 + 1
    fft_hz = np.linspace(0.0, cfg.sample_rate_hz / 2.0, n_freqs)
    mel_pts = np.linspace(hz_to_mel(cfg.fmin_hz, cfg.mel_scale), hz_to_mel(cfg.fmax_hz, cfg.mel_scale), cfg.n_mels + 2)
    hz_pts = mel_to_hz(mel_pts, cfg.mel_scale)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if cfg.mel_norm == "slaney":
        weights *= (2.0 / (hz_pts[2 : cfg.n_mels + 2] - hz_pts[: cfg.n_mels]))[:, None]
    return weights


def delta_kernels(width: int) -> np.ndarray:
    """Regression kernels ``(2, width)`` float64: row 0 first, row 1 second derivative.

    Row 0 is ``n / Σ n²`` over ``n = -N..N`` (the delta formula); row 1 the
    least-squares quadratic's second derivative (a Savitzky–Golay filter),
    so ``kernel · c[t-N : t+N+1]`` gives the delta / delta-delta at frame t.
    """
    half = (width - 1) // 2
    n = np.arange(-half, half + 1, dtype=np.float64)
    d1 = n / np.sum(n**2)
    # second derivative of the least-squares quadratic fit: 2 * coefficient of n^2
    vander = np.stack([np.ones_like(n), n, n**2], axis=1)
    d2 = 2.0 * np.linalg.pinv(vander)[2]
    return np.stack([d1, d2])
