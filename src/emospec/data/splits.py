"""Train/test splits: the one fold builder, used by ``emospec train``, ``emospec evaluate`` and the scripts.

The functions at the top take plain sequences (labels, speakers) and a seed
and return index arrays. :func:`make_folds` builds a whole protocol from
manifest rows (one of :data:`PROTOCOLS`):

* ``speaker``: k folds of whole speakers (IEMOCAP: of whole sessions), each
  balanced by gender (:func:`speaker_kfold`); k = 6 by default (RAVDESS's 24
  actors give 4 per fold, IEMOCAP's 5 sessions one per fold);
* ``loso``: leave one speaker out;
* ``paper``: the paper's stratified random 90/10 split, speakers on both
  sides (``folds=1``; on IEMOCAP's 5,531 it gives 4,978 / 553), or a
  stratified k-fold of such splits (10 by default, so every clip is tested once);
* ``all``: every row trains (no test side), for shipping a model.

:func:`save_folds` writes them as JSON (utterances named ``corpus:utterance_id``)
beside a run, and :func:`load_folds` maps such a file, or a run's
``split.json``, back onto a manifest, so a split is reused exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Collection, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, DataError
from ..files import load_json, save_json
from .iemocap import session_of
from .manifest import Utterance

__all__ = [
    "PROTOCOLS", "Fold", "paper_split", "speaker_holdout", "speaker_kfold", "loso_folds", "check_disjoint",
    "groups_of", "make_folds", "save_folds", "load_folds", "row_key",
]

PROTOCOLS = ("speaker", "loso", "paper", "all")
"""The protocols :func:`make_folds` builds (``emospec evaluate`` takes all but ``all``, which tests nothing)."""

Split = Tuple[np.ndarray, np.ndarray]


def paper_split(labels: Sequence[str], *, test_fraction: float = 0.1, seed: int = 0) -> Split:
    """Stratified random split (the paper's 90/10; speakers appear on both sides).

    Returns ``(train_idx, test_idx)`` int64 arrays; on 5,531 items with 0.1 this
    gives 4,978 / 553 (the test size is ``round(n · test_fraction)``, raised to
    one item per class for tiny sets).
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    if len(idx) < 2:
        raise DataError(f"paper split: need at least 2 items, got {len(idx)}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"paper split: test fraction must be in (0, 1), got {test_fraction}")
    n_cls = len(set(labels))
    # at least one test item per class, and at least one training item per class
    n_test = min(len(idx) - n_cls, max(n_cls, int(round(len(idx) * test_fraction))))
    try:
        tr, te = train_test_split(idx, test_size=n_test, random_state=seed, stratify=list(labels))
    except ValueError as e:
        raise DataError(f"paper split: cannot stratify {len(idx)} items into {n_test} test items ({e})") from e
    return np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)


def speaker_holdout(
    speakers: Sequence[str],
    *,
    n_test: int = 4,
    genders: Optional[Sequence[str]] = None,
    seed: int = 0,
) -> Split:
    """Hold out ``n_test`` whole speakers (balanced by gender when ``genders`` is given).

    Returns ``(train_idx, test_idx)``; no speaker is on both sides.
    """
    spk = np.asarray(list(speakers))
    uniq = sorted(set(spk.tolist()))
    if len(uniq) <= n_test:
        raise DataError(f"speaker holdout: need more than {n_test} speakers, got {len(uniq)}")
    rng = np.random.default_rng(seed)
    if genders is not None:
        g_of = {s: g for s, g in zip(spk.tolist(), genders)}
        groups: Dict[str, List[str]] = {}
        for s in uniq:
            groups.setdefault(g_of.get(s, ""), []).append(s)
        chosen: List[str] = []
        keys = sorted(groups)
        for i in range(n_test):
            pool = [s for s in groups[keys[i % len(keys)]] if s not in chosen] or [s for s in uniq if s not in chosen]
            chosen.append(pool[int(rng.integers(len(pool)))])
    else:
        chosen = list(rng.choice(uniq, size=n_test, replace=False))
    test = np.isin(spk, chosen)
    return np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)


