"""Metrics as pure functions over label arrays, returning JSON-able dicts.

:func:`report` gives the paper's Table 1 (per-class precision, recall, F1,
support; accuracy; macro and weighted averages, via scikit-learn) plus
unweighted accuracy (UA: mean per-class recall), weighted accuracy (WA:
overall accuracy), macro-F1 and the confusion matrix. :func:`format_report`
renders it as text; :func:`side_by_side` renders several reports in columns.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

__all__ = ["report", "format_report", "side_by_side", "unweighted_accuracy", "weighted_accuracy"]


def _codes(y: Sequence, labels: Sequence[str]) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    index = {c: i for i, c in enumerate(labels)}
    return np.array([index[str(v)] for v in arr], dtype=np.int64)


def unweighted_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """UA: the mean of per-class recalls over the classes present in ``y_true``.

    Equals scikit-learn's ``balanced_accuracy_score`` (which warns when
    ``y_pred`` holds classes absent from ``y_true``; this does not).
    """
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    present = np.unique(yt)
    return float(np.mean([np.mean(yp[yt == c] == c) for c in present])) if present.size else float("nan")


def weighted_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """WA: the fraction of items classified correctly (overall accuracy)."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(yt == yp)) if yt.size else float("nan")


def report(y_true: Sequence, y_pred: Sequence, labels: Sequence[str]) -> Dict:
    """The Table-1 report and summary metrics.

    Parameters
    ----------
    y_true, y_pred
        Class indices into ``labels`` (ints) or label strings, shape ``(n,)``.
    labels
        Class names in index order.

    Returns
    -------
    dict
        ``{"labels", "n", "per_class": {name: {precision, recall, f1, support}},
        "accuracy", "macro avg", "weighted avg", "ua", "wa", "macro_f1",
        "confusion": [[...]] (rows true, columns predicted)}``.
    """
    labels = [str(c) for c in labels]
    yt, yp = _codes(y_true, labels), _codes(y_pred, labels)
    ids = list(range(len(labels)))
    rep = classification_report(yt, yp, labels=ids, target_names=labels, output_dict=True, zero_division=0)
    per_class = {
        name: {
            "precision": float(rep[name]["precision"]),
            "recall": float(rep[name]["recall"]),
            "f1": float(rep[name]["f1-score"]),
            "support": int(rep[name]["support"]),
        }
        for name in labels
    }

    def avg(key: str) -> Dict[str, float]:
        return {
            "precision": float(rep[key]["precision"]),
            "recall": float(rep[key]["recall"]),
            "f1": float(rep[key]["f1-score"]),
            "support": int(rep[key]["support"]),
        }

    ua = unweighted_accuracy(yt, yp)
    return {
        "labels": labels,
        "n": int(yt.size),
        "per_class": per_class,
        "accuracy": weighted_accuracy(yt, yp),
        "macro avg": avg("macro avg"),
        "weighted avg": avg("weighted avg"),
        "ua": ua,
        "wa": weighted_accuracy(yt, yp),
        "macro_f1": float(rep["macro avg"]["f1-score"]),
        "confusion": confusion_matrix(yt, yp, labels=ids).tolist(),
    }


def format_report(rep: Mapping, *, title: str = "", digits: int = 2) -> str:
    """Render :func:`report`'s dict as the paper's Table 1, then UA/WA and the confusion matrix."""
    labels = list(rep["labels"])
    width = max(12, max(len(c) for c in labels) + 2)
    f = f"{{:.{digits}f}}"
    lines = [title] if title else []
    lines.append(f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}")
    lines.append("")
    for c in labels:
        r = rep["per_class"][c]
        lines.append(f"{c:>{width}} {f.format(r['precision']):>9} {f.format(r['recall']):>9} {f.format(r['f1']):>9} {r['support']:>9}")
    lines.append("")
    lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} {f.format(rep['accuracy']):>9} {rep['n']:>9}")
    for key in ("macro avg", "weighted avg"):
        r = rep[key]
        lines.append(f"{key:>{width}} {f.format(r['precision']):>9} {f.format(r['recall']):>9} {f.format(r['f1']):>9} {r['support']:>9}")
    lines.append("")
    lines.append(f"UA (unweighted accuracy) {rep['ua']:.3f}   WA (weighted accuracy) {rep['wa']:.3f}   macro-F1 {rep['macro_f1']:.3f}")
    lines.append("confusion matrix (rows: true, columns: predicted)")
    cw = max(8, max(len(c) for c in labels) + 1)
    lines.append(" " * width + "".join(f"{c[:cw-1]:>{cw}}" for c in labels))
    for c, row in zip(labels, rep["confusion"]):
        lines.append(f"{c:>{width}}" + "".join(f"{v:>{cw}}" for v in row))
    return "\n".join(lines)


def side_by_side(blocks: Mapping[str, str], *, gap: int = 4) -> str:
    """Place several text blocks in columns under their titles (keys)."""
    cols: List[List[str]] = [[k, "-" * len(k)] + v.splitlines() for k, v in blocks.items()]
    widths = [max(len(x) for x in c) for c in cols]
    height = max(len(c) for c in cols)
    out = []
    for i in range(height):
        out.append((" " * gap).join((c[i] if i < len(c) else "").ljust(w) for c, w in zip(cols, widths)).rstrip())
    return "\n".join(out)
