"""Paired comparison of two finished evaluations on the same clips: did recipe A beat recipe B?

Reads the ``oof_predictions.csv`` of two ``emospec evaluate`` run directories
(speaker folds, leave-one-corpus-out or cross-corpus) — or one finished fold
folder of a run stopped early (its ``oof.json``) — keeps the clips both
tested, and prints UA of each with the paired bootstrap of the difference
(:func:`emospec.bootstrap.paired_bootstrap`, clips resampled; ``--by speaker``
resamples whole speakers), overall and per corpus. With several runs a side
(seeds of one recipe, ``--vs``) it compares their mean UAs and resamples the
runs too (:func:`emospec.bootstrap.paired_bootstrap_runs`): one training's
seed can move a held-out corpus's UA by 0.08 or more (README), more than most
recipe changes. The folds need not match:
each clip's prediction is the one made while it was held out.

    python benchmarks/compare_runs.py runs/budget-pbn/swa100/ravdess runs/budget-pbn/e100/ravdess
    python benchmarks/compare_runs.py A B --column unadapted   # another prediction column (both runs)
    python benchmarks/compare_runs.py A B --column-b baseline  # A's model against B's baseline (e.g. B trained on less data)
    python benchmarks/compare_runs.py A_s0 A_s1 A_s2 --vs B_s0 B_s1 B_s2   # several seeds a side: means, runs resampled too
    python benchmarks/compare_runs.py runs/A/ravdess/fold_01 runs/B/ravdess/fold_01   # one finished fold of each
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from emospec.bootstrap import paired_bootstrap_runs
from emospec.data.labels import CLASSES4
from emospec.errors import DataError
from emospec.oof import OOF_NAME, read_oof


def fold_rows(fold: Path) -> List[Dict[str, str]]:
    """:func:`emospec.oof.read_oof`'s rows for one finished fold folder (``oof.json``, ``predictions.csv``).

    An evaluation writes ``oof_predictions.csv`` only when all its folds are done; a run stopped after some folds
    still holds each finished fold's answers. ``corpus`` is empty (a fold folder does not record it).
    """
    import csv

    oof = json.loads((fold / "oof.json").read_text())
    with (fold / "predictions.csv").open(newline="", encoding="utf-8") as fh:
        preds = list(csv.DictReader(fh))
    labels = json.loads((fold / "labels.json").read_text())  # class names in index order
    if [labels[int(k)] for k in oof["model_pred"]] != [r["pred"] for r in preds]:
        raise SystemExit(f"{fold}: oof.json and predictions.csv disagree")
    base = (oof.get("baseline") or {}).get("pred")
    unadapted = oof.get("unadapted_pred")
    return [{"path": r["path"], "corpus": "", "speaker": r["speaker"], "fold": oof["name"], "true": r["true"], "model": r["pred"],
             "baseline": labels[int(base[i])] if base else "",
             "unadapted": labels[int(unadapted[i])] if unadapted and int(unadapted[i]) >= 0 else ""} for i, r in enumerate(preds)]


def _oof(run: Path, column: str) -> Dict[str, Tuple[str, str, str, str]]:
    """path -> (corpus, speaker, true label, predicted label in ``column``) of one finished evaluation or fold folder."""
    try:
        rows = fold_rows(run) if (run / "oof.json").is_file() and not (run / OOF_NAME).is_file() else read_oof(run)
    except DataError as e:
        raise SystemExit(str(e)) from e
    if rows and column not in rows[0]:
        raise SystemExit(f"{run / 'oof_predictions.csv'}: no column {column!r} (has {', '.join(rows[0])})")
    return {r["path"]: (r["corpus"], r["speaker"], r["true"], r[column]) for r in rows}


def compare(a: Path | Sequence[Path], b: Path | Sequence[Path], *, column: str = "model", column_b: Optional[str] = None,
            by: str = "clip", n_resamples: int = 1000) -> str:
    """The comparison table of runs ``a`` and ``b`` (``a - b``) on the clips every run tested.

    ``a`` and ``b`` are one run each or several (seeds of one recipe): with several, UA is each side's mean over
    its runs and the interval also resamples the runs (:func:`emospec.bootstrap.paired_bootstrap_runs`).
    ``a``'s predictions come from ``column``, ``b``'s from ``column_b`` (default: the same column).
    """
    column_b = column_b or column
    runs_a, runs_b = ([a] if isinstance(a, Path) else list(a)), ([b] if isinstance(b, Path) else list(b))
    oof_a, oof_b = [_oof(r, column) for r in runs_a], [_oof(r, column_b) for r in runs_b]
    every = oof_a + oof_b
    common = sorted(p for p in set.intersection(*(set(o) for o in every)) if all(o[p][3] for o in every))  # empty: not predicted
    if not common:
        raise SystemExit(f"{', '.join(map(str, runs_a + runs_b))}: no clip tested by every run")
    ra, rb = oof_a[0], oof_b[0]
    name_a, name_b = (str(r[0]) if len(r) == 1 else f"{len(r)} runs: " + ", ".join(map(str, r)) for r in (runs_a, runs_b))
    sizes = [len(o) for o in every]
    counts = (f"({len(ra)} in A, {len(rb)} in B)" if len(every) == 2 else
              f"({min(sizes)} a run)" if min(sizes) == max(sizes) else f"(of {min(sizes)}-{max(sizes)} a run)")
    several = len(every) > 2
    lines = [f"A = {name_a}\nB = {name_b}\n{len(common)} clips in {'both' if not several else 'every run'} {counts}; column {column!r}"
             + (f" of A, {column_b!r} of B" if column_b != column else "") + "; "
             f"paired bootstrap over {by}s" + (" and runs" if several else "") + "\n",
             f"{'clips':<10}{'n':>6}  {'UA A':>6}  {'UA B':>6}  {'A - B [95% CI]':<28}recall A | B ({', '.join(CLASSES4)})"
             + ("; means over runs" if several else "")]
    corpora = sorted({ra[p][0] for p in common})
    per_run = []
    for name, keep in [("all", common)] + ([(c, [p for p in common if ra[p][0] == c]) for c in corpora] if len(corpora) > 1 else []):
        y = [ra[p][2] for p in keep]
        labels = [c for c in CLASSES4 if c in y]
        pa, pb = [[o[p][3] for p in keep] for o in oof_a], [[o[p][3] for p in keep] for o in oof_b]
        groups = [ra[p][1] for p in keep] if by == "speaker" else None
        d = paired_bootstrap_runs(y, pa, pb, labels, n_resamples=n_resamples, seed=0, groups=groups)
        rec = [" ".join(f"{np.mean([_recall(y, pred, c) for pred in side]):.2f}" for c in labels) for side in (pa, pb)]
        lines.append(f"{name:<10}{len(keep):>6}  {d['a']:>6.3f}  {d['b']:>6.3f}  "
                     f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]".ljust(62) + f"{rec[0]} | {rec[1]}")
        per_run.append(f"{name:<10}A " + " ".join(f"{v:.3f}" for v in d["runs_a"]) + " | B " + " ".join(f"{v:.3f}" for v in d["runs_b"]))
    if several:
        lines += ["", "UA of each run (A | B, in the order given)", *per_run]
    return "\n".join(lines)


def _recall(y: List[str], pred: List[str], c: str) -> float:
    hits = [p == c for t, p in zip(y, pred) if t == c]
    return sum(hits) / len(hits) if hits else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+", help="A B (two run directories), or A's runs (seeds) when --vs is given")
    ap.add_argument("--vs", type=Path, nargs="+", help="B's runs (seeds of the reference recipe); the positionals are then A's")
    ap.add_argument("--column", default="model", help="prediction column of oof_predictions.csv (model, unadapted, baseline)")
    ap.add_argument("--column-b", help="B's prediction column, when it differs from A's (e.g. --column-b baseline)")
    ap.add_argument("--by", choices=("clip", "speaker"), default="clip", help="resample clips (default) or whole speakers")
    args = ap.parse_intermixed_args(argv)
    if args.vs is None and len(args.runs) != 2:
        ap.error("give two run directories A B, or A's runs followed by --vs and B's runs")
    a, b = (args.runs, args.vs) if args.vs is not None else (args.runs[0], args.runs[1])
    print(compare(a, b, column=args.column, column_b=args.column_b, by=args.by))
    return 0


if __name__ == "__main__":
    sys.exit(main())
