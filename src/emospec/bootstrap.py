"""Uncertainty: seeded percentile-bootstrap intervals and paired comparisons.

:func:`bootstrap_ci` gives 95 % intervals on UA, WA, macro-F1 and each class's
F1 (resampling items, or whole speakers with ``groups=``);
:func:`paired_bootstrap` compares two systems on the same items, and
:func:`paired_bootstrap_runs` compares several trainings (seeds) of each.
Every resample is scored from per-unit confusion matrices ``(units, K, K)``
reweighted by the draw, with :mod:`emospec.metrics`' definitions, so the
estimates equal :func:`emospec.metrics.report`'s.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from .metrics import METRICS, _codes, _from_confusion, _group_confusions

__all__ = ["bootstrap_ci", "paired_bootstrap", "paired_bootstrap_runs"]


def _resampled_confusions(units: np.ndarray, n_resamples: int, seed: int, chunk: int = 250):
    """Yield bootstrap confusion matrices ``(chunk, K, K)``: units drawn with replacement."""
    rng = np.random.default_rng(seed)
    g = units.shape[0]
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        draws = rng.integers(0, g, size=(b, g)) + np.arange(b)[:, None] * g
        weights = np.bincount(draws.ravel(), minlength=b * g).reshape(b, g).astype(np.float64)
        yield np.einsum("bg,gkl->bkl", weights, units)
        done += b


def _interval(samples: np.ndarray, estimate: float, confidence: float) -> Dict[str, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    finite = samples[np.isfinite(samples)]
    lo, hi = (np.percentile(finite, [tail, 100.0 - tail]) if finite.size else (np.nan, np.nan))
    return {"estimate": float(estimate), "low": float(lo), "high": float(hi)}


def _check_bootstrap_args(yt: np.ndarray, yp: np.ndarray, n_resamples: int, confidence: float, groups) -> None:
    if yt.shape != yp.shape or yt.ndim != 1 or yt.size == 0:
        raise ValueError(f"bootstrap: need two equal, non-empty 1-D label arrays, got {yt.shape} and {yp.shape}")
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap: need n_resamples >= 1 and 0 < confidence < 1, got {n_resamples}, {confidence}")
    if groups is not None and len(groups) != yt.size:
        raise ValueError(f"bootstrap: {len(groups)} groups for {yt.size} items")


def bootstrap_ci(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    labels: Sequence[str],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Optional[Sequence | np.ndarray] = None,
) -> Dict:
    """Percentile-bootstrap confidence intervals on UA, WA, macro-F1 and per-class F1.

    Parameters
    ----------
    y_true, y_pred
        Class indices into ``labels`` (ints) or label strings, shape ``(n,)``.
    labels
        Class names in index order.
    n_resamples
        Bootstrap resamples (1,000 by default).
    confidence
        Coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
    seed
        Seed of the resampling RNG: the same seed gives the same intervals.
    groups
        Optional ``(n,)`` cluster ids (e.g. speakers): whole clusters are
        resampled instead of items, which widens the interval when items of a
        cluster are correlated.

    Returns
    -------
    dict
        ``{"method", "unit", "n", "n_units", "n_resamples", "confidence", "seed",
        "ua"|"wa"|"macro_f1": {"estimate", "low", "high"},
        "f1": {class: {"estimate", "low", "high"}}}``; the estimates are the
        full-sample values (equal to :func:`report`'s).
    """
    labels = [str(c) for c in labels]
    yt, yp = _codes(y_true, labels), _codes(y_pred, labels)
    _check_bootstrap_args(yt, yp, n_resamples, confidence, groups)
    k = len(labels)
    units = _group_confusions(yt, yp, k, groups)
    point = _from_confusion(units.sum(0))
    boot = [_from_confusion(cm) for cm in _resampled_confusions(units, n_resamples, seed)]
    stats = {key: np.concatenate([b[key] for b in boot]) for key in (*METRICS, "f1")}
    out: Dict = {
        "method": "percentile bootstrap", "unit": "item" if groups is None else "group", "n": int(yt.size),
        "n_units": int(units.shape[0]), "n_resamples": int(n_resamples), "confidence": float(confidence), "seed": int(seed),
    }
    for key in METRICS:
        out[key] = _interval(stats[key], float(point[key]), confidence)
    out["f1"] = {c: _interval(stats["f1"][:, i], float(point["f1"][i]), confidence) for i, c in enumerate(labels)}
    return out


def paired_bootstrap(
    y_true: Sequence | np.ndarray,
    pred_a: Sequence | np.ndarray,
    pred_b: Sequence | np.ndarray,
    labels: Sequence[str],
    *,
    metric: str = "ua",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Optional[Sequence | np.ndarray] = None,
) -> Dict:
    """Paired bootstrap of ``metric(a) - metric(b)`` for two systems scored on the same items.

    Every resample draws the same items (or groups) for both systems, so
    item difficulty cancels out of the difference.

    Returns
    -------
    dict
        ``{"metric", "a", "b", "difference", "low", "high", "p_two_sided",
        "n", "n_resamples", "confidence", "seed", "unit"}``. ``p_two_sided`` is
        ``2 · min(P(d* <= 0), P(d* >= 0))`` over the resampled differences d*
        (capped at 1): small when the interval stays clear of zero.
    """
    out = paired_bootstrap_runs(y_true, [pred_a], [pred_b], labels, metric=metric, n_resamples=n_resamples,
                                confidence=confidence, seed=seed, groups=groups)
    return {k: v for k, v in out.items() if k not in ("runs_a", "runs_b", "resample_runs")}


def paired_bootstrap_runs(
    y_true: Sequence | np.ndarray,
    runs_a: Sequence[Sequence | np.ndarray],
    runs_b: Sequence[Sequence | np.ndarray],
    labels: Sequence[str],
    *,
    metric: str = "ua",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Optional[Sequence | np.ndarray] = None,
    resample_runs: bool = True,
) -> Dict:
    """:func:`paired_bootstrap` for several trainings (seeds) of each system: ``mean_r metric(a_r) - mean_r metric(b_r)``.

    ``runs_a`` and ``runs_b`` hold one ``(n,)`` prediction array per run, all on the items of ``y_true``. Every
    resample draws the items (or ``groups``) once for all runs of both systems and, with ``resample_runs``, draws
    each system's runs with replacement, so the interval covers which clips were tested *and* which seeds were
    trained. With r runs a system's resampled mean spreads by ``sqrt((r - 1) / r)`` of its seed spread (0.82 for
    three), so few runs still understate it. With one run each it is :func:`paired_bootstrap`.

    Returns
    -------
    dict
        :func:`paired_bootstrap`'s keys, ``a`` and ``b`` being the means over runs, plus ``runs_a`` / ``runs_b``
        (each run's metric on all items) and ``resample_runs``.
    """
    if metric not in METRICS:
        raise ValueError(f"paired bootstrap: metric must be one of {METRICS}, got {metric!r}")
    if not runs_a or not runs_b:
        raise ValueError("paired bootstrap: need at least one run of each system")
    labels = [str(c) for c in labels]
    yt, k = _codes(y_true, labels), len(labels)
    preds = [_codes(p, labels) for p in (*runs_a, *runs_b)]
    for p in preds:
        _check_bootstrap_args(yt, p, n_resamples, confidence, groups)
    ra = len(runs_a)
    units = np.concatenate([_group_confusions(yt, p, k, groups) for p in preds], axis=2)  # (units, K, K * runs)
    full = np.array([float(_from_confusion(units.sum(0)[:, i * k:(i + 1) * k])[metric]) for i in range(len(preds))])
    run_rng = np.random.default_rng([seed, 1])  # the items are drawn exactly as paired_bootstrap draws them
    diffs = []
    for cm in _resampled_confusions(units, n_resamples, seed):
        per_run = np.stack([_from_confusion(cm[:, :, i * k:(i + 1) * k])[metric] for i in range(len(preds))], axis=1)
        side_a, side_b = per_run[:, :ra], per_run[:, ra:]
        if resample_runs:  # each resample's runs of a side, drawn with replacement
            side_a = np.take_along_axis(side_a, run_rng.integers(0, ra, size=side_a.shape), 1)
            side_b = np.take_along_axis(side_b, run_rng.integers(0, side_b.shape[1], size=side_b.shape), 1)
        diffs.append(side_a.mean(1) - side_b.mean(1))
    d = np.concatenate(diffs)
    a, b = float(full[:ra].mean()), float(full[ra:].mean())
    ci = _interval(d, a - b, confidence)
    finite = d[np.isfinite(d)]
    p_value = min(1.0, 2.0 * min(np.mean(finite <= 0), np.mean(finite >= 0))) if finite.size else float("nan")
    return {"metric": metric, "a": a, "b": b, "runs_a": full[:ra].tolist(), "runs_b": full[ra:].tolist(),
            "difference": a - b, "low": ci["low"], "high": ci["high"], "p_two_sided": float(p_value), "n": int(yt.size),
            "n_resamples": int(n_resamples), "confidence": float(confidence), "seed": int(seed),
            "unit": "item" if groups is None else "group", "resample_runs": bool(resample_runs)}
