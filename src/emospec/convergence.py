"""Did a training run converge? Pure checks on :func:`emospec.train.fit`'s history.

A recipe compared while its loss is still falling says nothing about the
others, so every run records its own evidence (``convergence.json``): the best
validation epoch against the budget, the final training loss, and the kept
model's recall per class on full training clips, with plain-language warnings
when the model has not fit its training data or the budget ran out while
validation UA was still rising.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["LOW_TRAIN_UA", "LOW_CLASS_RECALL", "FINAL_LOSS_EPOCHS", "final_train_loss", "convergence", "format_convergence",
           "selection_key"]

LOW_TRAIN_UA = 0.9
"""Below this training-set UA (full clips, best model) :func:`convergence` says the model has not fit its data."""
LOW_CLASS_RECALL = 0.7
"""Below this recall of a class on its own training clips :func:`convergence` names the class."""
FINAL_LOSS_EPOCHS = 5
"""The final training loss is the median of this many last epochs' losses. One epoch's loss is the mean of its
batches' losses with BatchNorm normalising each batch by its own statistics, so it depends on which clips share a
batch. Measured (``benchmarks/epoch_replay.py``, README session 26): the last epoch of a RAVDESS fold, at the
one-cycle's near-zero learning rate, recorded 0.267 after 0.06-0.10 before it; the same weights score its crops 0.029
in batches of consecutive clips and 0.030 in eval mode, but 1.62 on the one batch that held a single angry clip
among 32."""


def final_train_loss(history: Sequence[Dict]) -> float:
    """The median of the last :data:`FINAL_LOSS_EPOCHS` epochs' ``train_loss`` (nats) in :func:`fit`'s history."""
    return float(np.median([h["train_loss"] for h in history][-FINAL_LOSS_EPOCHS:]))


def selection_key(rec: Dict, min_train_ua: float) -> Tuple[int, float]:
    """How ``select="best"`` ranks an epoch's history record: (fit, validation UA), compared as a tuple.

    ``fit`` is 1 when the epoch's training-set UA on its crops (``rec["train_ua"]``)
    reaches ``min_train_ua``, else 0: any epoch that fits its training clips
    that well beats every epoch that does not, and the validation UA decides
    within each group. With ``min_train_ua`` 0 every epoch has fit 1 and the
    validation UA alone decides (the default). NaN counts as not fit.
    """
    train_ua = float(rec.get("train_ua", float("nan")))
    return (1 if train_ua >= min_train_ua or min_train_ua <= 0 else 0), float(rec["val_ua"])


def convergence(history: Sequence[Dict], *, epochs: int, patience: int, labels: Sequence[str],
                train_recall_full: Optional[Sequence[float]] = None, train_loss_full: Optional[float] = None,
                select: str = "best", min_train_ua: float = 0.0) -> Dict:
    """Did training converge? Measured facts and plain-language warnings.

    Parameters
    ----------
    history
        :func:`fit`'s per-epoch records (``train_loss``, ``train_ua``, ``val_ua``, ...).
    epochs, patience
        The budget and the early-stopping patience the run had.
    labels
        Class names, for per-class figures.
    train_recall_full
        Per-class recall of the kept model on full training clips.
    train_loss_full
        Mean cross-entropy (nats) of the kept model on those clips, in eval
        mode: unlike the epochs' losses it does not depend on batch company.
    select
        Which model was kept (:attr:`~emospec.config.TrainConfig.select`):
        the best validation epoch's, the last one's, or the average of the
        weights from the epochs whose records hold ``swa_val_ua`` to the last.
    min_train_ua
        :attr:`~emospec.config.TrainConfig.select_min_train_ua`: with ``select="best"`` the kept epoch is the
        best by :func:`selection_key` (validation UA among the epochs that fit their crops this well).

    Returns
    -------
    dict
        ``best_epoch`` (of validation UA) / ``kept_epoch`` / ``epochs_run`` (1-based), ``final_train_loss``
        (median of the last :data:`FINAL_LOSS_EPOCHS` epochs' losses), ``last_epoch_train_loss``,
        ``train_ua_full`` and ``train_recall_full`` (class -> recall), ``train_loss_full`` when given,
        ``loss_drop_last_quarter`` (relative fall of that median over the
        last quarter of the epochs run), ``early_stopped`` and
        ``warnings`` (empty when the run looks converged): the best
        validation epoch in the last tenth of the budget (the budget was too
        short), or a training-set UA below :data:`LOW_TRAIN_UA` or a class
        recognised on fewer than 70 % of its training clips (the model has
        not fit its data).
    """
    if not history:
        return {"epochs_run": 0, "warnings": ["no epoch was trained"]}
    val = np.array([h.get("val_ua", float("nan")) for h in history], dtype=float)
    has_val = bool(np.isfinite(val).any())
    best = int(np.nanargmax(val)) + 1 if has_val else len(history)
    if has_val and min_train_ua > 0:
        keys = [selection_key(h, min_train_ua) for h in history]
        best = keys.index(max(keys)) + 1
    run = len(history)
    early = run < epochs
    losses = np.array([h["train_loss"] for h in history], dtype=float)
    final = final_train_loss(history)
    q = max(1, run // 4)
    before = float(np.median(losses[max(0, run - q - FINAL_LOSS_EPOCHS):run - q])) if run > q else float("nan")
    drop = (before - final) / before if before > 0 else float("nan")
    kept = best if select == "best" else run
    out: Dict = {"best_epoch": best, "kept_epoch": kept, "select": select, "epochs_run": run, "epochs": epochs, "early_stopped": early,
                 "final_train_loss": final, "last_epoch_train_loss": float(losses[-1]),
                 "final_train_ua_crops": float(history[-1].get("train_ua", float("nan"))),
                 "loss_drop_last_quarter": float(drop), "warnings": []}
    if train_loss_full is not None:
        out["train_loss_full"] = float(train_loss_full)
    averaged = [int(h["epoch"]) + 1 for h in history if "swa_val_ua" in h]
    if select == "swa" and averaged:
        out["averaged_epochs"] = [averaged[0], averaged[-1]]
    if train_recall_full is not None:
        rec = {str(c): float(r) for c, r in zip(labels, train_recall_full)}
        present = [r for r in rec.values() if np.isfinite(r)]
        out["train_recall_full"] = rec
        out["train_ua_full"] = float(np.mean(present)) if present else float("nan")
        if present and out["train_ua_full"] < LOW_TRAIN_UA:
            kind = {"last": f"last epoch {kept}", "swa": f"weights averaged up to epoch {kept}"}.get(select,
                                                                                               f"best validation epoch {kept}")
            out["warnings"].append(f"the kept model ({kind} of {run}) has a training-set UA of "
                                   f"{out['train_ua_full']:.2f} (< {LOW_TRAIN_UA}): it has not fit its own training clips; "
                                   "train longer, or check that the validation speakers are enough to choose an epoch")
        weak = [f"{c} {r:.2f}" for c, r in rec.items() if np.isfinite(r) and r < LOW_CLASS_RECALL]
        if weak:
            out["warnings"].append("classes recognised on fewer than 70 % of their own training clips: " + ", ".join(weak))
    if has_val and not early and best > run - max(1, epochs // 10):
        out["warnings"].append(f"the best validation epoch is {best} of {run}: validation UA was still rising when "
                               "the budget ran out; try more epochs")
    return out


def format_convergence(conv: Mapping) -> str:
    """One line from :func:`emospec.train.convergence`: best epoch, training fit per class, warnings.

    >>> format_convergence({"best_epoch": 72, "epochs_run": 100, "final_train_loss": 0.09, "warnings": [],
    ...                     "train_ua_full": 0.99, "train_recall_full": {"neutral": 1.0, "sad": 0.98}})
    'best epoch 72 of 100, final training loss 0.090, training-set UA 0.99 (neutral 1.00, sad 0.98): converged'
    """
    if not conv or "best_epoch" not in conv:
        return "convergence: not recorded"
    if conv.get("select") == "last":
        text = f"last epoch kept ({conv['epochs_run']}; best validation epoch {conv['best_epoch']})"
    elif conv.get("select") == "swa":
        first, last = conv.get("averaged_epochs") or (conv["epochs_run"], conv["epochs_run"])
        text = f"weights of epochs {first}-{last} averaged (best validation epoch {conv['best_epoch']})"
    else:
        text = f"best epoch {conv['best_epoch']} of {conv['epochs_run']}"
    text += f", final training loss {conv['final_train_loss']:.3f}"
    if "train_recall_full" in conv:
        per = ", ".join(f"{c} {r:.2f}" for c, r in conv["train_recall_full"].items())
        text += f", training-set UA {conv['train_ua_full']:.2f} ({per})"
    if "train_loss_full" in conv:
        text += f", loss {conv['train_loss_full']:.3f} on full training clips"
    warnings = conv.get("warnings") or []
    return text + (": converged" if not warnings else ": NOT CONVERGED: " + "; ".join(warnings))
