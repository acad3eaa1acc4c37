"""Train/test splits: the paper's random 90/10 and honest speaker-independent ones.

All functions take plain sequences (labels, speakers) and a seed, and return
index arrays, so a split can be saved as JSON and reused.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from ..errors import DataError

__all__ = ["paper_split", "speaker_holdout", "speaker_folds", "loso_folds", "check_disjoint"]

Split = Tuple[np.ndarray, np.ndarray]


def paper_split(labels: Sequence[str], *, test_fraction: float = 0.1, seed: int = 0) -> Split:
    """Stratified random split (the paper's 90/10; speakers appear on both sides).

    Returns ``(train_idx, test_idx)`` int64 arrays; on 5,531 items with 0.1 this
    gives 4,978 / 553 (the test size is ``ceil(n · test_fraction)``).
    """
    idx = np.arange(len(labels))
    if len(idx) < 2:
        raise DataError(f"paper split: need at least 2 items, got {len(idx)}")
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=list(labels))
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
    """Speaker-independent k-fold (stratified group k-fold on speaker)."""
    n_spk = len(set(speakers))
    if n_spk < k:
        raise DataError(f"speaker folds: {k} folds need at least {k} speakers, got {n_spk}")
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