def speaker_kfold(speakers: Sequence[str], genders: Optional[Sequence[str]], k: int, *, seed: int = 0) -> List[Split]:
    """k folds of whole speakers, balanced by gender.

    Speakers are shuffled within each gender (``genders[i]`` of item ``i``;
    ``None``: one group), listed gender after gender and dealt round-robin:
    24 RAVDESS actors, k=6 give 2 F + 2 M a fold. Returns ``k`` pairs of
    sorted int64 ``(train_idx, test_idx)``; every item is tested once.
    """
    spk = np.asarray([str(s) for s in speakers])
    uniq = sorted(set(spk.tolist()))
    if not 2 <= k <= len(uniq):
        raise DataError(f"speaker folds: need 2 <= folds <= {len(uniq)} (the number of speakers), got {k}")
    gender = dict(zip(spk.tolist(), genders if genders is not None else [""] * len(spk)))
    rng = np.random.default_rng(seed)
    order: List[str] = []
    for g in sorted({gender[s] for s in uniq}):
        group = [s for s in uniq if gender[s] == g]
        order += [group[i] for i in rng.permutation(len(group))]
    fold_of = {s: i % k for i, s in enumerate(order)}
    f = np.array([fold_of[s] for s in spk.tolist()])
    return [(np.flatnonzero(f != j).astype(np.int64), np.flatnonzero(f == j).astype(np.int64)) for j in range(k)]


def loso_folds(speakers: Sequence[str]) -> List[Split]:
    """Leave-one-speaker-out: one fold per speaker, in sorted speaker order."""
    spk = np.asarray(list(speakers))
    uniq = sorted(set(spk.tolist()))
    if len(uniq) < 2:
        raise DataError(f"LOSO: need at least 2 speakers, got {len(uniq)}")
    return [(np.flatnonzero(spk != s).astype(np.int64), np.flatnonzero(spk == s).astype(np.int64)) for s in uniq]


def check_disjoint(speakers: Sequence[str], split: Split) -> None:
    """Raise :class:`DataError` if any speaker is on both sides of ``split``."""
    spk = np.asarray(list(speakers))
    both = set(spk[split[0]].tolist()) & set(spk[split[1]].tolist())
    if both:
        raise DataError(f"split is not speaker-independent: {sorted(both)} on both sides")


@dataclass(frozen=True)
class Fold:
    """One train/test split of a manifest: ``train``/``test`` are int64 row indices."""

    name: str
    train: np.ndarray
    test: np.ndarray
    speaker_independent: bool


def row_key(r: Utterance) -> str:
    """``'ravdess:03-01-05-01-01-01-12'``: how split files name an utterance."""
    return f"{r.corpus}:{r.utterance_id}"


def groups_of(rows: Sequence[Utterance]) -> List[str]:
    """The unit kept on one side of a speaker-independent split: the speaker, or the session for IEMOCAP."""
    return [session_of(r.speaker) if r.corpus == "iemocap" else r.speaker for r in rows]


