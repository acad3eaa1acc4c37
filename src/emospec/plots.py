"""Figures from arrays (matplotlib, headless Agg backend, imported lazily).

Each function takes plain numbers, writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import numpy as np

__all__ = ["class_distribution", "confusion", "training_curves"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def class_distribution(counts: Mapping[str, int], path: str | Path, *, title: str = "Utterances per class") -> Path:
    """Bar chart of utterance counts per class (the paper's Figure 2)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    names, values = list(counts), [int(v) for v in counts.values()]
    bars = ax.bar(names, values, color="#4c72b0")
    ax.bar_label(bars, labels=[str(v) for v in values], fontsize=8)
    ax.set_ylabel("utterances")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion(cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, *, title: str = "Confusion matrix") -> Path:
    """Confusion matrix as counts (left) and row-normalised recall (right)."""
    plt = _plt()
    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), dpi=120)
    for ax, data, sub, fmt in ((axes[0], m, "counts", "{:.0f}"), (axes[1], norm, "row-normalised (recall)", "{:.2f}")):
        im = ax.imshow(data, cmap="Blues", vmin=0, vmax=data.max() if data.max() > 0 else 1)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(sub, fontsize=10)
        thresh = data.max() / 2 if data.max() > 0 else 0.5
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                ax.text(j, i, fmt.format(data[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if data[i, j] > thresh else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def training_curves(history: List[Dict[str, float]], path: str | Path, *, title: str = "Training") -> Path:
    """Training/validation loss and validation UA per epoch."""
    plt = _plt()
    ep = [h["epoch"] + 1 for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=120)
    a.plot(ep, [h["train_loss"] for h in history], label="train loss (crops)")
    a.plot(ep, [h["val_loss"] for h in history], label="validation loss (full clips)")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy")
    a.legend(fontsize=8)
    b.plot(ep, [h["val_ua"] for h in history], color="#dd8452", label="validation UA")
    b.plot(ep, [h["val_wa"] for h in history], color="#55a868", ls="--", label="validation WA")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.set_ylim(0, 1)
    b.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ += ["timeline"]  # appended here so that this section merges on its own


def timeline(
    starts_s: Sequence[float],
    scores: Sequence[Sequence[float]],
    labels: Sequence[str],
    path: str | Path,
    *,
    window_s: float,
    envelope: tuple | None = None,
    duration_s: float | None = None,
    title: str = "",
) -> Path:
    """Sliding-window emotion timeline: waveform on top, stacked probabilities below.

    Parameters
    ----------
    starts_s
        ``(n_windows,)`` window starts in seconds.
    scores
        ``(n_windows, n_classes)`` probabilities in ``labels`` order; each
        window is drawn at its centre (``start + window_s / 2``).
    envelope
        ``(times_s, min, max)``, each ``(n_points,)``: the waveform's min/max
        per short bin (a 1-hour file plots without loading it whole).
    duration_s
        Length of the recording in seconds (x-axis limit).
    """
    plt = _plt()
    starts = np.asarray(starts_s, dtype=float)
    p = np.asarray(scores, dtype=float).reshape(len(starts), len(labels))
    end = float(duration_s) if duration_s else float(starts[-1] + window_s) if starts.size else 1.0
    unit, scale = ("min", 60.0) if end > 600 else ("s", 1.0)
    centres = np.minimum(starts + window_s / 2.0, end)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.6), dpi=120, sharex=True,
                                      gridspec_kw={"height_ratios": [1, 2]})
    if envelope is not None and len(envelope[0]):
        t, lo, hi = (np.asarray(a, dtype=float) for a in envelope)
        top.fill_between(t / scale, lo, hi, color="#4c72b0", linewidth=0.4)
    top.set_ylabel("amplitude")
    top.set_ylim(-1.0, 1.0)
    top.set_title(title or "Emotion over time")
    if len(starts) == 1:  # one window: draw it as a flat band across the recording
        centres, p = np.array([0.0, end]), np.repeat(p, 2, axis=0)
    colours = plt.get_cmap("tab10").colors
    bottom.stackplot(centres / scale, p.T, labels=list(labels), colors=colours[: len(labels)], alpha=0.85)
    bottom.set_ylim(0, 1)
    bottom.set_xlim(0, end / scale)
    bottom.set_ylabel("probability")
    bottom.set_xlabel(f"time ({unit}); window {window_s:g} s")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
