"""Metrics as pure functions over label arrays, returning JSON-able dicts.

:func:`report` gives the paper's Table 1 (per-class precision, recall, F1,
support; accuracy; macro and weighted averages, via scikit-learn) plus
unweighted accuracy (UA: mean per-class recall), weighted accuracy (WA:
overall accuracy), macro-F1 and the confusion matrix. :func:`format_report`
renders it as text; :func:`side_by_side` renders several reports in columns.

Uncertainty lives in :mod:`emospec.bootstrap` (intervals and paired
comparisons, computed from the confusion matrices that :func:`_from_confusion`
scores here); :func:`per_speaker` and :func:`fold_summary` break results
down; :func:`format_ci` / :func:`format_metrics` / :func:`format_comparison`
are the text forms (``UA 0.553 [0.512, 0.597]``).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

__all__ = [
    "report",
    "format_report",
    "side_by_side",
    "unweighted_accuracy",
    "weighted_accuracy",
    "per_speaker",
    "fold_summary",
    "format_ci",
    "format_metrics",
    "format_comparison",
]


def _codes(y: Sequence | np.ndarray, labels: Sequence[str]) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    index = {c: i for i, c in enumerate(labels)}
    return np.array([index[str(v)] for v in arr], dtype=np.int64)


def unweighted_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """UA: the mean of per-class recalls over the classes present in ``y_true``.

    Equals scikit-learn's ``balanced_accuracy_score`` (which warns when
    ``y_pred`` holds classes absent from ``y_true``; this does not).
    """
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    present = np.unique(yt)
    return float(np.mean([np.mean(yp[yt == c] == c) for c in present])) if present.size else float("nan")


def weighted_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """WA: the fraction of items classified correctly (overall accuracy)."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(yt == yp)) if yt.size else float("nan")


def report(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray, labels: Sequence[str]) -> Dict:
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

    def row(key: str) -> Dict[str, float]:
        """One row of scikit-learn's report (a class name, "macro avg" or "weighted avg")."""
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
        "per_class": {name: row(name) for name in labels},
        "accuracy": weighted_accuracy(yt, yp),
        "macro avg": row("macro avg"),
        "weighted avg": row("weighted avg"),
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
    if "ci" in rep:
        ci = rep["ci"]
        for key, name in (("ua", "UA (unweighted accuracy)"), ("wa", "WA (weighted accuracy)"), ("macro_f1", "macro-F1")):
            lines.append(f"{name:<26}{format_ci(ci[key]['estimate'], ci[key]['low'], ci[key]['high'])}")
        lines.append(f"({int(ci['confidence'] * 100)}% CI: percentile bootstrap, {ci['n_resamples']} resamples)")
    else:
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


# --------------------------------------------------------------------------- scores from confusion matrices
METRICS = ("ua", "wa", "macro_f1")
NAMES = {"ua": "UA", "wa": "WA", "macro_f1": "macro-F1"}


