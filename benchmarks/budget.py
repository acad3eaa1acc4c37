"""Training-budget study: how long, how fast and on what schedule the default recipe must train.

Every row is the first attempt's best recipe (row ``bn+spk+floor@30`` of
``ablate.py``, the default before this study) with a different budget: epochs (optimiser steps), schedule, peak learning rate,
batch size, plus the regularisers whose verdicts depend on the budget. Each
row trains on RAVDESS four classes, the same 6 folds of whole actors as
``ablate.py`` (or a subset: ``--folds 0,1`` for a first look), beside the
eGeMAPS + SVM baseline on the same folds.

**Rows are chosen by validation UA only**: each fold's training side holds out
two whole actors for validation, and ``best val UA`` is the mean over folds of
the best validation UA those actors gave. Test-fold figures are reported, never
used to choose. Each row also shows whether it converged: the best epoch of
each fold against the budget, the final training loss, and the training-set
recall per class of the kept model on full training clips
(``convergence.json`` of each fold); the loss and UA curves of every fold
are plotted to ``runs/budget/<row>/ravdess/training_curves.png``.

    python benchmarks/budget.py                     # every row, all folds
    python benchmarks/budget.py --folds 0,1         # every row on folds 1-2 (the screening)
    python benchmarks/budget.py --rows e100,e200    # some rows
    python benchmarks/budget.py --table             # the table of finished rows
    python benchmarks/budget.py --cross e100        # RAVDESS <-> EMOVO at that budget (per-speaker standardisation)

Output: ``runs/budget/<row>/ravdess/`` (``emospec evaluate`` run directories,
resumable fold by fold; ``metrics_folds-0-1.json`` for a subset), ``runs/budget/table.md``
and ``table.json`` (``table_folds-0-1.*`` for a subset).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablate import BN_SPK_FLOOR, _cell, _corpus, finished, metrics_name, run_cross, select_rows  # noqa: E402  (the same corpus loading, file names, finished rows, table cells, cross-corpus runs)

BASE = ("paper", BN_SPK_FLOOR)
"""What every row changes: the first attempt's best recipe, row ``bn+spk+floor@30`` of ablate.py (the old default)."""

AUG = {"freq_masks": 2, "freq_mask_bins": 8, "time_masks": 2, "time_mask_frames": 20}
ROWS: List[Tuple[str, str, Dict[str, object]]] = [
    # (row name, change against the default recipe, overrides); every row but swa100 keeps the best validation epoch (no early stop)
    ("e30", "one-cycle, 30 epochs (the old default)", {"epochs": 30, "patience": 30}),
    ("e60", "one-cycle, 60 epochs", {"epochs": 60, "patience": 60}),
    ("e100", "one-cycle, 100 epochs", {"epochs": 100, "patience": 100}),
    ("e100-nopbn", "one-cycle, 100 epochs, BatchNorm statistics as training leaves them (no precise BN: the default before it)",
     {"epochs": 100, "patience": 100, "precise_bn": 0}),
    ("swa100", "one-cycle, 100 epochs, the weights of epochs 51-100 averaged (SWA) instead of the best validation epoch kept",
     {"epochs": 100, "patience": 100, "select": "swa", "swa_start": 0.5}),
    ("e200", "one-cycle, 200 epochs", {"epochs": 200, "patience": 200}),
    ("cos100", "cosine with 5 warm-up epochs, 100 epochs", {"epochs": 100, "patience": 100, "schedule": "cosine", "warmup_epochs": 5}),
    ("plateau100", "constant 1e-3, halved after 5 epochs without a better val UA, 100 epochs",
     {"epochs": 100, "patience": 100, "schedule": "plateau", "lr": 1e-3}),
    ("lr1e-3", "one-cycle peak lr 1e-3, 100 epochs", {"epochs": 100, "patience": 100, "lr": 1e-3}),
    ("lr4e-3", "one-cycle peak lr 4e-3, 100 epochs", {"epochs": 100, "patience": 100, "lr": 4e-3}),
    ("bs16", "batch 16 (twice the steps), 100 epochs", {"epochs": 100, "patience": 100, "batch_size": 16}),
    ("bs64", "batch 64 (half the steps), peak lr 4e-3, 100 epochs", {"epochs": 100, "patience": 100, "batch_size": 64, "lr": 4e-3}),
    ("mix100", "mixup alpha 0.2, 100 epochs", {"epochs": 100, "patience": 100, "mixup_alpha": 0.2}),
    ("aug100", "SpecAugment (2 x <= 8 bands, 2 x <= 20 frames), 100 epochs", {"epochs": 100, "patience": 100, **AUG}),
    ("mixaug150", "mixup 0.2 + SpecAugment, 150 epochs", {"epochs": 150, "patience": 150, "mixup_alpha": 0.2, **AUG}),
]
CHOSEN = "e100"
"""``RECIPES["default"]`` trains this way: the best mean validation-speaker UA on the screening folds among the rows
that do not lose cross-corpus UA against the old default (``mix100`` validated higher, then fell to 0.238 UA from
RAVDESS to EMOVO; see the README)."""


