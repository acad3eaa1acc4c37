"""3D log-Mel spectrograms: static log-Mel, delta and delta-delta as three channels.

For a waveform ``(samples,)`` at ``FeatureConfig.sample_rate_hz`` the result is
``(3, n_mels, frames)`` float32 in dB, ``frames = 1 + samples // hop``:

* channel 0: ``10·log10(max(mel_power, amin))`` of a centred, zero-padded STFT
  (periodic Hann window of ``win_length`` samples inside ``n_fft``), the same
  numbers as ``librosa.power_to_db(librosa.feature.melspectrogram(...),
  ref=1.0, amin=1e-10, top_db=None)``;
  with ``FeatureConfig.top_db`` set (60 dB by default; None in the
  ``paper`` recipe), floored at the clip's peak minus ``top_db``
  (``librosa.power_to_db(..., top_db=60)`` is its librosa twin), and with
  ``relative_to_peak`` read in dB below that peak (``ref=np.max``);
* channel 1: its delta, the regression formula
  ``d_t = Σ_{n=1..N} n (c_{t+n} - c_{t-n}) / (2 Σ n²)`` with ``N = (width-1)/2``
  and edge frames repeated (``librosa.feature.delta(width=5, mode='nearest')``);
* channel 2: the delta-delta, the least-squares second-derivative regression
  over the same window (``librosa.feature.delta(order=2, ...)``).

The mel filterbank and the delta kernels are built in NumPy by
:mod:`emospec.filterbank`; everything after them is torch, so it runs on CUDA
and in batches: :func:`extract_batch` takes ``(batch, samples)`` plus valid
lengths and gives each clip exactly the frames it would get alone, and
:func:`extract_many` batches a list of clips of any lengths.

Speed (CPU, one thread; ``benchmarks/run.py`` measures it): the float64 FFT
is about 40 % of the time. On CPU the filterbank is applied as a sparse
matrix (each FFT bin feeds at most two bands), long inputs are cut into
blocks of :data:`CPU_BLOCK_FRAMES` frames so the STFT stays in cache (cost
grows linearly with duration), and the deltas are shifted adds rather than a
convolution.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple, overload

import numpy as np
import torch
import torch.nn.functional as F

from .config import FeatureConfig
from .errors import FeatureError
from .filterbank import delta_kernels, mel_filterbank

__all__ = [
    "FeatureConfig",
    "extract",
    "extract_batch",
    "extract_many",
    "frames_for",
    "LogMel3D",
    "TRIM_PAD_FRAMES",
    "sound_frames",
]

TRIM_PAD_FRAMES = 5
"""Frames kept either side of a clip's first and last frame within :attr:`FeatureConfig.trim_db` of its loudest
(50 ms at the default 10 ms hop): the onset and decay of the first and last sounds."""


@lru_cache(maxsize=16)
def _constants(cfg: FeatureConfig, device: str,
               dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor, Tuple[float, ...], Tuple[float, ...]]:
    """(window, dense mel matrix (n_mels, n_freqs), delta taps, delta-delta taps) for cfg.

    The taps are Python floats ``kernel[half + n]`` for ``n = 0..half`` (the
    delta kernel is odd, the delta-delta kernel even, so half of each suffices).
    Memoised on the immutable config: pure constants, never mutated.
    """
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
    mel = torch.from_numpy(mel_filterbank(cfg))
    kern = delta_kernels(cfg.delta_width)
    half = (cfg.delta_width - 1) // 2
    return (
        window.to(device=device, dtype=dtype),
        mel.to(device=device, dtype=dtype).contiguous(),
        tuple(float(v) for v in kern[0, half:]),
        tuple(float(v) for v in kern[1, half:]),
    )


@lru_cache(maxsize=16)
def _sparse_mel(cfg: FeatureConfig) -> torch.Tensor:
    """The mel matrix ``(n_mels, n_freqs)`` float32 as a coalesced sparse COO tensor on CPU.

    Each triangle covers only the FFT bins between its neighbours' centres, so
    about 2 of every ``n_mels`` entries are nonzero (504 of 32,896 at the
    defaults): a sparse product does ~65x fewer multiply-adds than the dense one.
    """
    return torch.from_numpy(mel_filterbank(cfg)).to(torch.float32).to_sparse().coalesce()


@overload
def frames_for(n_samples: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor: ...
@overload
def frames_for(n_samples: int, cfg: FeatureConfig) -> int: ...
def frames_for(n_samples: torch.Tensor | int, cfg: FeatureConfig) -> torch.Tensor | int:
    """Frames a clip of ``n_samples`` samples yields: ``1 + n_samples // hop``."""
    if isinstance(n_samples, torch.Tensor):
        return 1 + torch.div(n_samples, cfg.hop_length, rounding_mode="floor")
    return cfg.n_frames(n_samples)


