"""Group standardisation of 3D log-Mel features: per utterance, speaker or corpus.

The paper standardises every input with statistics of the training set
(``ModelConfig.norm = "global"``: the model's own buffers, nothing here).
Speaker and channel differences then reach the classifier unchanged; a
classic remedy in speech emotion recognition is to standardise each
speaker's (or corpus's) features with that group's own statistics, computed
from its unlabelled audio. Test audio is standardised with its own group's
statistics, so no label of a test item is ever used, but the test speaker's
other clips are (a transductive step, like speaker adaptation; say so when
reporting). ``"utterance"`` uses each clip alone and needs nothing else.

Statistics are per channel and mel band, over all frames of the group's
clips, in dB: ``mean, std`` of shape ``(3, n_mels)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Hashable, List, Optional, Sequence

import numpy as np
import torch

from .config import NORMS
from .errors import ConfigError

__all__ = ["GroupStats", "group_stats", "group_keys", "normalize_groups", "normalize_rows", "normalize_for", "apply_stats",
           "standardize_clips", "model_input", "raw_inputs",
           "fold_into_model", "population_meta", "inference_model", "skewed_subset_versions",
           "population_versions",
           "blend_stats", "population_stats", "ADAPT_WEIGHT", "blend_clips", "choose_clip_weight",
           "POPULATION_KEY", "CLIP_WEIGHT_KEY", "ADAPT_WEIGHT_KEY", "CLIP_WEIGHTS", "NORMS"]


@dataclass(frozen=True)
class GroupStats:
    """Per-bin statistics of one group: ``mean``, ``std`` ``(3, n_mels)`` float32 dB; ``frames`` counted."""

    mean: torch.Tensor
    std: torch.Tensor
    frames: int


def group_stats(feats: Sequence[torch.Tensor]) -> GroupStats:
    """Mean and std over all frames of ``feats`` (each ``(3, n_mels, frames_i)``), per channel and band."""
    if not feats:
        raise ValueError("group_stats: no clips")
    x = torch.cat([f.double() for f in feats], dim=-1)
    if x.shape[-1] == 0:
        raise ValueError("group_stats: no frames")
    mean = x.mean(-1)
    std = x.std(-1, unbiased=False).clamp(min=1e-3)
    return GroupStats(mean.float(), std.float(), int(x.shape[-1]))


def apply_stats(feats: torch.Tensor, stats: GroupStats) -> torch.Tensor:
    """``(…, 3, n_mels, frames)`` dB -> standardised with ``stats`` (same shape, float32)."""
    return ((feats - stats.mean[..., None]) / stats.std[..., None]).float()


def blend_stats(own: GroupStats, population: GroupStats, weight: float) -> GroupStats:
    """Statistics ``weight`` of the way from ``population``'s to ``own``: mean linearly, std geometrically.

    ``weight=1`` is ``own`` (full adaptation), ``0`` the population's (none).
    In between, a speaker's clips move the standardisation only part of the
    way, which bounds what a biased set of clips (one emotion only) can do.
    """
    mean, std = _blend(own.mean, own.std, population.mean, population.std, weight)
    return GroupStats(mean.float(), std.float(), own.frames)


def _check_weight(weight: float) -> float:
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"adaptation weight must be in [0, 1], got {weight}")
    return weight


def _blend(mean, std, pop_mean, pop_std, weight: float):
    """Mean ``weight`` of the way from ``pop_mean`` to ``mean`` (linearly), std likewise (geometrically)."""
    _check_weight(weight)
    return pop_mean + weight * (mean - pop_mean), pop_std * (std / pop_std) ** weight


def population_stats(meta: Optional[Dict]) -> Optional[GroupStats]:
    """The training population's statistics stored in a model file's ``meta`` (:data:`POPULATION_KEY`), or None."""
    pop = (meta or {}).get(POPULATION_KEY)
    if not pop:
        return None
    return GroupStats(torch.tensor(pop["mean"], dtype=torch.float32), torch.tensor(pop["std"], dtype=torch.float32),
                      int(pop.get("frames", 0)))


def group_keys(mode: str, speakers: Sequence[Hashable], corpora: Sequence[Hashable]) -> Optional[List[Hashable]]:
    """The group of each clip under ``mode``: None for ``global``, one per clip for ``utterance``."""
    if mode not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}; got {mode!r}")
    if mode == "global":
        return None
    if mode == "utterance":
        return list(range(len(speakers)))
    if mode == "speaker":  # speaker ids are only unique within a corpus
        return [(c, s) for c, s in zip(corpora, speakers)]
    return list(corpora)


def normalize_groups(feats: Sequence[torch.Tensor], groups: Optional[Sequence[Hashable]]) -> List[torch.Tensor]:
    """Standardise each clip with the statistics of its group (``groups[i]`` for ``feats[i]``).

    ``groups=None`` returns the clips unchanged (``norm="global"``).
    """
    if groups is None:
        return list(feats)
    if len(groups) != len(feats):
        raise ValueError(f"normalize_groups: {len(feats)} clips but {len(groups)} group keys")
    members: Dict[Hashable, List[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    out: List[Optional[torch.Tensor]] = [None] * len(feats)
    for idx in members.values():
        stats = group_stats([feats[i] for i in idx])
        for i in idx:
            out[i] = apply_stats(feats[i], stats)
    return out  # type: ignore[return-value]


def normalize_for(rows: Sequence, feats: Sequence[torch.Tensor], mode: str) -> List[torch.Tensor]:
    """Standardise ``feats[i]`` (of manifest row ``rows[i]``: ``.speaker``, ``.corpus``) as ``mode`` says."""
    return normalize_groups(feats, group_keys(mode, [r.speaker for r in rows], [r.corpus for r in rows]))


def normalize_rows(x: np.ndarray, groups: Optional[Sequence[Hashable]]) -> np.ndarray:
    """Z-score the rows of ``x`` ``(n, d)`` (e.g. eGeMAPS functionals) within each group; None: unchanged."""
    if groups is None:
        return x
    if len(groups) != len(x):
        raise ValueError(f"normalize_rows: {len(x)} rows but {len(groups)} group keys")
    out = np.empty_like(x, dtype=np.float64)
    members: Dict[Hashable, List[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    for idx in members.values():
        block = x[idx].astype(np.float64)
        sd = block.std(0)
        out[idx] = (block - block.mean(0)) / np.where(sd > 1e-8, sd, 1.0)
    return out


def _clip_moments(x: torch.Tensor, frames: Optional[torch.Tensor]):
    """Mean and std ``(batch, 3, n_mels, 1)`` over each clip's valid frames, and the ``(batch, 1, 1, T)`` mask."""
    t = x.shape[-1]
    n = torch.full((x.shape[0],), t, device=x.device) if frames is None else frames.to(x.device)
    valid = (torch.arange(t, device=x.device)[None, :] < n[:, None])[:, None, None, :]
    cnt = n.clamp(min=1).double()[:, None, None, None]
    mean = (x * valid).sum(-1, keepdim=True) / cnt
    var = (((x - mean) * valid) ** 2).sum(-1, keepdim=True) / cnt
    return mean, var.sqrt().clamp(min=1e-3), valid


