"""Late fusion: the network's calibrated probabilities averaged with the eGeMAPS + SVM's, scored beside both."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from emospec.baseline import FUSION_WEIGHT, BaselineConfig, fuse, run_fold, svm_probabilities
from emospec.data.splits import Fold
from emospec.errors import DataError
from emospec.oof import SYSTEM_COLUMNS, read_oof, write_oof
from emospec.protocol_report import fusion_lines
from emospec.protocols import PAIRED, fused_predictions, summarise

LABELS = ["neutral", "happy", "angry", "sad"]


def _blobs(n_per=12, speakers=4, k=4, spread=0.6, seed=0):
    """``(speakers * k * n_per, 6)`` features, one Gaussian blob per class; labels and a speaker per row."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, size=(k, 6))
    X, y, g = [], [], []
    for s in range(speakers):
        for c in range(k):
            X.append(centres[c] + rng.normal(0, spread, size=(n_per, 6)))
            y += [c] * n_per
            g += [f"spk{s}"] * n_per
    return np.concatenate(X), np.array(y), np.array(g)


def test_fuse_is_the_weighted_mean_of_two_probability_arrays():
    a = np.array([[0.7, 0.3], [0.2, 0.8]])
    b = np.array([[0.1, 0.9], [0.6, 0.4]])
    assert FUSION_WEIGHT == 0.5
    np.testing.assert_allclose(fuse(a, b), [[0.4, 0.6], [0.4, 0.6]])
    np.testing.assert_allclose(fuse(a, b, 0.0), a)
    np.testing.assert_allclose(fuse(a, b, 1.0), b)
    with pytest.raises(ValueError, match="shape"):
        fuse(a, b[:1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse(a, b, 1.5)


def test_svm_probabilities_are_distributions_that_rank_the_true_class_first_on_unseen_speakers():
    X, y, g = _blobs()
    train, test = g != "spk3", g == "spk3"
    p = svm_probabilities(X[train], y[train], g[train], X[test], 1.0, 4)
    assert p.shape == (48, 4)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    assert (p.argmax(1) == y[test]).mean() >= 0.95
    assert 0.5 < p.max(1).mean() < 1.0  # sigmoids on out-of-fold scores: confident, not one-hot


def test_a_class_absent_from_training_gets_no_probability_and_one_speaker_cannot_calibrate():
    X, y, g = _blobs()
    seen = y != 2
    p = svm_probabilities(X[seen], y[seen], g[seen], X[:5], 1.0, 4)
    assert p.shape == (5, 4) and (p[:, 2] == 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    one = g == "spk0"
    with pytest.raises(DataError, match=">= 2 training speakers"):
        svm_probabilities(X[one], y[one], g[one], X[:5], 1.0, 4)


def test_run_fold_returns_probabilities_for_its_test_clips_consistent_with_its_predictions():
    X, y, g = _blobs(seed=1)
    train, test = np.flatnonzero(g != "spk0"), np.flatnonzero(g == "spk0")
    fp = run_fold(X, y, g, train, test, BaselineConfig(), 4)
    assert fp.probs.shape == (len(test), 4) and fp.c in BaselineConfig().c_grid
    # Platt's sigmoids are monotone per class: on separable blobs the calibrated argmax is the SVM's own answer
    assert (fp.probs.argmax(1) == fp.y_pred).mean() >= 0.95


def test_fused_answers_follow_the_svm_when_the_model_is_flat_and_the_model_when_it_is_confident():
    svm = np.array([[0.1, 0.7, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    flat = {"probs": [[0.25] * 4] * 3, "baseline": {"probs": svm.tolist()}, "probs_unadapted": None}
    out = fused_predictions(flat)
    assert set(out) == {"fusion"} and out["fusion"].tolist() == [1, 0, 3]
    sure = {"probs": [[0.01, 0.01, 0.01, 0.97]] * 3, "baseline": {"probs": svm.tolist()},
            "probs_unadapted": [[0.25] * 4] * 3}
    out = fused_predictions(sure)
    assert out["fusion"].tolist() == [3, 3, 3]  # 0.5 * 0.97 outweighs any SVM's 0.5 * p
    assert out["fusion_unadapted"].tolist() == [1, 0, 3]


def test_the_pooled_summary_scores_the_fusion_and_pairs_it_with_model_and_baseline():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 20)
    right = lambda frac: np.where(rng.random(80) < frac, y, (y + 1) % 4)  # noqa: E731
    preds = {"model": right(0.6), "baseline": right(0.5), "fusion": right(0.8), "chance": np.zeros(80, dtype=int),
             "unadapted": np.full(80, -1)}  # the unadapted model did not run: neither it nor its pairs are reported
    speakers = [f"s{i % 5}" for i in range(80)]
    s = summarise(np.arange(80), y, preds, LABELS, speakers, n_resamples=200, seed=0, cluster=False)
    assert {"model", "baseline", "fusion"} <= set(s) and "unadapted" not in s
    assert set(k for k in PAIRED if k in s) == {"paired_ua", "paired_ua_fusion", "paired_fusion_model"}
    assert s["paired_fusion_model"]["difference"] == pytest.approx(s["fusion"]["ua"] - s["model"]["ua"])
    assert s["paired_ua_fusion"]["difference"] == pytest.approx(s["fusion"]["ua"] - s["baseline"]["ua"])
    text = "\n".join(fusion_lines(s))
    f = s["fusion"]["ci"]["ua"]
    assert f"as evaluated: UA {f['estimate']:.3f} [{f['low']:.3f}, {f['high']:.3f}]" in text
    assert f"- model {s['paired_fusion_model']['difference']:+.3f}" in text and "SVM weight 0.5" in text
    assert fusion_lines({k: v for k, v in s.items() if k != "fusion"}) == []
    preds["model"][5] = -1
    with pytest.raises(DataError, match="did not predict every one"):
        summarise(np.arange(80), y, preds, LABELS, speakers, n_resamples=200, seed=0, cluster=False)


def test_the_per_clip_file_has_a_column_per_system_empty_where_it_did_not_run(tmp_path: Path):
    rows = [SimpleNamespace(path=f"/x/c{i}.wav", corpus="synth", speaker=f"s{i % 2}") for i in range(4)]
    preds = {"model": np.array([0, 1, 2, 3]), "baseline": np.array([1, 1, 1, 1]), "fusion": np.array([0, 1, 1, 3]),
             "unadapted": np.array([-1, -1, 2, 2])}
    write_oof(tmp_path / "oof_predictions.csv", rows, np.arange(4), np.array([0, 1, 2, 3]), preds, LABELS,
              [Fold("fold_01", np.array([], dtype=int), np.arange(4), True)])
    got = read_oof(tmp_path)
    assert list(got[0]) == ["path", "corpus", "speaker", "fold", "true", *SYSTEM_COLUMNS]
    assert [r["fusion"] for r in got] == ["neutral", "happy", "happy", "sad"]
    assert [r["unadapted"] for r in got] == ["", "", "angry", "angry"] and {r["fusion_unadapted"] for r in got} == {""}
    with pytest.raises(DataError, match="not found"):
        read_oof(tmp_path / "nothing")
