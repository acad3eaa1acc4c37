"""Train/test splits: the paper's random 90/10 and honest speaker-independent ones.

The functions at the top take plain sequences (labels, speakers) and a seed
and return index arrays. :func:`make_folds` builds a whole protocol from
manifest rows:

* ``paper``: one stratified random 90/10 split (speakers on both sides; on
  IEMOCAP's 5,531 it gives 4,978 / 553);
* ``speaker``: speaker-independent k-fold, stratified group k-fold on the
  speaker (IEMOCAP on the session, so 5 folds = leave-one-session-out);
* ``loso``: leave-one-speaker-out;
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
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from ..config import load_json, save_json
from ..errors import ConfigError, DataError
from .iemocap import session_of
from .manifest import Utterance

__all__ = [
    "PROTOCOLS", "Fold", "paper_split", "speaker_holdout", "speaker_folds", "loso_folds", "check_disjoint",
    "groups_of", "make_folds", "save_folds", "load_folds", "row_key",
]

PROTOCOLS = ("paper", "speaker", "loso", "all")

Split = Tuple[np.ndarray, np.ndarray]


def paper_split(labels: Sequence[str], *, test_fraction: float = 0.1, seed: int = 0) -> Split:
    """Stratified random split (the paper's 90/10; speakers appear on both sides).

    Returns ``(train_idx, test_idx)`` int64 arrays; on 5,531 items with 0.1 this
    gives 4,978 / 553 (the test size is ``round(n · test_fraction)``, raised to
    one item per class for tiny sets).
    """
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


def speaker_folds(labels: Sequence[str], speakers: Sequence[str], *, k: int = 5, seed: int = 0) -> List[Split]:
    """Speaker-independent k-fold (stratified group k-fold on speaker).

    With exactly ``k`` speakers (groups) this is leave-one-group-out in sorted
    group order (IEMOCAP's five sessions give fold i = session i).
    """
    n_spk = len(set(speakers))
    if k < 2:
        raise DataError(f"speaker folds: need k >= 2, got {k}")
    if n_spk < k:
        raise DataError(f"speaker folds: {k} folds need at least {k} speakers, got {n_spk}")
    if n_spk == k:
        return loso_folds(speakers)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    idx = np.arange(len(labels))
    return [(np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)) for tr, te in cv.split(idx, list(labels), list(speakers))]


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


def make_folds(rows: Sequence[Utterance], protocol: str, *, k: int = 5, seed: int = 0,
               test_fraction: float = 0.1, test_speakers: Optional[int] = None) -> List[Fold]:
    """The folds of ``protocol`` (one of :data:`PROTOCOLS`) over ``rows`` (labels from ``label4``).

    With ``test_speakers=n``, ``speaker`` gives a single fold named
    ``holdout`` holding out ``n`` whole speakers (sessions for IEMOCAP),
    gender-balanced where genders are known, instead of k folds.

    Raises
    ------
    DataError
        For an unknown protocol, or rows without speakers under a
        speaker-independent protocol, or too few speakers for ``k`` folds.
    """
    labels = [r.label4 for r in rows]
    if protocol == "paper":
        tr, te = paper_split(labels, test_fraction=test_fraction, seed=seed)
        return [Fold("paper", tr, te, False)]
    if protocol == "all":
        return [Fold("all", np.arange(len(rows), dtype=np.int64), np.zeros(0, dtype=np.int64), False)]
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    nameless = sum(1 for r in rows if not r.speaker)
    if nameless:
        raise DataError(f"protocol {protocol}: {nameless} utterance(s) have no speaker; use --protocol paper "
                        f"or give speakers (manifest column 'speaker', or <label>/<speaker>/ folders)")
    groups = groups_of(rows) if protocol == "speaker" else [r.speaker for r in rows]
    if protocol == "speaker" and test_speakers:
        genders = [r.gender for r in rows] if groups == [r.speaker for r in rows] else None
        tr, te = speaker_holdout(groups, n_test=test_speakers, genders=genders, seed=seed)
        check_disjoint(groups, (tr, te))
        return [Fold("holdout", tr, te, True)]
    splits = speaker_folds(labels, groups, k=k, seed=seed) if protocol == "speaker" else loso_folds(groups)
    folds = []
    for i, (tr, te) in enumerate(splits, start=1):
        check_disjoint(groups, (tr, te))
        held = sorted({groups[j] for j in te})
        name = f"{protocol}_{held[0]}" if len(held) == 1 else f"fold{i}"
        folds.append(Fold(name, tr, te, True))
    return folds


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