def make_folds(protocol: str, rows: Sequence[Utterance], *, folds: Optional[int] = None, seed: int = 0,
               test_fraction: float = 0.1, test_speakers: Optional[int] = None) -> List[Fold]:
    """The folds of ``protocol`` (one of :data:`PROTOCOLS`) over ``rows`` (labels from ``label4``).

    Parameters
    ----------
    protocol
        ``speaker``: ``folds`` folds of whole speakers (IEMOCAP: sessions) from
        :func:`speaker_kfold`, named ``fold_01``...; ``folds=None`` gives
        ``min(6, speakers)``. ``loso``: one fold per speaker, ``loso_<speaker>``
        (``folds`` must be None). ``paper``: ``folds=1`` is one stratified
        random split with ``test_fraction`` of the rows tested (named
        ``paper_90_10`` for 0.1), ``folds=k`` a stratified k-fold named
        ``fold_01``... (``None``: 10). ``all``: one fold ``all`` training on
        every row, testing none.
    seed
        The same seed gives the same folds (``emospec train`` and
        ``emospec evaluate`` pass the training seed).
    test_speakers
        ``speaker`` only: one fold named ``holdout`` holding out this many
        whole speakers (sessions), gender-balanced where genders are known,
        instead of k folds.

    Raises
    ------
    ConfigError
        For an unknown protocol, or ``folds`` that do not apply.
    DataError
        For rows without speakers under ``speaker``/``loso``, or too few
        speakers for ``folds``.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol == "all":
        return [Fold("all", np.arange(len(rows), dtype=np.int64), np.zeros(0, dtype=np.int64), False)]
    if protocol == "paper":
        return _paper_folds([r.label4 for r in rows], folds=folds, seed=seed, test_fraction=test_fraction)
    nameless = sum(1 for r in rows if not r.speaker)
    if nameless:
        raise DataError(f"protocol {protocol}: {nameless} utterance(s) have no speaker; use --protocol paper "
                        f"or give speakers (manifest column 'speaker', or <label>/<speaker>/ folders)")
    if protocol == "loso":
        if folds is not None:
            raise ConfigError("--folds does not apply to --protocol loso (one fold per speaker)")
        return [Fold(f"loso_{rows[te[0]].speaker}", tr, te, True) for tr, te in loso_folds([r.speaker for r in rows])]
    groups = groups_of(rows)
    genders = [r.gender for r in rows] if groups == [r.speaker for r in rows] else None
    if test_speakers:
        tr, te = speaker_holdout(groups, n_test=test_speakers, genders=genders, seed=seed)
        check_disjoint(groups, (tr, te))
        return [Fold("holdout", tr, te, True)]
    k = folds or min(6, len(set(groups)))
    return [Fold(f"fold_{j + 1:02d}", tr, te, True) for j, (tr, te) in enumerate(speaker_kfold(groups, genders, k, seed=seed))]


def _paper_folds(labels: Sequence[str], *, folds: Optional[int], seed: int, test_fraction: float) -> List[Fold]:
    """``paper``: one stratified random split (``folds=1``) or a stratified k-fold (``None``: 10)."""
    from sklearn.model_selection import StratifiedKFold

    k = 10 if folds is None else folds
    if k == 1:
        tr, te = paper_split(labels, test_fraction=test_fraction, seed=seed)
        pct = int(round(100 * test_fraction))
        return [Fold(f"paper_{100 - pct}_{pct}", tr, te, False)]
    if k < 2:
        raise ConfigError(f"--folds must be >= 1, got {k}")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [Fold(f"fold_{j + 1:02d}", np.sort(tr), np.sort(te), False)
            for j, (tr, te) in enumerate(skf.split(np.zeros(len(labels)), list(labels)))]


def save_folds(path: str | os.PathLike, rows: Sequence[Utterance], folds: Sequence[Fold], **meta) -> None:
    """Write ``folds`` as JSON (atomically): ``{..meta, "folds": [{name, speaker_independent, train, test, test_speakers}]}``."""
    save_json(path, {**meta, "folds": [{
        "name": f.name, "speaker_independent": f.speaker_independent,
        "test_speakers": sorted({rows[i].speaker for i in f.test}),
        "train": [row_key(rows[i]) for i in f.train], "test": [row_key(rows[i]) for i in f.test],
    } for f in folds]})


def _indices(names: Sequence[str], lookup: Dict[str, int], path, side: str, ignore: Collection[str]) -> np.ndarray:
    names = [n for n in names if n not in ignore]
    missing = [n for n in names if n not in lookup]
    if missing:
        raise DataError(f"{path}: {len(missing)} {side} utterance(s) of the split are not in this manifest, "
                        f"first {missing[0]!r}")
    return np.array(sorted(lookup[n] for n in names), dtype=np.int64)


def load_folds(path: str | os.PathLike, rows: Sequence[Utterance], *, ignore: Collection[str] = ()) -> List[Fold]:
    """Folds saved by :func:`save_folds` (or a run's ``split.json``), as indices into ``rows``.

    A run's ``split.json`` names utterances by id alone and becomes one fold
    whose training side is its train + val lists. Names in ``ignore`` (e.g.
    clips whose audio failed this time) are dropped silently.

    Raises
    ------
    DataError
        If the file is unreadable, or names utterances that ``rows`` lacks.
    """
    try:
        data = load_json(path)
    except ConfigError as e:
        raise DataError(str(e)) from e
    by_key = {row_key(r): i for i, r in enumerate(rows)}
    if isinstance(data, dict) and isinstance(data.get("folds"), list):
        return [Fold(str(f.get("name", f"fold{n}")), _indices(f.get("train", []), by_key, path, "train", ignore),
                     _indices(f.get("test", []), by_key, path, "test", ignore), bool(f.get("speaker_independent", False)))
                for n, f in enumerate(data["folds"], start=1)]
    if isinstance(data, dict) and {"train", "test"} <= set(data):
        by_id = {r.utterance_id: i for i, r in enumerate(rows)}
        if len(by_id) != len(rows):
            raise DataError(f"{path}: names utterances by id alone, but the manifest repeats ids across corpora")
        skip = {k.split(":", 1)[-1] for k in ignore}
        train = list(data["train"]) + list(data.get("val", []))
        return [Fold(str(data.get("name", "split")), _indices(train, by_id, path, "train", skip),
                     _indices(data["test"], by_id, path, "test", skip), bool(data.get("speaker_independent", False)))]
    raise DataError(f"{path}: not a split file (expected a 'folds' list, or 'train' and 'test' lists)")
