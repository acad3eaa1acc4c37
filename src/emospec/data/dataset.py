"""Turning manifest rows into features, and fixed-length training crops.

:func:`compute_features` decodes and featurises a list of files (reporting
bad files instead of dying), optionally through a :class:`~emospec.data.cache.FeatureCache`
and with parallel worker processes; :func:`fill_cache` does the same for a
cache alone (``emospec prepare --features``), and :func:`shard` picks one of
``n`` deterministic slices so several machines can fill one cache.
:class:`CropDataset` serves random fixed-length crops for training, padding
short clips with the training mean so that they normalise to zeros.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import load
from ..config import FeatureConfig
from ..errors import ConfigError, EmospecError
from ..features import extract
from .cache import FeatureCache, audio_digest

__all__ = ["compute_features", "featurise", "fill_cache", "CacheStats", "shard", "parse_shard", "CropDataset",
           "GroupBalancedSampler",
           "feature_stats"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def featurise(path: str, cfg: FeatureConfig = FeatureConfig(), cache: Optional[FeatureCache] = None) -> Tuple[np.ndarray, bool]:
    """Features of one file: ``((3, n_mels, frames) float32 dB, came_from_cache)``.

    With a cache the file is read once: its bytes are hashed for the key and,
    on a miss, decoded from those same bytes, so an entry always matches the
    content it is filed under.

    Raises
    ------
    EmospecError
        ``AudioError`` / ``FeatureError`` naming the file and the cause.
    """
    if cache is None:
        return extract(load(path, sr=cfg.sample_rate_hz), cfg).numpy(), False
    digest, data = audio_digest(path)
    hit = cache.load(digest)
    if hit is not None:
        return hit, True
    named = io.BytesIO(data)
    named.name = str(path)  # errors and warnings name the file, not "<N bytes>"
    wave = load(named, sr=cfg.sample_rate_hz)
    feats = extract(wave, cfg).numpy()
    try:
        cache.store(digest, feats)
    except OSError as e:
        log.warning("%s: features not cached (%s)", path, e)
    return feats, False


def _job(path: str, cfg: FeatureConfig, cache: Optional[FeatureCache], keep: bool) -> Tuple[Optional[np.ndarray], str, bool]:
    """Worker body: ``(features or None, problem line or '', cache hit)``; never raises an EmospecError."""
    try:
        arr, hit = featurise(path, cfg, cache)
        return (arr if keep else None), "", hit
    except EmospecError as e:
        return None, str(e), False


def _init_worker() -> None:
    torch.set_num_threads(1)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a killed parent must not leave its workers blocked on the task queue forever
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent) -> None:
    """Wait for ``parent`` (a worker's parent process) to end, then end this worker at once."""
    parent.join()
    os._exit(1)


def _run(paths: Sequence[str], cfg: FeatureConfig, cache: Optional[FeatureCache], *, keep: bool, workers: int,
         progress: bool, desc: str) -> List[Tuple[Optional[np.ndarray], str, bool]]:
    """Run :func:`_job` over ``paths`` in order, in ``workers`` processes (1: in this one), with a tqdm bar."""
    from tqdm.auto import tqdm

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    fn = partial(_job, cfg=cfg, cache=cache, keep=keep)
    bar = partial(tqdm, total=len(paths), desc=desc, unit="clip", disable=not progress, leave=False)
    if workers == 1 or len(paths) < 2:
        # one clip is too small for intra-op threads to pay: on a busy 2-core machine torch's
        # default 2 threads measured ~300 ms per RAVDESS clip against ~15-20 ms with 1
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return list(bar(map(fn, paths)))
        finally:
            torch.set_num_threads(prev)
    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    chunk = max(1, min(16, len(paths) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as ex:
        return list(bar(ex.map(fn, paths, chunksize=chunk)))


def compute_features(
    paths: Sequence[str],
    cfg: FeatureConfig = FeatureConfig(),
    *,
    progress: bool = True,
    desc: str = "features",
    cache: Optional[FeatureCache] = None,
    workers: int = 1,
) -> Tuple[List[Optional[torch.Tensor]], List[str]]:
    """Decode and featurise ``paths`` (through ``cache`` if given, in ``workers`` processes).

    Clips are featurised one at a time on one torch thread each; ``workers > 1``
    starts that many processes (``spawn``), so a script that calls this must
    guard its entry point with ``if __name__ == "__main__":``.

    Returns
    -------
    feats : list
        ``(3, n_mels, frames)`` float32 dB tensors, ``None`` where a file failed.
    problems : list of str
        One line per failed file: ``path: reason``.
    """
    if cache is not None and cache.config != cfg:
        raise ConfigError("compute_features: the cache was opened for a different FeatureConfig")
    feats: List[Optional[torch.Tensor]] = []
    problems: List[str] = []
    for arr, problem, _ in _run(paths, cfg, cache, keep=True, workers=workers, progress=progress, desc=desc):
        feats.append(None if arr is None else torch.from_numpy(arr))
        if problem:
            problems.append(problem)
            log.info("%s", problem)  # returned to the caller, who reports it
    return feats, problems


@dataclass
class CacheStats:
    """What :func:`fill_cache` did: entries found, computed, failed files, wall seconds."""

    hits: int = 0
    computed: int = 0
    problems: List[str] = field(default_factory=list)
    seconds: float = 0.0


def fill_cache(paths: Sequence[str], cache: FeatureCache, *, workers: int = 1, progress: bool = True,
               desc: str = "features") -> CacheStats:
    """Make sure ``cache`` holds the features of every file in ``paths`` (nothing is returned but counts)."""
    t0 = time.perf_counter()
    stats = CacheStats()
    for _, problem, hit in _run(paths, cache.config, cache, keep=False, workers=workers, progress=progress, desc=desc):
        if problem:
            stats.problems.append(problem)
        elif hit:
            stats.hits += 1
        else:
            stats.computed += 1
    stats.seconds = time.perf_counter() - t0
    return stats


def parse_shard(text: str) -> Tuple[int, int]:
    """``'2/4'`` -> ``(2, 4)``: shard 2 of 4 (1-based)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as e:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 1/4") from e
    if not 1 <= i <= n:
        raise ConfigError(f"--shard {text!r}: need 1 <= I <= N")
    return i, n


def shard(items: Sequence[T], index: int, count: int, *, key=None) -> List[T]:
    """The ``index``-th (1-based) of ``count`` deterministic, disjoint, near-equal slices of ``items``.

    Items are ordered by ``key`` (default: themselves) and dealt round-robin,
    so every machine that runs the same manifest with ``--shard i/n`` gets the
    same slice wherever the files are mounted, and the n slices cover it once.
    """
    ordered = sorted(items, key=key)
    return [x for k, x in enumerate(ordered) if k % count == index - 1]


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
    if total is None or sq is None or n == 0:
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
    versions
        Optional altered versions of each clip (``versions[i]``: a list of
        tensors shaped like ``feats[i]`` up to length, e.g. from
        :func:`emospec.augment.augmented_features`). Each epoch every clip is
        drawn as itself or one of its versions, equally likely (seeded like
        the crops), so an epoch keeps ``len(feats)`` items.
    """

    def __init__(self, feats: Sequence[torch.Tensor], labels: Sequence[int], crop_frames: int, pad: torch.Tensor, *, seed: int = 0,
                 versions: Optional[Sequence[Sequence[torch.Tensor]]] = None):
        if versions is not None and len(versions) != len(feats):
            raise ValueError(f"CropDataset: {len(feats)} clips but versions for {len(versions)}")
        self.choices = [[f, *(versions[i] if versions is not None else ())] for i, f in enumerate(feats)]
        self.feats = list(feats)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.crop = int(crop_frames)
        self.pad = pad.reshape(pad.shape[0], pad.shape[1], 1).float()
        self.seed = seed
        self.starts = np.zeros(len(self.feats), dtype=np.int64)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if any(len(c) > 1 for c in self.choices):  # its own stream: without versions the crops stay as before
            pick = np.random.default_rng([self.seed, epoch, 7]).random(len(self.choices))
            self.feats = [c[int(u * len(c))] for c, u in zip(self.choices, pick)]
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


class GroupBalancedSampler(torch.utils.data.Sampler):
    """Indices drawn so that every group (e.g. corpus) is equally likely, ``len(groups)`` a epoch.

    Items are drawn with replacement with probability ``1 / (n_groups * size of
    their group)``; the draw for epoch ``e`` depends only on ``(seed, e)``
    (:meth:`set_epoch`), and process ``rank`` of ``num_replicas`` takes every
    ``num_replicas``-th index of it, as :class:`DistributedSampler` does
    (dropping the tail so that every process gets the same number).
    """

    def __init__(self, groups: Sequence, *, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        keys = {g: k for k, g in enumerate(dict.fromkeys(groups))}
        codes = np.array([keys[g] for g in groups], dtype=np.int64)
        counts = np.bincount(codes)
        self.p = 1.0 / (len(counts) * counts[codes])
        self.p = self.p / self.p.sum()
        self.seed, self.epoch, self.num_replicas, self.rank = seed, 0, num_replicas, rank
        self.per_rank = len(codes) // num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng(self.seed * 100019 + self.epoch)
        idx = rng.choice(len(self.p), size=self.per_rank * self.num_replicas, replace=True, p=self.p)
        return iter(idx[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_rank


class StratifiedSampler(torch.utils.data.Sampler):
    """Each clip once an epoch, ordered so that every run of consecutive indices keeps the classes' proportions.

    Item ``j`` of class ``c`` (in a permutation of that class's clips, seeded
    by ``(seed, epoch)``) gets the key ``(j + u_c) / n_c`` with one random
    offset ``u_c`` per class, and the epoch is the items sorted by key
    (systematic sampling): any ``B`` consecutive items hold ``B * n_c / n``
    clips of class ``c`` to within two (a window covers a stretch of keys
    holding each class's share to within one clip). With BatchNorm in training mode a batch is normalised by its own statistics,
    so a batch that drew almost no clip of one class is trained on, and
    scored, differently from the rest (README, session 26). Process
    ``rank`` of ``num_replicas`` takes every ``num_replicas``-th index (the
    tail dropped so all get as many), so a world of N sees the same global
    batches as one process.
    """

    def __init__(self, labels: Union[Sequence[int], np.ndarray], *, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed, self.epoch, self.num_replicas, self.rank = seed, 0, num_replicas, rank
        self.per_rank = len(self.labels) // num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> np.ndarray:
        """This epoch's global order: ``(n,)`` indices, each once."""
        rng = np.random.default_rng([self.seed, self.epoch, 13])
        keys = np.zeros(len(self.labels))
        for c in np.unique(self.labels):
            members = rng.permutation(np.flatnonzero(self.labels == c))
            keys[members] = (np.arange(len(members)) + rng.random()) / len(members)
        return np.argsort(keys, kind="stable")

    def __iter__(self):
        idx = self.order()[: self.per_rank * self.num_replicas]
        return iter(idx[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_rank
