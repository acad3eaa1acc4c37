"""Turning manifest rows into features, and fixed-length training crops.

:func:`compute_features` decodes and featurises a list of files (reporting
bad files instead of dying); :class:`CropDataset` serves random fixed-length
crops for training, padding short clips with the training mean so that they
normalise to zeros.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import load
from ..config import FeatureConfig
from ..errors import EmospecError
from ..features import extract

__all__ = ["compute_features", "CropDataset", "feature_stats"]

log = logging.getLogger(__name__)


def compute_features(
    paths: Sequence[str],
    cfg: FeatureConfig = FeatureConfig(),
    *,
    progress: bool = True,
    desc: str = "features",
) -> Tuple[List[Optional[torch.Tensor]], List[str]]:
    """Decode and featurise ``paths``.

    Returns
    -------
    feats : list
        ``(3, n_mels, frames)`` float32 dB tensors, ``None`` where a file failed.
    problems : list of str
        One line per failed file: ``path: reason``.
    """
    from tqdm.auto import tqdm

    feats: List[Optional[torch.Tensor]] = []
    problems: List[str] = []
    for p in tqdm(paths, desc=desc, unit="clip", disable=not progress, leave=False):
        try:
            feats.append(extract(load(p, sr=cfg.sample_rate_hz), cfg))
        except EmospecError as e:
            feats.append(None)
            problems.append(str(e))
            log.warning("%s", e)
    return feats, problems


def feature_stats(feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and std over all frames of ``feats``: each ``(3, n_mels)`` float32 dB."""
    total = None
    sq = None
    n = 0
    for f in feats:
        x = f.double()
        s, s2 = x.sum(-1), (x * x).sum(-1)
        total = s if total is None else total + s
        sq = s2 if sq is None else sq + s2
        n += x.shape[-1]
    if total is None or n == 0:
        raise ValueError("feature_stats: no frames")
    mean = total / n
    var = (sq / n - mean * mean).clamp(min=0)
    return mean.float(), var.sqrt().float()


class CropDataset(Dataset):
    """Random fixed-length crops of precomputed features.

    Parameters
    ----------
    feats
        ``(3, n_mels, frames_i)`` float32 dB tensors.
    labels
        Class indices, one per clip.
    crop_frames
        Crop length in frames; shorter clips are padded on the right with ``pad``.
    pad
        ``(3, n_mels, 1)`` values to pad with (the training mean, so padding
        normalises to zero).
    seed
        Crop positions for epoch ``e`` come from ``seed + e`` (set via
        :meth:`set_epoch`), so runs and resumed runs repeat exactly.
    """

    def __init__(self, feats: Sequence[torch.Tensor], labels: Sequence[int], crop_frames: int, pad: torch.Tensor, *, seed: int = 0):
        self.feats = list(feats)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.crop = int(crop_frames)
        self.pad = pad.reshape(pad.shape[0], pad.shape[1], 1).float()
        self.seed = seed
        self.starts = np.zeros(len(self.feats), dtype=np.int64)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng(self.seed * 100003 + epoch)
        spans = np.array([max(0, f.shape[-1] - self.crop) for f in self.feats])
        self.starts = (rng.random(len(self.feats)) * (spans + 1)).astype(np.int64)

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        f = self.feats[i]
        t = f.shape[-1]
        if t >= self.crop:
            s = int(self.starts[i])
            x = f[..., s : s + self.crop]
        else:
            x = torch.cat([f, self.pad.expand(-1, -1, self.crop - t)], dim=-1)
        return x, self.labels[i]