def standardize_clips(feats: torch.Tensor, frames: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-utterance standardisation of a batch ``(batch, 3, n_mels, T)`` over each clip's valid frames.

    ``frames`` ``(batch,)`` counts the valid frames (all ``T`` when None);
    frames past them come out as zeros. Equals :func:`normalize_groups` with
    ``group_keys("utterance", ...)`` on each clip alone.
    """
    x = feats.double()
    mean, std, valid = _clip_moments(x, frames)
    return (((x - mean) / std) * valid).to(feats.dtype)


def blend_clips(feats: torch.Tensor, frames: Optional[torch.Tensor], weight: float, pop_mean: torch.Tensor,
                pop_std: torch.Tensor) -> torch.Tensor:
    """Raw dB ``(batch, 3, n_mels, T)`` -> the raw dB that, standardised with the population's statistics
    ``pop_mean`` / ``pop_std`` ``(3, n_mels, 1)``, equals each clip standardised with statistics ``weight`` of
    the way from the population's to its own (:func:`blend_stats` with the clip as its own adaptation set).

    ``weight=0`` returns the features unchanged; 1 is per-utterance standardisation. Frames past ``frames``
    are left as they were (the model masks them).
    """
    x = feats.double()
    mean, std, valid = _clip_moments(x, frames)
    pm, ps = pop_mean.to(x.device).double(), pop_std.to(x.device).double()  # a model on CUDA may blend CPU clips
    m, s = _blend(mean, std, pm, ps, weight)
    return torch.where(valid, pm + ps * (x - m) / s, x).to(feats.dtype)


def model_input(model, feats: torch.Tensor, frames: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Raw dB features ``(batch, 3, n_mels, T)`` -> what ``model`` was trained on.

    The one place inference turns raw features into model input: unchanged
    for ``model.config.norm == "global"``, unless :func:`inference_model` gave
    the model a ``clip_weight`` (each clip moved that far towards its own
    statistics, :func:`blend_clips`); otherwise each clip is its own group
    (:func:`standardize_clips`), as no speaker's other clips are known
    (:func:`fold_into_model` uses them when they are).
    """
    if model.config.norm != "global":
        return standardize_clips(feats, frames)
    weight = getattr(model, "clip_weight", 0.0)
    return feats if not weight else blend_clips(feats, frames, weight, model.clip_mean, model.clip_std)


def raw_inputs(model, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """:func:`model_input` of each raw dB clip ``(3, n_mels, frames_i)`` alone, for :func:`emospec.model.infer`."""
    return [model_input(model, f[None])[0] for f in feats]


def fold_into_model(model, stats: GroupStats):
    """A copy of ``model`` (an :class:`~emospec.model.EmoAlexNet`) that applies ``stats`` itself.

    Group standardisation followed by the model's own per-bin standardisation
    is one affine map per bin, so it folds into the model's ``input_mean`` /
    ``input_std`` buffers: the copy takes raw dB features (``norm="global"``)
    and every backend (torch, ragged batches, ONNX) runs it unchanged.
    """
    import copy
    from dataclasses import replace

    out = copy.deepcopy(model)
    m, s = model.input_mean, model.input_std  # (3, n_mels, 1)
    mean = stats.mean.reshape(m.shape).to(m) + m * stats.std.reshape(s.shape).to(s)
    std = stats.std.reshape(s.shape).to(s) * s
    out.input_mean.copy_(mean)
    out.input_std.copy_(std)
    out.config = replace(model.config, norm="global")
    return out


ADAPT_WEIGHT = 0.5
"""How far :meth:`emospec.predict.Recognizer.adapt` moves from the training population's statistics towards the
given clips' (:func:`blend_stats`). Measured on nEMO, a corpus the model never heard (``benchmarks/adapt_study.py``):
with the clips' own statistics (1.0) clips of one emotion only cost up to 0.09 UA against no adaptation; halfway
they cost at most 0.04 (0.012 for a model trained with ``stats_copies``) and balanced clips gain more than at 1.0."""

ADAPT_WEIGHT_KEY = "adapt_weight"
"""Model-file meta key: the model's own default for :meth:`emospec.predict.Recognizer.adapt`'s ``weight`` (absent:
:data:`ADAPT_WEIGHT`). The bundled model's is 1: with features relative to each clip's peak, the clips' own statistics
cost nothing with unbalanced clips on leave-one-corpus-out and gained more with balanced ones (README, session 9)."""

POPULATION_KEY = "input_stats"
"""Model-file meta key of the training population's statistics (models trained per speaker or corpus)."""


def population_meta(mode: str, train_feats: Sequence[torch.Tensor]) -> Dict[str, object]:
    """``{POPULATION_KEY: {...}}`` for a model trained with ``norm=mode`` on these raw training clips.

    For ``speaker``/``corpus`` models the statistics of all training clips
    pooled stand in for an unknown speaker's at inference (measured on RAVDESS
    6-fold: UA 0.566 with them, 0.301 standardising each clip alone, 0.599
    with the test speaker's own); ``{}`` for other modes.
    """
    if mode not in ("speaker", "corpus") or not train_feats:
        return {}
    s = group_stats(train_feats)
    return {POPULATION_KEY: {"mean": s.mean.tolist(), "std": s.std.tolist(), "frames": s.frames,
                             "what": "raw dB statistics pooled over the training clips, per channel and mel band"}}


CLIP_WEIGHT_KEY = "clip_weight"
"""Model-file meta key: how far each clip's own statistics move the population's when a ``speaker``/``corpus``
model runs with no adaptation clips (:func:`inference_model`, :func:`blend_clips`); chosen on the validation
speakers when the model is trained (:func:`choose_clip_weight`). Absent: 0, the population's statistics alone."""

CLIP_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The weights :func:`choose_clip_weight` tries."""


def inference_model(model, meta: Dict):
    """The model to run on raw dB features: a ``speaker``/``corpus`` model with its training population's
    statistics folded in (:func:`fold_into_model`) when its file has them; otherwise ``model`` itself.

    With ``meta[CLIP_WEIGHT_KEY] = w > 0`` the folded model also moves each clip ``w`` of the way towards its
    own statistics (:func:`model_input`, :func:`blend_clips`): non-persistent buffers ``clip_mean`` /
    ``clip_std`` hold the population's, so ``.to(device)``, ragged batches and ONNX export carry them.
    """
    stats = population_stats(meta)
    if model.config.norm not in ("speaker", "corpus") or stats is None:
        return model
    out = fold_into_model(model, stats)
    weight = _check_weight(float((meta or {}).get(CLIP_WEIGHT_KEY) or 0.0))
    if weight:
        out.register_buffer("clip_mean", stats.mean.reshape(model.input_mean.shape).to(model.input_mean), persistent=False)
        out.register_buffer("clip_std", stats.std.reshape(model.input_std.shape).to(model.input_std), persistent=False)
        out.clip_weight = weight
    return out


def choose_clip_weight(model, meta: Dict, feats: Sequence[torch.Tensor], y: Sequence[int], *,
                       device: str | torch.device = "cpu") -> Dict[str, object]:
    """``{CLIP_WEIGHT_KEY: w, "clip_weight_val_ua": {w: UA}}``: the :data:`CLIP_WEIGHTS` entry with the highest
    UA on ``feats`` (raw dB clips of the validation speakers, ``(3, n_mels, frames_i)``; labels ``y``) run as
    without adaptation clips (:func:`inference_model`); ties go to the smaller weight. ``{}`` for a model with no
    population statistics or no clips."""
    from .metrics import unweighted_accuracy
    from .model import infer

    if population_stats(meta) is None or model.config.norm not in ("speaker", "corpus") or not len(feats):
        return {}
    ua = {}
    for w in CLIP_WEIGHTS:
        net = inference_model(model, {**meta, CLIP_WEIGHT_KEY: w})
        logits, _ = infer(net, raw_inputs(net, feats), device=device)
        ua[w] = unweighted_accuracy(np.asarray(y), logits.argmax(1).numpy())
    best = max(CLIP_WEIGHTS, key=lambda w: (ua[w], -w))
    return {CLIP_WEIGHT_KEY: best, "clip_weight_val_ua": {f"{w:g}": round(v, 4) for w, v in ua.items()}}


def skewed_subset_versions(rows: Sequence, feats: Sequence[torch.Tensor], y: Sequence[int], mode: str, copies: int, *,
                           seed: int = 0, min_clips: int = 8, max_clips: int = 30) -> List[List[torch.Tensor]]:
    """``copies`` versions of each clip, standardised with statistics of a random, emotion-skewed subset of its group.

    At inference a speaker's statistics come from whatever clips the user
    has, rarely balanced across emotions: one emotion only shifts the mean
    (e.g. all angry: louder) and the model reads every clip of that speaker
    as shifted the other way. Training on these versions shows the model
    such statistics. For version ``k`` of group ``g`` (``group_keys(mode,
    ...)``): a dominant class drawn at random, a share ``p`` ~ U(1/n_classes,
    1) of the subset from it (the rest spread over the other classes), a
    subset size ~ U[min_clips, max_clips] (at most the group's clips), drawn
    from ``feats`` (raw dB, ``(3, n_mels, frames)``) by class; every clip of
    the group is then standardised with the subset's statistics. Depends only
    on ``(seed, group order, k)``. ``global``/``utterance`` modes have no
    group statistics: every clip gets no versions.
    """
    keys = group_keys(mode, [r.speaker for r in rows], [r.corpus for r in rows])
    out: List[List[torch.Tensor]] = [[] for _ in feats]
    if keys is None or mode == "utterance" or copies <= 0:
        return out
    labels = np.asarray(y)
    classes = sorted(set(labels.tolist()))
    members: Dict[Hashable, List[int]] = {}
    for i, g in enumerate(keys):
        members.setdefault(g, []).append(i)
    for gi, idx in enumerate(members.values()):
        rng = np.random.default_rng([seed, gi, 104729])
        by_class = {c: [i for i in idx if labels[i] == c] for c in classes}
        for _ in range(copies):
            subset = _skewed_subset(rng, by_class, classes, min(len(idx), int(rng.integers(min_clips, max_clips + 1))))
            stats = group_stats([feats[i] for i in subset])
            for i in idx:
                out[i].append(apply_stats(feats[i], stats))
    return out


def population_versions(feats: Sequence[torch.Tensor], mode: str) -> List[List[torch.Tensor]]:
    """One version of each clip standardised with the statistics of all of ``feats`` pooled.

    ``feats`` are the raw dB training clips ``(3, n_mels, frames_i)``; their
    pooled statistics are the ones :func:`population_meta` stores in the model
    file and :func:`inference_model` applies to a clip of a speaker the model
    has no other clips of. Training on these versions shows a ``speaker`` or
    ``corpus`` model inputs as it gets them then: with the speaker's (and
    microphone's) offsets left in. ``global``/``utterance``: no versions.
    """
    if mode not in ("speaker", "corpus") or not feats:
        return [[] for _ in feats]
    stats = group_stats(feats)
    return [[apply_stats(f, stats)] for f in feats]


def _skewed_subset(rng: np.random.Generator, by_class: Dict[int, List[int]], classes: List[int], size: int) -> List[int]:
    present = [c for c in classes if by_class[c]]
    top = present[int(rng.integers(len(present)))]
    share = rng.uniform(1.0 / len(classes), 1.0)
    want = {c: share * size if c == top else (1.0 - share) * size / max(1, len(present) - 1) for c in present}
    picked: List[int] = []
    for c in present:
        n = min(len(by_class[c]), int(round(want[c])))
        picked += rng.choice(by_class[c], n, replace=False).tolist() if n else []
    return picked or [by_class[top][0]]