# --------------------------------------------------------------------------- compute
def _tracing() -> bool:
    """True while torch.jit / torch.onnx / torch.compile trace the code.

    Exporters handle neither complex dtype casts nor sparse tensors, so traced
    code takes the plain path (float64 power, dense filterbank, one STFT).
    """
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


def _apply_mel(power: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """``(n_freqs, batch, frames)`` float32 power -> ``(batch, n_mels, frames)`` float32 mel power.

    On CPU the filterbank is a sparse matrix (see :func:`_sparse_mel`) applied
    to all frames of the batch in one product; on other devices a dense matmul.
    """
    f, b, t = power.shape
    if power.device.type != "cpu":
        _, mel, _, _ = _constants(cfg, str(power.device), torch.float32)
        return torch.matmul(mel, power.transpose(0, 1))
    out = torch.sparse.mm(_sparse_mel(cfg), power.reshape(f, b * t))  # (n_mels, batch * frames)
    return out.reshape(-1, b, t).transpose(0, 1)


CPU_BLOCK_FRAMES = 768
"""Frames (summed over the batch) per STFT block on CPU: longer inputs are cut into
blocks of exactly the same frames, keeping the float64 frames in cache (above
~1000 frames a single STFT gets 2-3x slower per frame on CPU)."""


def _log_mel(wave: torch.Tensor, cfg: FeatureConfig, stft_dtype: torch.dtype) -> torch.Tensor:
    """``(batch, samples)`` -> ``(batch, n_mels, frames)`` float32 dB.

    On CPU, inputs of more than :data:`CPU_BLOCK_FRAMES` frames run block by
    block: a centred frame is an uncentred frame of the signal zero-padded by
    ``n_fft / 2`` each side, so each block is an uncentred STFT of a slice of
    that padded signal and yields exactly the frames of the whole.
    """
    if wave.device.type != "cpu" or _tracing():  # (before any int() of a shape: exporters keep it symbolic)
        return _log_mel_block(wave, cfg, stft_dtype, center=True)
    b, n = wave.shape
    frames = cfg.n_frames(n)
    block = max(64, CPU_BLOCK_FRAMES // b)
    if frames <= block:
        return _log_mel_block(wave, cfg, stft_dtype, center=True)
    half, hop = cfg.n_fft // 2, cfg.hop_length
    padded = F.pad(wave, (half, half))
    out = torch.empty(b, cfg.n_mels, frames, dtype=torch.float32)
    for start in range(0, frames, block):
        stop = min(frames, start + block)
        out[:, :, start:stop] = _log_mel_block(padded[:, start * hop : (stop - 1) * hop + cfg.n_fft], cfg, stft_dtype,
                                               center=False)
    return out


def _log_mel_block(wave: torch.Tensor, cfg: FeatureConfig, stft_dtype: torch.dtype, *, center: bool) -> torch.Tensor:
    """One STFT -> ``(batch, n_mels, frames)`` float32 dB (``center=False``: the caller padded).

    The FFT runs in ``stft_dtype`` (float64 by default: float32 FFTs lose
    ~3e-3 dB in quiet bands, 60+ dB below a frame's peak) and is then rounded
    to complex64, as librosa stores its STFT; power, filterbank and log run in
    float32, whose relative error (~1e-7) is far below 1e-3 dB.
    """
    window, _, _, _ = _constants(cfg, str(wave.device), stft_dtype)
    spec = torch.stft(
        wave.to(stft_dtype),
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=window,
        center=center,
        pad_mode="constant",
        return_complex=True,
    )  # (batch, n_freqs, frames), stored frame-major
    if _tracing():
        power = torch.view_as_real(spec).square().sum(-1).to(torch.float32)  # (batch, n_freqs, frames)
        _, mel, _, _ = _constants(cfg, str(wave.device), torch.float32)
        melspec = torch.matmul(mel, power.sqrt() if cfg.power == 1.0 else power)
        return torch.log10(torch.clamp(melspec, min=cfg.amin)) * 10.0
    # One pass rounds to complex64 and lays the spectrum out as (n_freqs, batch, frames),
    # the row-major operand the filterbank product wants.
    spec = spec.permute(1, 0, 2).to(torch.complex64, memory_format=torch.contiguous_format)
    sq = torch.view_as_real(spec).square()  # (n_freqs, batch, frames, 2): re², im²
    power = torch.add(sq[..., 0], sq[..., 1])
    if cfg.power == 1.0:
        power = power.sqrt_()
    melspec = _apply_mel(power, cfg)
    return melspec.clamp_(min=cfg.amin).log10_().mul_(10.0)


def _deltas(static: torch.Tensor, frames: Optional[torch.Tensor], cfg: FeatureConfig) -> torch.Tensor:
    """``(batch, n_mels, T)`` -> ``(batch, 3, n_mels, T)`` with edge frames repeated.

    The regressions are written as shifted adds over ``half = (width - 1) / 2``
    frames each side rather than as a convolution: with so few taps this is
    several times faster than ``conv1d`` on CPU. With ``frames`` (valid frame
    counts per clip), each clip's edge is its own last valid frame; frames
    past it are zeroed.
    """
    b, m, t = static.shape
    _, _, k1, k2 = _constants(cfg, str(static.device), static.dtype)
    half = len(k1) - 1
    x = static
    if frames is not None:
        idx = torch.arange(t, device=static.device)
        src = torch.minimum(idx[None, :], (frames - 1).clamp(min=0)[:, None])  # (batch, T)
        x = torch.gather(static, 2, src[:, None, :].expand(b, m, t))
    padded = torch.cat([x[..., :1].expand(b, m, half), x, x[..., -1:].expand(b, m, half)], dim=-1)

    def taps(n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        ahead, behind = padded[..., half + n : half + n + t], padded[..., half - n : half - n + t]
        a1 = torch.sub(ahead, behind).mul_(k1[n])  # delta kernel is odd: k1[-n] = -k1[n]
        a2 = torch.add(ahead, behind).mul_(k2[n])  # delta-delta kernel is even
        return a1, a2

    d1, d2 = taps(1)  # half >= 1: FeatureConfig requires delta_width >= 3
    for n in range(2, half + 1):
        a1, a2 = taps(n)
        d1.add_(a1)
        d2.add_(a2)
    out = torch.stack([x, d1, d2.add_(x, alpha=k2[0])], dim=1)
    if frames is not None:
        valid = torch.arange(t, device=static.device)[None, :] < frames[:, None]
        out = out.masked_fill_(~valid[:, None, None, :], 0.0)
    return out


def _top_db(static: torch.Tensor, frames: Optional[torch.Tensor], cfg: FeatureConfig) -> torch.Tensor:
    """Floor ``(batch, n_mels, T)`` dB at each clip's peak (over its valid frames) minus ``cfg.top_db``;
    with ``cfg.relative_to_peak`` also subtract that peak (0 dB at each clip's loudest band and frame)."""
    if cfg.top_db is None and not cfg.relative_to_peak:
        return static
    x = static
    if frames is not None:
        valid = torch.arange(x.shape[-1], device=x.device)[None, :] < frames[:, None]
        x = x.masked_fill(~valid[:, None, :], float("-inf"))
    peak = x.amax(dim=(1, 2), keepdim=True)
    out = static if cfg.top_db is None else torch.maximum(static, peak - cfg.top_db)
    return out - peak if cfg.relative_to_peak else out


def _active_span(raw: torch.Tensor, frames: Optional[torch.Tensor], cfg: FeatureConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last frame to keep, ``(batch,)`` int64 each, from ``(batch, n_mels, T)`` dB before the floor.

    A frame's energy is its bands' powers summed, in dB; frames within ``cfg.trim_db`` of the clip's loudest
    (over its valid frames) are sound, and :data:`TRIM_PAD_FRAMES` more are kept either side of the first and last.
    """
    assert cfg.trim_db is not None
    b, _, t = raw.shape
    energy = torch.logsumexp(raw * (math.log(10.0) / 10.0), dim=1) * (10.0 / math.log(10.0))  # (batch, T) dB
    idx = torch.arange(t, device=raw.device)
    count = frames if frames is not None else torch.full((b,), t, dtype=torch.long, device=raw.device)
    energy = energy.masked_fill(idx[None, :] >= count[:, None], float("-inf"))
    sound = energy >= energy.amax(dim=-1, keepdim=True) - cfg.trim_db
    first = torch.where(sound, idx[None, :], t).amin(dim=-1)
    last = torch.where(sound, idx[None, :], -1).amax(dim=-1)
    return (first - TRIM_PAD_FRAMES).clamp(min=0), torch.minimum(last + 1 + TRIM_PAD_FRAMES, count)


def _shift(feats: torch.Tensor, start: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``(batch, 3, n_mels, T)``: each clip's frames ``start .. start + count`` moved to the front, the rest zero."""
    b, c, m, t = feats.shape
    idx = torch.arange(t, device=feats.device)
    src = (start[:, None] + idx[None, :]).clamp(max=t - 1)
    out = torch.gather(feats, 3, src[:, None, None, :].expand(b, c, m, t))
    return out.masked_fill(idx[None, None, None, :] >= count[:, None, None, None], 0.0)


def _front_end(x: torch.Tensor, frames: Optional[torch.Tensor], cfg: FeatureConfig,
               stft_dtype: torch.dtype) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(batch, samples)`` zero-padded -> ``(batch, 3, n_mels, T)`` dB and the frames each clip keeps.

    ``frames`` are the clips' computed frame counts (None: all ``T``); the counts returned are the same unless
    ``cfg.trim_db`` trims silence, whose kept frames then start at frame 0 (None stays None without trimming).
    Traceable: the ONNX waveform graph runs this too.
    """
    raw = _log_mel(x, cfg, stft_dtype)
    feats = _deltas(_top_db(raw, frames, cfg), frames, cfg)
    if cfg.trim_db is None:
        return feats, frames
    start, stop = _active_span(raw, frames, cfg)
    return _shift(feats, start, stop - start), stop - start


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise FeatureError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        x = x.float()
    return x


def extract(waveform, cfg: FeatureConfig = FeatureConfig(), *, stft_dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """3D log-Mel features of one clip.

    Parameters
    ----------
    waveform
        ``(samples,)`` float waveform at ``cfg.sample_rate_hz`` Hz, numpy or torch
        (any device). At least one sample.
    cfg
        Feature configuration; the default is the default recipe's (64 mel
        bands floored 60 dB below the clip's peak); the paper's is
        ``RECIPES["paper"].features`` (128 bands, no floor).
    stft_dtype
        Precision of the STFT (float64 default, for parity with librosa to
        ~1e-5 dB; float32 is faster and within ~3e-3 dB).

    Returns
    -------
    torch.Tensor
        ``(3, n_mels, 1 + samples // hop)`` float32 dB on the waveform's device
        (fewer frames when ``cfg.trim_db`` trims leading and trailing silence).
    """
    x = _as_tensor(waveform, "waveform")
    if x.ndim != 1:
        raise FeatureError(f"waveform: expected shape (samples,), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise FeatureError("waveform: empty (0 samples); cannot compute features")
    feats, frames = extract_batch(x[None], cfg, stft_dtype=stft_dtype)
    return feats[0, :, :, : int(frames[0])]


def sound_frames(waveform, cfg: FeatureConfig = FeatureConfig()) -> Tuple[int, int]:
    """The frames ``[start, stop)`` of the untrimmed clip that :func:`extract` keeps (``(0, 1 + samples // hop)``
    when ``cfg.trim_db`` is None): frame ``k`` of the features is frame ``start + k`` of the clip, at
    ``(start + k) * hop_ms`` ms."""
    x = _as_tensor(waveform, "waveform")
    if x.ndim != 1 or x.numel() == 0:
        raise FeatureError(f"waveform: expected a non-empty (samples,) waveform, got shape {tuple(x.shape)}")
    if cfg.trim_db is None:
        return 0, cfg.n_frames(x.numel())
    start, stop = _active_span(_log_mel(x[None].to(torch.float32), cfg, torch.float64), None, cfg)
    return int(start[0]), int(stop[0])


def extract_batch(
    waves,
    cfg: FeatureConfig = FeatureConfig(),
    lengths: Optional[Sequence[int] | torch.Tensor] = None,
    *,
    stft_dtype: torch.dtype = torch.float64,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """3D log-Mel features of a zero-padded batch.

    Parameters
    ----------
    waves
        ``(batch, samples)`` float waveforms, zero-padded on the right.
    cfg
        Feature configuration.
    lengths
        Valid samples per clip ``(batch,)``; all ``samples`` when omitted.
    stft_dtype
        Precision of the STFT (see :func:`extract`).

    Returns
    -------
    features : torch.Tensor
        ``(batch, 3, n_mels, frames)`` float32 dB; frames past a clip's own
        count are zero. Each clip's valid frames equal :func:`extract` on it alone.
    frames : torch.Tensor
        ``(batch,)`` int64 valid frame counts (``1 + length // hop``, fewer
        where ``cfg.trim_db`` trims silence: a clip's kept frames come first).
    """
    x = _as_tensor(waves, "waves")
    if x.ndim != 2:
        raise FeatureError(f"waves: expected shape (batch, samples), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise FeatureError(f"waves: empty batch of shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    if lengths is None:
        n_frames = torch.full((x.shape[0],), cfg.n_frames(x.shape[1]), dtype=torch.long, device=x.device)
        feats, kept = _front_end(x, None, cfg, stft_dtype)
    else:
        lens = torch.as_tensor(lengths, dtype=torch.long, device=x.device)
        if lens.shape != (x.shape[0],) or bool((lens < 1).any()) or bool((lens > x.shape[1]).any()):
            raise FeatureError(f"lengths: need {x.shape[0]} values in 1..{x.shape[1]}, got {lens.tolist()}")
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lens[:, None]
        x = x * mask  # anything past a clip's end must be silence for exact parity
        n_frames = frames_for(lens, cfg)
        feats, kept = _front_end(x, n_frames, cfg, stft_dtype)
    return feats, n_frames if kept is None else kept


def extract_many(
    waveforms: Sequence,
    cfg: FeatureConfig = FeatureConfig(),
    *,
    max_batch_frames: Optional[int] = None,
    device: str | torch.device = "cpu",
    stft_dtype: torch.dtype = torch.float64,
) -> List[torch.Tensor]:
    """3D log-Mel features of many clips of any lengths, computed in batches.

    Clips are sorted by length and grouped so that a batch holds at most
    ``max_batch_frames`` frames, padding included (a longer clip runs alone);
    each result equals :func:`extract` on the clip alone.

    Parameters
    ----------
    waveforms
        ``(samples_i,)`` float waveforms at ``cfg.sample_rate_hz`` Hz, numpy or torch.
    max_batch_frames
        Frame budget per batch. Default: 512 on CPU (about 5 s of audio: the
        float64 frames then stay in cache; larger batches are slower per frame
        on CPU) and 65536 on other devices.
    device
        Where to compute; the results stay there.

    Returns
    -------
    list of torch.Tensor
        ``(3, n_mels, frames_i)`` float32 dB, in input order.
    """
    dev = torch.device(device)
    budget = max_batch_frames or (512 if dev.type == "cpu" else 65536)
    if budget < 1:
        raise FeatureError(f"max_batch_frames must be >= 1, got {budget}")
    clips = []
    for i, w in enumerate(waveforms):
        x = _as_tensor(w, f"waveforms[{i}]")
        if x.ndim != 1 or x.numel() == 0:
            raise FeatureError(f"waveforms[{i}]: expected a non-empty (samples,) waveform, got shape {tuple(x.shape)}")
        clips.append(x)
    out: List[Optional[torch.Tensor]] = [None] * len(clips)
    order = sorted(range(len(clips)), key=lambda i: clips[i].numel())
    start = 0
    while start < len(order):
        stop = start + 1  # sorted ascending: the last clip of a batch is its longest
        while stop < len(order) and (stop - start + 1) * cfg.n_frames(clips[order[stop]].numel()) <= budget:
            stop += 1
        idx = order[start:stop]
        lens = [clips[i].numel() for i in idx]
        batch = torch.zeros(len(idx), max(lens), dtype=torch.float32, device=dev)
        for row, i in enumerate(idx):
            batch[row, : lens[row]] = clips[i].to(dev)
        feats, frames = extract_batch(batch, cfg, None if min(lens) == max(lens) else lens, stft_dtype=stft_dtype)
        for row, i in enumerate(idx):
            kept = feats[row, :, :, : int(frames[row])]
            out[i] = kept.clone() if len(idx) > 1 else kept
        start = stop
    return out  # type: ignore[return-value]


class LogMel3D(torch.nn.Module):
    """The feature front end as a module: ``(batch, samples)`` -> ``(batch, 3, n_mels, frames)``.

    Useful for exporting waveform-in graphs (ONNX) and running on GPU.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig()):
        super().__init__()
        self.cfg = cfg

    def forward(self, waves: torch.Tensor) -> torch.Tensor:  # noqa: D401
        return extract_batch(waves, self.cfg)[0]
