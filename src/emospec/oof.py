"""The per-clip record of an evaluation: ``oof_predictions.csv``, one row per tested clip.

Written by :func:`write_oof` at the end of every protocol, cross-corpus and
leave-one-corpus-out run; read by :func:`read_oof` (``benchmarks/compare_runs.py``
pairs two runs' columns on the same clips).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from .errors import DataError
from .files import atomic_write_bytes

__all__ = ["OOF_NAME", "SYSTEM_COLUMNS", "write_oof", "read_oof"]

OOF_NAME = "oof_predictions.csv"
"""Each evaluation's per-clip predictions (written by :func:`write_oof`, read by :func:`read_oof`)."""

SYSTEM_COLUMNS = ("model", "baseline", "unadapted", "fusion", "fusion_unadapted")
"""The systems whose label each row gives (empty where that system did not run on the clip)."""


def write_oof(path: Path, rows, tested, y, preds, labels, folds) -> None:
    """Write :data:`OOF_NAME`: one row per tested clip (path, corpus, speaker, fold, true label, then each of
    :data:`SYSTEM_COLUMNS`; ``preds[name]`` is ``(n,)`` int class indices, -1 where not run)."""
    import csv
    import io

    fold_of = {}
    for fold in folds:
        for i in fold.test:
            fold_of[int(i)] = fold.name
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "corpus", "speaker", "fold", "true", *SYSTEM_COLUMNS])
    for i in tested:
        cells = [labels[preds[k][i]] if k in preds and preds[k][i] >= 0 else "" for k in SYSTEM_COLUMNS]
        w.writerow([rows[i].path, rows[i].corpus, rows[i].speaker, fold_of[int(i)], labels[y[i]], *cells])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def read_oof(run_dir: str | Path) -> List[Dict[str, str]]:
    """The rows of ``run_dir/oof_predictions.csv``: ``path``, ``corpus``, ``speaker``, ``fold``, ``true`` and the
    systems' labels (:data:`SYSTEM_COLUMNS`; empty where not predicted that way, absent in files written before
    that system was).

    Raises
    ------
    DataError
        No such file: ``run_dir`` is not a finished evaluation.
    """
    import csv

    f = Path(run_dir) / OOF_NAME
    if not f.is_file():
        raise DataError(f"{f}: not found (is {run_dir} a finished emospec evaluate run?)")
    with f.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
