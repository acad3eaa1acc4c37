"""Figures: every plot function writes a non-blank PNG of the expected size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from emospec import plots

CLASSES = ["neutral", "happy", "angry", "sad"]


def _check_png(path, size):
    assert path.exists() and path.stat().st_size > 5000
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == size
        grey = np.asarray(im.convert("L"), dtype=float)
    assert grey.std() > 10  # not a blank canvas
    return grey


def test_class_distribution_and_confusion(tmp_path):
    _check_png(plots.class_distribution(dict(zip(CLASSES, [96, 192, 192, 192])), tmp_path / "dist.png"), (600, 384))
    cm = [[80, 5, 6, 5], [10, 150, 20, 12], [3, 15, 170, 4], [20, 10, 2, 160]]
    _check_png(plots.confusion(cm, CLASSES, tmp_path / "cm.png"), (1080, 456))


def test_feature_panels_one_row_per_clip(tmp_path):
    rng = np.random.default_rng(0)
    clips = [{"label": c, "name": f"{c}.wav", "waveform": 0.3 * rng.standard_normal(16000 + 4000 * i),
              "features": rng.normal(-50, 10, size=(3, 128, 101 + 25 * i))} for i, c in enumerate(CLASSES)]
    _check_png(plots.feature_panels(clips, tmp_path / "fig3.png"), (1500, 980))
    _check_png(plots.feature_panels(clips[:2], tmp_path / "fig3b.png"), (1500, 520))


def test_fold_curves(tmp_path):
    hist = {f"fold_{j}": [{"epoch": e, "train_loss": 1.4 - 0.1 * e, "val_loss": 1.3 - 0.05 * e, "val_ua": 0.3 + 0.03 * e + 0.01 * j,
                           "val_wa": 0.3} for e in range(8)] for j in range(6)}
    _check_png(plots.fold_curves(hist, tmp_path / "curves.png"), (1100, 396))


def test_per_class_f1_bars_follow_the_numbers(tmp_path):
    f1 = {c: {"estimate": v, "low": v - 0.1, "high": v + 0.05} for c, v in zip(CLASSES, [0.2, 0.4, 0.6, 0.8])}
    base = {c: {"estimate": 0.5, "low": 0.45, "high": 0.55} for c in CLASSES}
    grey = _check_png(plots.per_class_f1({"model": f1, "baseline": base}, tmp_path / "f1.png"), (924, 396))
    # the first system's bars (dark blue C0) get taller from left to right
    img = np.asarray(Image.open(tmp_path / "f1.png").convert("RGB"), dtype=int)
    blue = (abs(img[..., 0] - 31) < 12) & (abs(img[..., 1] - 119) < 12) & (abs(img[..., 2] - 180) < 12)
    cols = np.flatnonzero(blue.sum(0) > 0)
    groups = np.split(cols, np.flatnonzero(np.diff(cols) > 3) + 1)
    heights = [int(blue[:, g].sum(0).max()) for g in groups]
    bars = [h for h in heights if h > 20]  # drops the legend's small patch
    assert len(bars) == 4
    np.testing.assert_allclose(np.array(bars) / bars[0], [1, 2, 3, 4], atol=0.05)  # F1 0.2, 0.4, 0.6, 0.8
    assert grey.shape == (396, 924)


def test_gradcam_overlay(tmp_path):
    logmel = np.random.default_rng(1).normal(-60, 10, size=(128, 300))
    heat = np.zeros((128, 300))
    heat[40:80, 100:150] = 1.0
    _check_png(plots.gradcam_overlay(logmel, heat, tmp_path / "cam.png"), (1210, 396))


def test_headless_backend():
    import matplotlib

    plots._plt()
    assert matplotlib.get_backend().lower() == "agg"
