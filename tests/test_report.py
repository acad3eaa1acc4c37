"""The Table-1 report: numbers equal scikit-learn's and a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, classification_report

from emospec.evaluate import format_report, report, side_by_side, unweighted_accuracy

LABELS = ["neutral", "happy", "angry", "sad"]


def test_hand_computed_case():
    y_true = [0, 0, 1, 1, 2, 2, 3, 3, 3, 3]
    y_pred = [0, 1, 1, 1, 2, 0, 3, 3, 2, 3]
    r = report(y_true, y_pred, LABELS)
    # recalls 1/2, 2/2, 1/2, 3/4 -> UA = 0.6875; WA = 7/10
    assert r["ua"] == pytest.approx(0.6875)
    assert r["wa"] == pytest.approx(0.7) and r["accuracy"] == pytest.approx(0.7)
    assert r["per_class"]["happy"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert r["per_class"]["sad"]["precision"] == 1.0 and r["per_class"]["sad"]["recall"] == 0.75
    assert r["confusion"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 1, 3]]


def test_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    yt, yp = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    r = report(yt, yp, LABELS)
    ref = classification_report(yt, yp, target_names=LABELS, output_dict=True)
    for c in LABELS:
        assert r["per_class"][c]["f1"] == pytest.approx(ref[c]["f1-score"])
        assert r["per_class"][c]["precision"] == pytest.approx(ref[c]["precision"])
    assert r["macro avg"]["f1"] == pytest.approx(ref["macro avg"]["f1-score"])
    assert r["weighted avg"]["recall"] == pytest.approx(ref["weighted avg"]["recall"])
    assert r["ua"] == pytest.approx(balanced_accuracy_score(yt, yp))
    assert unweighted_accuracy(yt, yp) == pytest.approx(balanced_accuracy_score(yt, yp))


def test_string_labels_and_text_form():
    r = report(["sad", "sad", "angry"], ["sad", "angry", "angry"], LABELS)
    text = format_report(r)
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert any(l.split()[:1] == ["sad"] and l.split()[1:] == ["1.00", "0.50", "0.67", "2"] for l in lines)
    assert "macro avg" in text and "weighted avg" in text and "UA (unweighted accuracy) 0.750" in text
    both = side_by_side({"A": "x\ny", "B": "z"})
    assert both.splitlines()[0].startswith("A") and "B" in both.splitlines()[0]
