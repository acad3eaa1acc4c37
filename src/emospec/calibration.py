"""Calibrated probabilities: temperature scaling and the figures that judge it.

A network trained to a training loss near zero says 0.99 for almost every
clip, right or wrong. Temperature scaling (Guo et al., "On Calibration of
Modern Neural Networks", ICML 2017) divides the logits by one scalar ``T``
chosen to minimise the negative log-likelihood of held-out clips — in
:func:`emospec.train.fit` the validation speakers', never the test fold's.
Dividing by ``T > 0`` keeps every argmax, so accuracy and every UA figure stay
as they were; only the probabilities change. The model carries ``T`` as its
``temperature`` buffer (:meth:`emospec.model.EmoAlexNet.probabilities`), so the
Python API, the CLI, the REST API and the ONNX graph all use it.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["T_RANGE", "fit_temperature", "fittable", "format_calibration", "nll", "expected_calibration_error", "calibration_summary"]

T_RANGE = (0.05, 1000.0)
"""The temperatures :func:`fit_temperature` searches (log-uniform bounds). The upper one was 20 until session
24: models trained to convergence without adaptation clips reached it with their probabilities still far
above their accuracy (logits in the hundreds); 1000 leaves near-uniform probabilities reachable."""


def nll(logits: torch.Tensor | np.ndarray, y: Sequence[int] | np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of classes ``y`` under ``softmax(logits / temperature)``.

    ``logits``: ``(n, n_classes)``; ``y``: ``(n,)`` class indices.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64) / float(temperature)
    return float(F.cross_entropy(z, torch.as_tensor(np.asarray(y), dtype=torch.int64)))


def fit_temperature(logits: torch.Tensor | np.ndarray, y: Sequence[int] | np.ndarray) -> float:
    """The temperature ``T`` in :data:`T_RANGE` minimising :func:`nll` of ``y`` (``(n,)``) under ``logits / T``.

    ``logits``: ``(n, n_classes)`` float, uncalibrated. The NLL of ``logits / T`` is convex in ``1 / T``
    (so it has one minimum along ``log T``), and a bounded scalar search finds it. Returns 1.0 when it cannot be fitted (:func:`fittable`).
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if not fittable(z, y):
        return 1.0
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    res = minimize_scalar(lambda log_t: nll(z, y, float(np.exp(log_t))), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def fittable(logits: torch.Tensor | np.ndarray, y: Sequence[int] | np.ndarray) -> bool:
    """Whether a temperature can be fitted to ``logits`` ``(n, n_classes)`` for ``y``: some top classes right and
    some wrong. When every one is right the likelihood only grows as ``T`` falls to 0 (every answer made
    certain); when every one is wrong the fit could only learn how to spread probability over wrong answers.
    Neither says how often the top class is right."""
    z = np.asarray(logits)
    right = z.argmax(1) == np.asarray(y) if len(z) else np.zeros(0, dtype=bool)
    return bool(right.any() and not right.all())


def expected_calibration_error(probs: np.ndarray, y: Sequence[int] | np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of the top class: ``sum_b (n_b / n) |accuracy_b - confidence_b|``.

    ``probs``: ``(n, n_classes)`` rows summing to 1; ``y``: ``(n,)``. Clips are binned by their top
    probability into ``n_bins`` equal-width bins over (0, 1]. 0 is perfectly calibrated; NaN without clips.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if not len(y):
        return float("nan")
    conf, right = p.max(1), (p.argmax(1) == y).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    gap = sum(abs(right[bins == b].mean() - conf[bins == b].mean()) * np.sum(bins == b) for b in np.unique(bins))
    return float(gap / len(y))


def calibration_summary(probs: np.ndarray, y: Sequence[int] | np.ndarray) -> Dict[str, float]:
    """``{"ece", "nll", "mean_confidence", "accuracy"}`` of probabilities ``probs`` ``(n, n_classes)`` for ``y``.

    ``nll`` is in nats (probabilities clipped at 1e-12); ``mean_confidence`` is the mean top probability, to
    set beside ``accuracy`` (the share of top classes that are right): far above it is overconfident.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if not len(y):
        return {"ece": float("nan"), "nll": float("nan"), "mean_confidence": float("nan"), "accuracy": float("nan")}
    return {"ece": expected_calibration_error(p, y),
            "nll": float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)))),
            "mean_confidence": float(p.max(1).mean()), "accuracy": float(np.mean(p.argmax(1) == y))}


def format_calibration(fit_cal: Dict, test: Optional[Dict] = None, test_raw: Optional[Dict] = None) -> str:
    """One line: the temperature and what it did, on the test clips (``test`` / ``test_raw``:
    :func:`calibration_summary` with and without it) when given, else on the validation clips it was fitted on.

    ``fit_cal`` is :attr:`emospec.train.FitResult.calibration` (empty: no validation clips).

    e.g. ``probabilities: logits / 2.50 (fitted on 60 validation clips); on the test clips ECE 0.200 -> 0.050,
    mean top probability 0.95 -> 0.77 at accuracy 0.75``.
    """
    if not fit_cal:
        return "probabilities: softmax of the logits (no validation clips to fit a temperature on)"
    if not fit_cal.get("fitted", True):
        return (f"probabilities: softmax of the logits (temperature not fitted: its {fit_cal['n_clips']} validation clips "
                "were all recognised, or none was)")
    head = f"probabilities: logits / {fit_cal['temperature']:.2f} (fitted on {fit_cal['n_clips']} validation clips)"
    where, after, before = "the test clips", test, test_raw
    if after is None or before is None:
        where = "them"
        after = fit_cal.get("after_unadapted") or fit_cal.get("after")
        before = fit_cal.get("before_unadapted") or fit_cal.get("before")
    if not after or not before:
        return head
    return (head + f"; on {where} ECE {before['ece']:.3f} -> {after['ece']:.3f}, mean top probability "
                   f"{before['mean_confidence']:.2f} -> {after['mean_confidence']:.2f} at accuracy {after['accuracy']:.2f}")
