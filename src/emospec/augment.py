"""Waveform augmentation for unseen microphones and rooms, with ``audiomentations``.

A model trained on a few acted corpora also learns their recording chain
(one studio, one microphone, one level). :func:`augmented_features` makes
``copies`` altered versions of each training clip, once, before training:
level changes (gain, peak normalisation), coloured noise at realistic SNRs,
microphone colouring (seven-band parametric EQ, high- and low-pass filters),
a simulated room (``RoomSimulator``, which needs ``pyroomacoustics``) and a
small tempo change. Each version goes through the same 3D log-Mel extraction
as real audio (:func:`emospec.features.extract`), and training draws one
version of every clip per epoch (:class:`emospec.data.dataset.CropDataset`),
so an epoch keeps its length and features are never recomputed.

The chain is :func:`augmenter`; :data:`AUGMENT_VERSION` names it in saved
configs. Version ``k`` of a clip depends only on ``(seed, clip index, k)``.
"""

from __future__ import annotations

import random
import sys
from typing import List, Sequence

import numpy as np
import torch

from .audio import load as load_audio
from .config import FeatureConfig
from .errors import ConfigError, EmospecError
from .features import extract

__all__ = ["AUGMENT_VERSION", "augmenter", "augment_wave", "augmented_features", "standardised_versions"]

AUGMENT_VERSION = "wave-v1"
"""Name of the chain :func:`augmenter` builds (saved with ``TrainConfig.augment_copies``)."""


def augmenter(*, room: bool = True):
    """The augmentation chain: an ``audiomentations.Compose`` taking ``(samples,)`` float32 and a rate.

    Every transform fires on its own probability, so a version carries 2–3
    changes on average and some carry none. ``room=False`` leaves out the
    room simulation (the slowest step, and the one needing ``pyroomacoustics``).

    Raises
    ------
    ConfigError
        ``audiomentations`` (or, with ``room``, ``pyroomacoustics``) is not installed.
    """
    try:
        import audiomentations as am
    except ImportError as e:  # pragma: no cover - the dependency is declared
        raise ConfigError("waveform augmentation needs audiomentations: pip install 'emospec[augment]'") from e
    steps = [
        am.Gain(min_gain_db=-12.0, max_gain_db=12.0, p=0.5),
        am.SevenBandParametricEQ(min_gain_db=-9.0, max_gain_db=9.0, p=0.4),
        am.HighPassFilter(min_cutoff_freq=60.0, max_cutoff_freq=400.0, p=0.2),
        am.LowPassFilter(min_cutoff_freq=3500.0, max_cutoff_freq=7500.0, p=0.2),
        am.TimeStretch(min_rate=0.92, max_rate=1.08, leave_length_unchanged=False, p=0.2),
        am.AddColorNoise(min_snr_db=10.0, max_snr_db=35.0, p=0.4),
        am.Normalize(p=0.2),
    ]
    if room:
        try:
            import pyroomacoustics  # noqa: F401
        except ImportError as e:  # pragma: no cover - the dependency is declared
            raise ConfigError("room simulation needs pyroomacoustics: pip install 'emospec[augment]'") from e
        steps.insert(4, am.RoomSimulator(min_target_rt60=0.15, max_target_rt60=0.6, calculation_mode="rt60",
                                         use_ray_tracing=False, max_order=6, leave_length_unchanged=True, p=0.3))
    return am.Compose(steps)


def augment_wave(wave: np.ndarray, sr: int, seed: int, chain=None) -> np.ndarray:
    """One augmented version of ``wave`` ``(samples,)`` float32 at ``sr`` Hz, reproducible from ``seed``.

    ``audiomentations`` draws from Python's and NumPy's global generators;
    both are seeded here and restored afterwards, so callers' streams are
    left as they were. The result is float32, finite and clipped to [-1, 1].
    """
    chain = chain or augmenter()
    state_py, state_np = random.getstate(), np.random.get_state()
    try:
        random.seed(seed)
        np.random.seed(seed % (2**32))
        out = chain(samples=np.ascontiguousarray(wave, dtype=np.float32), sample_rate=int(sr))
    finally:
        random.setstate(state_py)
        np.random.set_state(state_np)
    return np.clip(np.nan_to_num(np.asarray(out, dtype=np.float32)), -1.0, 1.0)


def augmented_features(paths: Sequence[str], copies: int, feature_config: FeatureConfig = FeatureConfig(), *,
                       seed: int = 0, progress: bool = True) -> List[List[torch.Tensor]]:
    """``copies`` augmented 3D log-Mel versions of each clip in ``paths``: ``out[i][k]`` ``(3, n_mels, frames)`` dB.

    Clip ``i``'s version ``k`` uses seed ``hash((seed, i, k))`` (stable, not
    Python's salted hash). A clip that cannot be read gets no versions (an
    empty list) and one line on stderr naming it; the others go on.
    """
    if copies < 0:
        raise ConfigError(f"augment copies must be >= 0, got {copies}")
    from tqdm.auto import tqdm

    chain = augmenter()
    out: List[List[torch.Tensor]] = []
    for i, path in enumerate(tqdm(paths, desc="augment", unit="clip", leave=False, disable=not progress or not copies)):
        out.append(_versions(path, i, copies, chain, feature_config, seed))
    return out


def _versions(path: str, i: int, copies: int, chain, cfg: FeatureConfig, seed: int) -> List[torch.Tensor]:
    """Clip ``i``'s ``copies`` versions; none (and one stderr line) when it cannot be read."""
    if not copies:
        return []
    try:
        wave = load_audio(path, sr=cfg.sample_rate_hz)
    except EmospecError as e:
        print(f"augment: skipped {e}", file=sys.stderr)
        return []
    return [extract(torch.from_numpy(augment_wave(wave, cfg.sample_rate_hz, _seed(seed, i, k), chain)), cfg).cpu()
            for k in range(copies)]


def _seed(seed: int, i: int, k: int) -> int:
    return (int(seed) * 1_000_003 + int(i) * 9_176 + int(k) * 7_919 + 12_345) % (2**31 - 1)


def standardised_versions(rows: Sequence, versions: Sequence[Sequence[torch.Tensor]], mode: str) -> List[List[torch.Tensor]]:
    """``versions`` (of clips ``rows``: ``.speaker``, ``.corpus``) standardised as the originals are under ``mode``.

    Version ``k`` of a group's clips is a group of its own (the same speaker
    in another room), so ``speaker`` statistics come from that group's
    versions, as a new speaker's come from their own clips; ``global``
    leaves them raw (:func:`emospec.norm.normalize_groups`).
    """
    from .norm import group_keys, normalize_groups

    keys = group_keys(mode, [r.speaker for r in rows], [r.corpus for r in rows])
    flat, flat_keys, where = [], [], []
    for i, vs in enumerate(versions):
        for k, v in enumerate(vs):
            flat.append(v)
            flat_keys.append(None if keys is None else (keys[i], "augment", k))
            where.append(i)
    normed = normalize_groups(flat, None if keys is None else flat_keys)
    out: List[List[torch.Tensor]] = [[] for _ in versions]
    for i, x in zip(where, normed):
        out[i].append(x)
    return out
