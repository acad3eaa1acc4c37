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

:func:`voice_features` makes *virtual speakers* instead (speed-perturbation
and vocal-tract-length augmentation in the spirit of Ko et al. 2015 and
Jaitly & Hinton 2013): version ``k`` of every clip of one speaker is shifted
by one pitch-and-formant factor and one tempo factor drawn for that
``(speaker, k)`` (:data:`VOICE_SEMITONES`, :data:`VOICE_TEMPO`), so that a
speaker's clips keep their emotions' pitch and rate *relative to each other*
while the speaker's voice moves; standardised per speaker, each version is a
new speaker to the model.
"""

from __future__ import annotations

import random
import sys
import zlib
from typing import Dict, Hashable, List, Optional, Sequence

import numpy as np
import torch

from .audio import load as load_audio
from .config import FeatureConfig
from .errors import ConfigError, EmospecError
from .features import extract

__all__ = ["AUGMENT_VERSION", "VOICE_VERSION", "augmenter", "augment_wave", "augmented_features", "voice_shift", "voice_features",
           "standardised_versions", "contrast_versions"]

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


VOICE_VERSION = "voice-v1"
"""Name of :func:`voice_features`' perturbation (saved with ``TrainConfig.voice_copies``)."""
VOICE_SEMITONES = 3.0
"""Virtual speakers' pitch-and-formant shift is uniform in ± this many semitones (±19 % in frequency)."""
VOICE_TEMPO = (0.9, 1.1)
"""Virtual speakers' tempo factor range (1.1: 10 % faster)."""


def voice_shift(speaker: str, k: int, seed: int = 0):
    """Virtual speaker ``k`` of ``speaker``: ``(semitones, tempo)``, the same for every clip of that speaker.

    Drawn uniformly from ±:data:`VOICE_SEMITONES` and :data:`VOICE_TEMPO`
    with a generator seeded from ``(seed, crc32(speaker), k)`` (stable across
    processes, unlike Python's salted ``hash``).
    """
    rng = np.random.default_rng([int(seed), zlib.crc32(str(speaker).encode()), int(k)])
    return float(rng.uniform(-VOICE_SEMITONES, VOICE_SEMITONES)), float(rng.uniform(*VOICE_TEMPO))


def voice_wave(wave: np.ndarray, sr: int, semitones: float, tempo: float) -> np.ndarray:
    """``wave`` ``(samples,)`` float32 with pitch and formants shifted by ``semitones`` and played ``tempo`` times faster.

    Both are ``audiomentations`` transforms run at a fixed value
    (``PitchShift`` with the signalsmith stretcher, ``TimeStretch`` whose
    output length follows the tempo). Returns float32 in [-1, 1].
    """
    import audiomentations as am

    out = am.PitchShift(min_semitones=semitones, max_semitones=semitones, p=1.0)(
        samples=np.ascontiguousarray(wave, dtype=np.float32), sample_rate=int(sr))
    if abs(tempo - 1.0) > 1e-6:
        out = am.TimeStretch(min_rate=tempo, max_rate=tempo, leave_length_unchanged=False, p=1.0)(
            samples=np.ascontiguousarray(out, dtype=np.float32), sample_rate=int(sr))
    return np.clip(np.nan_to_num(np.asarray(out, dtype=np.float32)), -1.0, 1.0)


def voice_features(paths: Sequence[str], speakers: Sequence[str], copies: int, feature_config: FeatureConfig = FeatureConfig(),
                   *, seed: int = 0, progress: bool = True) -> List[List[torch.Tensor]]:
    """``copies`` virtual-speaker versions of each clip: ``out[i][k]`` ``(3, n_mels, frames)`` dB.

    Version ``k`` of clip ``i`` is shifted by :func:`voice_shift` of
    ``(speakers[i], k, seed)``. A clip that cannot be read gets no versions
    and one line on stderr naming it; the others go on.
    """
    if copies < 0:
        raise ConfigError(f"voice copies must be >= 0, got {copies}")
    from tqdm.auto import tqdm

    out: List[List[torch.Tensor]] = []
    sr = feature_config.sample_rate_hz
    for path, speaker in tqdm(list(zip(paths, speakers)), desc="voices", unit="clip", leave=False,
                              disable=not progress or not copies):
        if not copies:
            out.append([])
            continue
        try:
            wave = load_audio(path, sr=sr)
        except EmospecError as e:
            print(f"voices: skipped {e}", file=sys.stderr)
            out.append([])
            continue
        out.append([extract(torch.from_numpy(voice_wave(wave, sr, *voice_shift(speaker, k, seed))), feature_config).cpu()
                    for k in range(copies)])
    return out


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


def contrast_versions(feats: Sequence[torch.Tensor], groups: Sequence[Hashable], y: Sequence[int], copies: int, *,
                      reference: Optional[int] = None, low: float = 0.25, seed: int = 0) -> List[List[torch.Tensor]]:
    """``copies`` versions of each clip with its emotional contrast shrunk towards its speaker's reference.

    Acted corpora differ in how strongly their speakers express emotion (the
    README's corpus contrasts: nEMO's angry lies 2.5 dB of high-frequency
    energy above its speakers' neutral, RAVDESS's and EMOVO's 6–7 dB), and a
    model trained on the strong ones reads weak expression as neutral. A
    version moves a clip's spectral envelope part of the way to its
    speaker's neutral one, keeping its label: with ``m_i`` the time-mean of
    clip ``i``'s log-Mel channel (``feats[i][0]``, ``(n_mels,)``) and ``r_g``
    the mean of ``m_j`` over group ``g``'s clips of class ``reference`` (all
    its clips when it has none, or ``reference`` is None), version ``k`` is
    ``feats[i]`` with ``(1 - s) * (m_i - r_g)`` taken from channel 0 at
    every frame, ``s ~ U(low, 1)`` drawn per ``(seed, i, k)``. A constant
    offset has no deltas, so channels 1 and 2 are left as they are.

    ``feats``: ``(3, n_mels, frames_i)`` float32, standardised or dB (the
    shift is linear either way); ``groups[i]``: clip ``i``'s speaker key;
    ``y[i]``: its class index. Returns ``out[i]``: a list of ``copies``
    tensors shaped like ``feats[i]``.
    """
    if copies < 0 or not 0.0 <= low <= 1.0:
        raise ConfigError(f"contrast versions need copies >= 0 and low in [0, 1], got {copies}, {low}")
    if not (len(feats) == len(groups) == len(y)):
        raise ValueError(f"contrast_versions: {len(feats)} clips, {len(groups)} groups, {len(y)} labels")
    if not copies:
        return [[] for _ in feats]
    means = [f[0].float().mean(dim=-1) for f in feats]
    labels = np.asarray(y)
    refs: Dict[Hashable, torch.Tensor] = {}
    for g in dict.fromkeys(groups):
        idx = [i for i, h in enumerate(groups) if h == g]
        ref = [i for i in idx if reference is not None and labels[i] == reference] or idx
        refs[g] = torch.stack([means[i] for i in ref]).mean(dim=0)
    shares = np.random.default_rng([int(seed), 15_485_863]).uniform(low, 1.0, size=(len(feats), copies))
    out: List[List[torch.Tensor]] = []
    for i, f in enumerate(feats):
        offset = (means[i] - refs[groups[i]]).to(f.dtype)[:, None]
        versions = []
        for k in range(copies):
            v = f.clone()
            v[0] -= float(1.0 - shares[i, k]) * offset
            versions.append(v)
        out.append(versions)
    return out
