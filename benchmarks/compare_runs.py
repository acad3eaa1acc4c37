"""Paired comparison of two finished evaluations on the same clips: did recipe A beat recipe B?

Reads the ``oof_predictions.csv`` of two ``emospec evaluate`` run directories
(speaker folds, leave-one-corpus-out or cross-corpus), keeps the clips both
tested, and prints UA of each with the paired bootstrap of the difference
(:func:`emospec.metrics.paired_bootstrap`, clips resampled; ``--by speaker``
resamples whole speakers), overall and per corpus. The folds need not match:
each clip's prediction is the one made while it was held out.

    python benchmarks/compare_runs.py runs/budget-pbn/swa100/ravdess runs/budget-pbn/e100/ravdess
    python benchmarks/compare_runs.py A B --column unadapted   # another prediction column (both runs)
    python benchmarks/compare_runs.py A B --column-b baseline  # A's model against B's baseline (e.g. B trained on less data)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from emospec.data.labels import CLASSES4
from emospec.errors import DataError
from emospec.metrics import paired_bootstrap
from emospec.protocols import read_oof


def _oof(run: Path, column: str) -> Dict[str, Tuple[str, str, str, str]]:
    """path -> (corpus, speaker, true label, predicted label in ``column``) of one finished evaluation."""
    try:
        rows = read_oof(run)
    except DataError as e:
        raise SystemExit(str(e)) from e
    if rows and column not in rows[0]:
        raise SystemExit(f"{run / 'oof_predictions.csv'}: no column {column!r} (has {', '.join(rows[0])})")
    return {r["path"]: (r["corpus"], r["speaker"], r["true"], r[column]) for r in rows}


def compare(a: Path, b: Path, *, column: str = "model", column_b: Optional[str] = None, by: str = "clip",
            n_resamples: int = 1000) -> str:
    """The comparison table of runs ``a`` and ``b`` (``a - b``) on the clips both tested.

    ``a``'s predictions come from ``column``, ``b``'s from ``column_b`` (default: the same column).
    """
    column_b = column_b or column
    ra, rb = _oof(a, column), _oof(b, column_b)
    common = sorted(p for p in set(ra) & set(rb) if ra[p][3] and rb[p][3])  # an empty cell: not predicted that way
    if not common:
        raise SystemExit(f"{a} and {b} share no tested clips")
    lines = [f"A = {a}\nB = {b}\n{len(common)} clips in both ({len(ra)} in A, {len(rb)} in B); column {column!r}"
             + (f" of A, {column_b!r} of B" if column_b != column else "") + "; "
             f"paired bootstrap over {by}s\n",
             f"{'clips':<10}{'n':>6}  {'UA A':>6}  {'UA B':>6}  {'A - B [95% CI]':<28}recall A | B ({', '.join(CLASSES4)})"]
    corpora = sorted({ra[p][0] for p in common})
    for name, keep in [("all", common)] + ([(c, [p for p in common if ra[p][0] == c]) for c in corpora] if len(corpora) > 1 else []):
        y = [ra[p][2] for p in keep]
        labels = [c for c in CLASSES4 if c in y]
        pa, pb = [ra[p][3] for p in keep], [rb[p][3] for p in keep]
        groups = [ra[p][1] for p in keep] if by == "speaker" else None
        d = paired_bootstrap(y, pa, pb, labels, n_resamples=n_resamples, seed=0, groups=groups)
        ua = [d["a"], d["b"]]
        rec = [" ".join(f"{_recall(y, pred, c):.2f}" for c in labels) for pred in (pa, pb)]
        lines.append(f"{name:<10}{len(keep):>6}  {ua[0]:>6.3f}  {ua[1]:>6.3f}  "
                     f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]".ljust(62) + f"{rec[0]} | {rec[1]}")
    return "\n".join(lines)


def _recall(y: List[str], pred: List[str], c: str) -> float:
    hits = [p == c for t, p in zip(y, pred) if t == c]
    return sum(hits) / len(hits) if hits else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="run directory A (the candidate)")
    ap.add_argument("b", type=Path, help="run directory B (the reference)")
    ap.add_argument("--column", default="model", help="prediction column of oof_predictions.csv (model, unadapted, baseline)")
    ap.add_argument("--column-b", help="B's prediction column, when it differs from A's (e.g. --column-b baseline)")
    ap.add_argument("--by", choices=("clip", "speaker"), default="clip", help="resample clips (default) or whole speakers")
    args = ap.parse_args(argv)
    print(compare(args.a, args.b, column=args.column, column_b=args.column_b, by=args.by))
    return 0


if __name__ == "__main__":
    sys.exit(main())
