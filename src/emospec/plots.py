"""Figures from arrays (matplotlib, headless Agg backend, imported lazily).

Each function takes plain numbers, writes one PNG and returns its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import numpy as np

__all__ = ["class_distribution", "confusion", "training_curves", "feature_panels", "fold_curves", "per_class_f1", "gradcam_overlay"]


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
    """Training/validation loss, validation UA/WA and training UA (on the crops trained on) per epoch (and of the average, with SWA;
    the domain classifier's accuracy, with an adversary)."""
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
    if all("train_ua" in h for h in history):
        b.plot(ep, [h["train_ua"] for h in history], color="#4c72b0", ls=":", label="training UA (crops)")
    if all("adv_acc" in h for h in history):  # TrainConfig.adversary: near chance when the embedding hides the domain
        b.plot(ep, [h["adv_acc"] for h in history], color="#8c8c8c", ls="-.", label="domain classifier accuracy (crops)")
    averaged = [h for h in history if "swa_val_ua" in h]
    if averaged:  # TrainConfig.select="swa": the running average of the weights, validated each epoch
        b.plot([h["epoch"] + 1 for h in averaged], [h["swa_val_ua"] for h in averaged], color="#c44e52",
               label="validation UA, weights averaged")
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


__all__ += ["timeline", "corpus_bars"]  # appended here so that this section merges on its own


def timeline(
    starts_s: Sequence[float] | np.ndarray,
    scores: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
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


def _save(fig, plt, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def feature_panels(
    clips: Sequence[Mapping], path: str | Path, *, sample_rate_hz: int = 16000, hop_ms: float = 10.0,
    fmax_hz: float = 8000.0, title: str = "One clip per class: waveform and 3D log-Mel channels",
) -> Path:
    """The paper's Figure 3: per clip (one row each) its waveform, static log-Mel, delta and delta-delta.

    Each clip is a mapping with ``"label"``, ``"name"``, ``"waveform"``
    ``(samples,)`` float in [-1, 1] at ``sample_rate_hz`` and ``"features"``
    ``(3, n_mels, frames)`` dB with frames every ``hop_ms`` ms.
    """
    plt = _plt()
    n = len(clips)
    fig, axes = plt.subplots(n, 4, figsize=(15, 2.3 * n + 0.6), dpi=100, squeeze=False)
    heads = ("waveform", "log-Mel (static)", "delta", "delta-delta")
    units = ("", "dB", "dB/frame", "dB/frame²")
    for r, clip in enumerate(clips):
        wave = np.asarray(clip["waveform"], dtype=float)
        feats = np.asarray(clip["features"], dtype=float)
        ax = axes[r, 0]
        ax.plot(np.arange(wave.size) / sample_rate_hz, wave, lw=0.4, color="#4c72b0")
        ax.set_xlim(0, max(wave.size / sample_rate_hz, 1e-3))
        peak = max(float(np.abs(wave).max(initial=0.0)) * 1.1, 0.01)
        ax.set_ylim(-peak, peak)
        ax.set_ylabel(f"{clip['label']}\namplitude (full scale 1)")
        dur = feats.shape[-1] * hop_ms / 1000.0
        for c in range(3):
            ax = axes[r, c + 1]
            img = feats[c]
            lim = np.percentile(np.abs(img), 99) if c else None  # deltas: a colour scale symmetric about 0
            vmin, vmax = (None, None) if lim is None else (-lim, lim)
            im = ax.imshow(img, origin="lower", aspect="auto", extent=(0, dur, 0, feats.shape[1]),
                           cmap="magma" if c == 0 else "coolwarm", vmin=vmin, vmax=vmax)
            ax.set_ylabel(f"mel band (0-{fmax_hz / 1000:g} kHz)" if c == 0 else "mel band")
            fig.colorbar(im, ax=ax, fraction=0.046, label=units[c + 1])
        for c in range(4):
            axes[r, c].set_xlabel("time (s)")
            axes[r, c].set_title(f"{heads[c]}: {clip['name']}" if c == 0 else heads[c], fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def fold_curves(histories: Mapping[str, List[Dict[str, float]]], path: str | Path, *, title: str = "Training per fold") -> Path:
    """Loss (train: solid, validation: dashed) and UA (validation: solid, training crops: dotted) per epoch, one colour per fold."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    cmap = plt.get_cmap("tab10" if len(histories) <= 10 else "tab20")
    for i, (name, hist) in enumerate(histories.items()):
        ep = [h["epoch"] + 1 for h in hist]
        colour = cmap(i % cmap.N)
        a.plot(ep, [h["train_loss"] for h in hist], color=colour, marker=".", label=name)
        a.plot(ep, [h["val_loss"] for h in hist], color=colour, marker=".", ls="--")
        b.plot(ep, [h["val_ua"] for h in hist], color=colour, marker=".", label=name)
        if all("train_ua" in h for h in hist):
            b.plot(ep, [h["train_ua"] for h in hist], color=colour, ls=":")
    a.set_title("loss (solid: training crops, dashed: validation clips)", fontsize=9)
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy")
    b.set_title("UA (solid: validation clips, dotted: training crops)", fontsize=9)
    b.set_xlabel("epoch")
    b.set_ylabel("UA")
    b.set_ylim(0, 1)
    b.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def per_class_f1(systems: Mapping[str, Mapping[str, Mapping[str, float]]], path: str | Path, *,
                 title: str = "Per-class F1 with 95% bootstrap CI") -> Path:
    """Grouped bars of each class's F1 per system, with CI error bars.

    ``systems`` maps a system name to ``{class: {"estimate", "low", "high"}}``
    (the ``"f1"`` part of :func:`emospec.bootstrap.bootstrap_ci`).
    """
    plt = _plt()
    names = list(systems)
    classes = list(next(iter(systems.values())))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(1.6 * len(classes) + 2, 3.6), dpi=110)
    x = np.arange(len(classes))
    for i, name in enumerate(names):
        est = np.array([systems[name][c]["estimate"] for c in classes])
        lo = np.array([systems[name][c]["low"] for c in classes])
        hi = np.array([systems[name][c]["high"] for c in classes])
        ax.bar(x + (i - (len(names) - 1) / 2) * width, est, width, label=name,
               yerr=np.vstack([est - lo, hi - est]), capsize=3)
    ax.set_xticks(x, classes)
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def gradcam_overlay(logmel: np.ndarray, heatmap: np.ndarray, path: str | Path, *, hop_ms: float = 10.0,
                    fmax_hz: float = 8000.0, title: str = "Grad-CAM", alpha: float = 0.45, start_s: float = 0.0) -> Path:
    """The static log-Mel ``(n_mels, frames)`` dB in grey with a Grad-CAM heatmap ``(n_mels, frames)`` in [0, 1] over it;
    the time axis starts at ``start_s`` (the first frame's time in the clip)."""
    plt = _plt()
    logmel, heatmap = np.asarray(logmel, dtype=float), np.asarray(heatmap, dtype=float)
    dur = logmel.shape[1] * hop_ms / 1000.0
    ext = (start_s, start_s + dur, 0, logmel.shape[0])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6), dpi=110)
    a.imshow(logmel, origin="lower", aspect="auto", extent=ext, cmap="magma")
    a.set_title("log-Mel (static channel)", fontsize=10)
    b.imshow(logmel, origin="lower", aspect="auto", extent=ext, cmap="gray")
    im = b.imshow(heatmap, origin="lower", aspect="auto", extent=ext, cmap="jet", alpha=alpha, vmin=0, vmax=1)
    b.set_title("Grad-CAM over log-Mel", fontsize=10)
    fig.colorbar(im, ax=b, fraction=0.046, label="relevance (0-1)")
    for ax in (a, b):
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"mel band (0-{fmax_hz / 1000:g} kHz)")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def corpus_bars(ua: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, *, title: str = "UA per corpus") -> Path:
    """Grouped bars: for each corpus, each system's UA with its 95 % CI as an error bar.

    ``ua[corpus][system] = (ua, low, high)``; a dashed line marks chance (1 / 4 classes).
    """
    plt = _plt()
    corpora = list(ua)
    systems = sorted({s for v in ua.values() for s in v}, key=lambda s: (s != "model", s))
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(corpora), 3.6), dpi=120)
    for k, system in enumerate(systems):
        x = np.arange(len(corpora)) + (k - (len(systems) - 1) / 2) * width
        vals = [ua[c].get(system, (np.nan, np.nan, np.nan)) for c in corpora]
        mid = np.array([v[0] for v in vals])
        err = np.array([[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]])
        ax.bar(x, mid, width, yerr=err, capsize=3, label=system)
        for xi, m in zip(x, mid):
            ax.text(xi, m + 0.02, f"{m:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(0.25, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(np.arange(len(corpora)), corpora)
    ax.set_ylim(0, 1)
    ax.set_ylabel("unweighted accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, plt, path)