def run(rows, out: Path, folds: Optional[Sequence[int]], data_root=None) -> None:
    from emospec.files import save_json
    from emospec.plots import fold_curves
    from emospec.protocols import run_protocol
    from emospec.recipe import recipe_from

    memo: Dict = {}
    for name, desc, over in rows:
        rec = recipe_from(BASE[0], {**BASE[1], **over})
        d = out / name / "ravdess"
        t0 = time.time()
        data = _corpus("ravdess", rec.features, data_root, out, memo)
        res = run_protocol(data, "speaker", d, feature_config=rec.features, train_config=rec.train, model_config=rec.model,
                           progress=False, resume=True, plots=False, fold_subset=folds)
        summary = dict(res.summary, budget_row=[name, over], description=desc,
                       fold_subset=sorted(set(folds)) if folds is not None else None)
        save_json(d / metrics_name(folds), summary)
        histories = {f["name"]: json.loads((d / f["name"] / "history.json").read_text()) for f in summary["folds"]}
        fold_curves(histories, d / "training_curves.png", title=f"{name}: {desc}")
        print(f"{name}: " + _line(summary, d) + f" ({time.time() - t0:.0f} s)", flush=True)


def _stats(summary: Dict, d: Path) -> Dict:
    """Selection figure, convergence facts and test figures of one finished row (final loss from each fold's history,
    so rows run before the final loss became a median of the last epochs read the same way)."""
    from emospec.convergence import final_train_loss

    folds = summary["folds"]
    conv = [f.get("convergence") or {} for f in folds]
    labels = summary["labels"]
    recall = {c: [cv["train_recall_full"][c] for cv in conv if "train_recall_full" in cv] for c in labels}
    m = summary["model"]
    return {
        "n_folds": len(folds),
        "val_ua": sum(f["best_val_ua"] for f in folds) / len(folds),
        "best_epochs": [f"{cv.get('best_epoch')}/{cv.get('epochs_run')}" for cv in conv],
        "final_loss": sum(final_train_loss(json.loads((d / f["name"] / "history.json").read_text())) for f in folds) / len(folds),
        "train_recall": {c: (sum(v) / len(v) if v else float("nan")) for c, v in recall.items()},
        "warnings": sum(len(cv.get("warnings", [])) for cv in conv),
        "test_ua": m["ua"], "test_ci": [m["ci"]["ua"]["low"], m["ci"]["ua"]["high"]],
        "test_recall": {c: m["per_class"][c]["recall"] for c in labels} if "per_class" in m else {},
        "paired": summary.get("paired_ua"), "baseline_ua": summary.get("baseline", {}).get("ua"),
    }


def _line(summary: Dict, d: Path) -> str:
    s = _stats(summary, d)
    p = s["paired"] or {}
    return (f"val UA {s['val_ua']:.3f} | test UA {s['test_ua']:.3f} vs baseline {s['baseline_ua']:.3f}, "
            f"diff {p.get('difference', float('nan')):+.3f} | best epochs {' '.join(s['best_epochs'])}")


def table(rows, out: Path, folds: Optional[Sequence[int]] = None) -> str:
    lines = ["| row | change | folds | best val UA (chooses) | best epoch / run | final train loss | train recall n/h/a/s (full clips) "
             "| test UA [95% CI] | test sad recall | Δ vs baseline [95% CI] |", "|" + "---|" * 10]
    records = []
    for name, desc, over in rows:
        f = out / name / "ravdess" / metrics_name(folds)
        if not finished(f, [name, over], "budget_row"):
            continue  # not run, or run_protocol's own metrics.json of a screening (fold subset) run
        summary = json.loads(f.read_text())
        s = _stats(summary, f.parent)
        p = s["paired"] or {}
        tr = "/".join(f"{v:.2f}" for v in s["train_recall"].values())
        sad = s["test_recall"].get("sad", float("nan"))
        lines.append(f"| {name} | {desc} | {s['n_folds']} | {s['val_ua']:.3f} | {' '.join(s['best_epochs'])} | {s['final_loss']:.3f} "
                     f"| {tr} | {_cell(summary)} | {sad:.2f} | {p.get('difference', float('nan')):+.3f} "
                     f"[{p.get('low', float('nan')):+.3f}, {p.get('high', float('nan')):+.3f}] |")
        records.append({"row": name, "change": desc, "overrides": over, **s})
    text = "\n".join(lines)
    stem = "table" if folds is None else "table_" + metrics_name(folds)[len("metrics_"):-len(".json")]
    (out / f"{stem}.md").write_text(text + "\n")
    (out / f"{stem}.json").write_text(json.dumps(records, indent=1))
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", help="comma-separated row names (default: all)")
    ap.add_argument("--folds", help="comma-separated 0-based fold numbers (default: all 6)")
    ap.add_argument("--out", default="runs/budget")
    ap.add_argument("--data", help="folder holding the corpora (default: $EMOSPEC_DATA or ../shared/data)")
    ap.add_argument("--table", action="store_true", help="only print the table of finished rows")
    ap.add_argument("--cross", metavar="ROW", help="instead: cross-corpus RAVDESS <-> EMOVO with this row's budget "
                                                   "(per-speaker standardisation, model and baseline)")
    args = ap.parse_args(argv)
    rows = select_rows(ap, args.rows, ROWS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.cross:
        name, desc, over = select_rows(ap, args.cross, ROWS)[0]
        print(run_cross((name, desc, BASE[0], {**BASE[1], **over}), out, args.data, norms=("speaker",)))
        return 0
    folds = [int(j) for j in args.folds.split(",")] if args.folds else None
    if not args.table:
        run(rows, out, folds, args.data)
    print(table(ROWS, out, folds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