def _from_confusion(cm: np.ndarray) -> Dict[str, np.ndarray]:
    """UA, WA, macro-F1 and per-class F1 from confusion matrices ``(..., K, K)`` (rows true).

    Same definitions as :func:`report`: UA averages recall over the classes
    present (support > 0); F1 is ``2 tp / (support + predicted)``, 0 when both
    are 0 (scikit-learn's ``zero_division=0``); macro-F1 averages all K.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support, predicted = cm.sum(-1), cm.sum(-2)
    n = support.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
        present = (support > 0).sum(-1)
        ua = np.where(present > 0, np.nansum(recall, -1) / np.maximum(present, 1), np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1), 0.0)
        wa = np.where(n > 0, tp.sum(-1) / np.maximum(n, 1), np.nan)
    return {"ua": ua, "wa": wa, "macro_f1": f1.mean(-1), "f1": f1}


def _group_confusions(yt: np.ndarray, yp: np.ndarray, k: int, groups: Optional[Sequence | np.ndarray]) -> np.ndarray:
    """Per-unit confusion matrices ``(units, K, K)``: one per item, or one per group."""
    unit = np.arange(yt.size) if groups is None else np.unique(np.asarray(list(groups), dtype=str), return_inverse=True)[1]
    n_units = int(unit.max()) + 1 if unit.size else 0
    flat = np.bincount(unit * k * k + yt * k + yp, minlength=n_units * k * k)
    return flat.reshape(n_units, k, k).astype(np.float64)


def per_speaker(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray, speakers: Sequence[str] | np.ndarray,
                labels: Sequence[str]) -> Dict[str, Dict]:
    """Accuracy per speaker: ``{speaker: {"n", "wa", "ua"}}`` in sorted speaker order.

    ``ua`` averages recall over the classes that speaker has.
    """
    labels = [str(c) for c in labels]
    yt, yp = _codes(y_true, labels), _codes(y_pred, labels)
    spk = np.asarray([str(s) for s in speakers])
    if spk.size != yt.size:
        raise ValueError(f"per_speaker: {spk.size} speakers for {yt.size} items")
    units = _group_confusions(yt, yp, len(labels), spk)  # one confusion matrix per speaker, sorted
    scores = _from_confusion(units)
    return {s: {"n": int(units[i].sum()), "wa": float(scores["wa"][i]), "ua": float(scores["ua"][i])}
            for i, s in enumerate(sorted(set(spk.tolist())))}


def fold_summary(reports: Sequence[Mapping]) -> Dict[str, Dict]:
    """Mean ± std (sample std, ddof=1; 0 for one fold) of UA, WA and macro-F1 over fold reports."""
    out = {}
    for key in METRICS:
        v = np.array([float(r[key]) for r in reports], dtype=np.float64)
        out[key] = {"mean": float(v.mean()) if v.size else float("nan"),
                    "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "values": v.tolist()}
    return out


def format_ci(estimate: float, low: float, high: float, *, digits: int = 3) -> str:
    """``0.553 [0.512, 0.597]``."""
    f = f"{{:.{digits}f}}"
    return f"{f.format(estimate)} [{f.format(low)}, {f.format(high)}]"


def format_metrics(rep: Mapping, *, digits: int = 3) -> str:
    """One line: ``UA 0.553 [0.512, 0.597]   WA ...   macro-F1 ...`` (no brackets without ``rep["ci"]``)."""
    parts = []
    for key in METRICS:
        ci = rep.get("ci", {}).get(key)
        val = format_ci(ci["estimate"], ci["low"], ci["high"], digits=digits) if ci else f"{rep[key]:.{digits}f}"
        parts.append(f"{NAMES[key]} {val}")
    return "   ".join(parts)


def format_comparison(
    systems: Mapping[str, Mapping],
    *,
    chance: Optional[Mapping] = None,
    folds: Optional[Mapping[str, Mapping]] = None,
    paired: Optional[Mapping] = None,
    names: Sequence[str] = ("model", "baseline"),
) -> str:
    """Systems side by side: pooled UA/WA/macro-F1 with CIs, per-class F1 with CIs,
    the chance line, mean ± std over folds and the paired bootstrap.

    ``systems`` maps a display name to a report with ``"ci"`` (see
    :func:`emospec.bootstrap.bootstrap_ci`); ``folds`` maps the same names to :func:`fold_summary`.
    """
    width = max([len(s) for s in systems] + [len("chance (majority class)")]) + 2
    col = 24
    lines = [f"{'':<{width}}" + "".join(f"{NAMES[k]:<{col}}" for k in METRICS)]
    for name, rep in systems.items():
        ci = rep["ci"]
        lines.append(f"{name:<{width}}" + "".join(f"{format_ci(ci[k]['estimate'], ci[k]['low'], ci[k]['high']):<{col}}" for k in METRICS))
    if chance is not None:
        lines.append(f"{'chance (majority class)':<{width}}" + "".join(f"{chance[k]:<{col}.3f}" for k in METRICS))
    first = next(iter(systems.values()))
    classes = list(first["labels"])
    lines += ["", "per-class F1 [95% CI]", f"{'':<{width}}" + "".join(f"{c:<{col}}" for c in classes)]
    for name, rep in systems.items():
        f1 = rep["ci"]["f1"]
        lines.append(f"{name:<{width}}" + "".join(f"{format_ci(f1[c]['estimate'], f1[c]['low'], f1[c]['high']):<{col}}" for c in classes))
    if folds:
        n = len(next(iter(folds.values()))["ua"]["values"])
        lines += ["", f"mean ± std over {n} folds"]
        for name, fs in folds.items():
            lines.append(f"{name:<{width}}" + "".join(f"{fs[k]['mean']:.3f} ± {fs[k]['std']:.3f}".ljust(col) for k in METRICS))
    if paired is not None:
        a, b = names
        lines += ["", f"paired bootstrap, {NAMES[paired['metric']]}({a}) - {NAMES[paired['metric']]}({b}): "
                  f"{paired['difference']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}], "
                  f"p = {paired['p_two_sided']:.3f} (two-sided, {paired['n_resamples']} resamples of {paired['n']} items"
                  f"{'' if paired['unit'] == 'item' else ', by speaker'})"]
    ci = first["ci"]
    lines.append(f"intervals: {int(ci['confidence'] * 100)}% percentile bootstrap, {ci['n_resamples']} resamples "
                 f"of {'items' if ci['unit'] == 'item' else 'speakers'}, seed {ci['seed']}")
    return "\n".join(line.rstrip() for line in lines)
