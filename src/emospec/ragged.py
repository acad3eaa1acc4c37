"""Exact inference over padded batches of clips of different lengths.

:class:`~emospec.model.EmoAlexNet` ends in ``AdaptiveAvgPool2d((6, 6))``, so
running a clip zero-padded to a longer length changes its result: the padded
frames are averaged in, and the convolutions near its end see them instead of
their own zero padding. :class:`RaggedAlexNet` wraps a trained model and runs
it on ``(batch, 3, n_mels, frames)`` features plus each clip's valid frame
count, giving every clip the result it gets alone (to float rounding,
~1e-6):

* after normalisation, and after every layer of the conv stack, positions
  past the clip's own length (propagated through each conv / pool with the
  usual output-size formula) are set to zero, which is exactly what the
  layer's zero padding shows a clip run alone;
* the final adaptive average pool is a per-clip pooling matrix built from
  that length (PyTorch's bins: ``floor(i·L/6)`` to ``ceil((i+1)·L/6)``);
  with ``pool="stats"`` the mean and std over time stop at that length.

The wrapper uses only shape-generic tensor ops, so it also exports to ONNX
with dynamic batch and time axes (see :mod:`emospec.export`).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import MIN_SIZE, EmoAlexNet, stats_pool
from .norm import model_input

__all__ = ["RaggedAlexNet", "pad_waves", "pool_matrix"]

_POINTWISE = (nn.ReLU, nn.LocalResponseNorm, nn.BatchNorm2d, nn.Dropout)
"""Layers that keep the time length (elementwise, or across channels only)."""


def _pair(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def pad_waves(waves: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Zero-pad waveforms on the right into one batch.

    Parameters
    ----------
    waves
        ``n`` arrays ``(samples_i,)``, each at least one sample.

    Returns
    -------
    batch : np.ndarray
        ``(n, max samples_i)`` float32.
    lengths : np.ndarray
        ``(n,)`` int64 ``samples_i``.
    """
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    batch = np.zeros((len(waves), int(lengths.max()) if len(waves) else 0), dtype=np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, lengths


def pool_matrix(lengths: torch.Tensor, size: int, out: int) -> torch.Tensor:
    """Adaptive-average-pool weights ``(batch, size, out)`` float32.

    Column ``j`` of clip ``b`` averages positions ``floor(j·L/out)`` to
    ``ceil((j+1)·L/out) - 1`` of its first ``L = lengths[b]`` positions, the
    bins of :class:`torch.nn.AdaptiveAvgPool1d` on the unpadded clip.
    """
    j = torch.arange(out, device=lengths.device)
    lens = lengths.reshape(-1, 1)
    start = torch.div(j[None, :] * lens, out, rounding_mode="floor")  # (batch, out)
    end = torch.div((j[None, :] + 1) * lens + out - 1, out, rounding_mode="floor")
    pos = torch.arange(size, device=lengths.device)[None, :, None]  # (1, size, 1)
    inside = (pos >= start[:, None, :]) & (pos < end[:, None, :])  # (batch, size, out)
    return inside.to(torch.float32) / (end - start).clamp(min=1).to(torch.float32)[:, None, :]


def _time_mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero ``x`` ``(batch, c, h, w)`` past each clip's ``lengths`` along ``w``."""
    keep = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]
    return x * keep[:, None, None, :].to(x.dtype)


class RaggedAlexNet(nn.Module):
    """A trained :class:`EmoAlexNet` run exactly on padded batches.

    Parameters
    ----------
    model
        The model (weights shared, not copied). Its conv stack may hold
        Conv2d, MaxPool2d (no ceil mode), ReLU, LRN, BatchNorm2d and Dropout.

    ``forward(features, lengths)`` takes ``(batch, 3, n_mels, frames)`` float32
    dB features, zero (or anything) past each clip's end, and ``(batch,)``
    int64 valid frame counts; it returns ``(probs (batch, n_classes),
    embedding (batch, embed_dim))``, both float32, in eval mode. A model
    trained on group-standardised features (``config.norm`` not ``"global"``)
    gets each clip standardised over its own valid frames first (see
    :func:`emospec.norm.fold_into_model` to use a speaker's or corpus's
    statistics instead).
    """

    def __init__(self, model: EmoAlexNet):
        super().__init__()
        for name, layer in model.features.named_children():
            if isinstance(layer, nn.MaxPool2d) and layer.ceil_mode:
                raise TypeError(f"features.{name}: ceil_mode pooling is not supported")
            if not isinstance(layer, (nn.Conv2d, nn.MaxPool2d) + _POINTWISE):
                raise TypeError(f"features.{name}: {type(layer).__name__} is not supported by RaggedAlexNet")
        self.model = model

    @staticmethod
    def _out_len(layer: nn.Module, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output length along time of a Conv2d / MaxPool2d for input ``lengths``."""
        k, s = _pair(layer.kernel_size)[1], _pair(layer.stride)[1]
        p, d = _pair(layer.padding)[1], _pair(layer.dilation)[1]
        return torch.div(lengths + 2 * p - d * (k - 1) - 1, s, rounding_mode="floor") + 1

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        lengths = lengths.to(torch.int64)
        features = model_input(m, features, lengths)
        x = (features - m.input_mean) / m.input_std
        x = _time_mask(x, lengths)
        # Clips shorter than the stack's minimum are padded to it (with zeros = the mean), as model.normalize does.
        x = F.pad(x, (0, MIN_SIZE))[..., : torch.sym_max(features.shape[-1], MIN_SIZE)]
        lengths = lengths.clamp(min=MIN_SIZE)
        if x.shape[-2] < MIN_SIZE:
            x = F.pad(x, (0, 0, 0, MIN_SIZE - x.shape[-2]))
        for layer in m.features:
            x = layer(x)
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                lengths = self._out_len(layer, lengths)
            x = _time_mask(x, lengths)
        if m.config.pool == "stats":
            x = stats_pool(x, lengths)
        else:
            oh, ow = _pair(m.avgpool.output_size)
            rows = pool_matrix(torch.full((1,), x.shape[-2], dtype=torch.int64, device=x.device), x.shape[-2], oh)[0]
            cols = pool_matrix(lengths, x.shape[-1], ow)
            x = torch.flatten(torch.einsum("bchw,hi,bwj->bcij", x, rows, cols), 1)  # (batch, 256 · 6 · 6)
        c = m.classifier
        emb = c[2](c[1](c[0](x)))
        logits = c[4](c[3](emb))
        return m.probabilities(logits), emb
