"""One entry point for every corpus loader: ``prepare_corpus(name, root)``."""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from ..errors import DataError
from . import emovo, ravdess
from .manifest import Utterance

__all__ = ["LOADERS", "prepare_corpus", "four_class"]

Loader = Callable[..., Tuple[List[Utterance], List[str]]]

LOADERS: Dict[str, Loader] = {
    "ravdess": ravdess.prepare,
    "emovo": emovo.prepare,
}


def prepare_corpus(name: str, root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Tuple[List[Utterance], List[str]]:
    """Scan corpus ``name`` at ``root``: ``(rows, problems)`` (one line per skipped item)."""
    key = name.lower()
    if key not in LOADERS:
        raise DataError(f"unknown corpus {name!r}; known: {', '.join(sorted(LOADERS))}")
    return LOADERS[key](root, mapping=mapping)


def four_class(rows: List[Utterance], classes: Tuple[str, ...]) -> List[Utterance]:
    """Rows whose ``label4`` is one of ``classes``; a DataError if fewer than two classes remain."""
    kept = [r for r in rows if r.label4 in classes]
    present = sorted({r.label4 for r in kept})
    if not kept:
        raise DataError(f"no utterances with a label in {list(classes)}")
    if len(present) < 2:
        raise DataError(f"only one class ({present[0]}) among {len(kept)} utterances; need at least 2")
    return kept
