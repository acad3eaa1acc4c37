"""Metrics: against scikit-learn, against a hand-computed case, the bootstrap's behaviour, and the text forms."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, classification_report, confusion_matrix, f1_score

from emospec.bootstrap import bootstrap_ci, paired_bootstrap, paired_bootstrap_runs
from emospec.metrics import (
    fold_summary,
    format_ci,
    format_comparison,
    format_metrics,
    format_report,
    per_speaker,
    report,
    side_by_side,
    unweighted_accuracy,
)

LABELS = ["a", "b", "c"]
# rows true a,a,a,b,b,c; predicted a,a,b,b,c,c -> confusion [[2,1,0],[0,1,1],[0,0,1]]
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def _noisy(n: int, acc: float, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    yt = rng.integers(0, k, n)
    yp = np.where(rng.random(n) < acc, yt, rng.integers(0, k, n))
    return yt, yp


def test_hand_computed_case():
    rep = report(Y_TRUE, Y_PRED, LABELS)
    assert rep["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert rep["ua"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)  # 13/18
    assert rep["wa"] == pytest.approx(4 / 6) and rep["accuracy"] == rep["wa"]
    assert rep["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert rep["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert rep["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert rep["macro_f1"] == pytest.approx(59 / 90)
    assert [rep["per_class"][c]["support"] for c in LABELS] == [3, 2, 1]
    # strings work the same as indices
    names = [LABELS[i] for i in Y_TRUE], [LABELS[i] for i in Y_PRED]
    assert report(*names, LABELS)["ua"] == rep["ua"]
    json.dumps(rep)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_sklearn(seed):
    yt, yp = _noisy(300, 0.5, k=4, seed=seed)
    labels = ["neutral", "happy", "angry", "sad"]
    rep = report(yt, yp, labels)
    assert rep["ua"] == pytest.approx(balanced_accuracy_score(yt, yp))
    assert rep["wa"] == pytest.approx(accuracy_score(yt, yp))
    assert rep["macro_f1"] == pytest.approx(f1_score(yt, yp, average="macro"))
    per = f1_score(yt, yp, average=None, labels=range(4))
    assert [rep["per_class"][c]["f1"] for c in labels] == pytest.approx(per.tolist())
    assert rep["confusion"] == confusion_matrix(yt, yp, labels=range(4)).tolist()
    ref = classification_report(yt, yp, target_names=labels, output_dict=True)
    for c in labels:
        assert rep["per_class"][c]["precision"] == pytest.approx(ref[c]["precision"])
        assert rep["per_class"][c]["recall"] == pytest.approx(ref[c]["recall"])
    assert rep["macro avg"]["f1"] == pytest.approx(ref["macro avg"]["f1-score"])
    assert rep["weighted avg"]["recall"] == pytest.approx(ref["weighted avg"]["recall"])
    assert unweighted_accuracy(yt, yp) == pytest.approx(balanced_accuracy_score(yt, yp))


def test_bootstrap_estimates_equal_report_and_are_inside_the_interval():
    yt, yp = _noisy(400, 0.6)
    labels = ["n", "h", "a", "s"]
    rep = report(yt, yp, labels)
    ci = bootstrap_ci(yt, yp, labels, n_resamples=1000, seed=3)
    assert ci["n_resamples"] == 1000 and ci["n"] == 400 and ci["unit"] == "item"
    for key in ("ua", "wa", "macro_f1"):
        assert ci[key]["estimate"] == pytest.approx(rep[key])
        assert ci[key]["low"] < ci[key]["estimate"] < ci[key]["high"]
    for c in labels:
        assert ci["f1"][c]["estimate"] == pytest.approx(rep["per_class"][c]["f1"])
        assert ci["f1"][c]["low"] < ci["f1"][c]["estimate"] < ci["f1"][c]["high"]
    # a binomial proportion: the WA interval is close to the normal approximation
    p = rep["wa"]
    half = 1.96 * np.sqrt(p * (1 - p) / 400)
    assert ci["wa"]["high"] - ci["wa"]["low"] == pytest.approx(2 * half, rel=0.15)
    json.dumps(ci)


def test_bootstrap_seeded_reproducible():
    yt, yp = _noisy(200, 0.6)
    a = bootstrap_ci(yt, yp, list("nhas"), seed=7)
    b = bootstrap_ci(yt, yp, list("nhas"), seed=7)
    c = bootstrap_ci(yt, yp, list("nhas"), seed=8)
    assert a == b
    assert (a["ua"]["low"], a["ua"]["high"]) != (c["ua"]["low"], c["ua"]["high"])


def test_interval_shrinks_with_n():
    small = bootstrap_ci(*_noisy(100, 0.6, seed=1), list("nhas"))
    large = bootstrap_ci(*_noisy(2500, 0.6, seed=1), list("nhas"))
    for key in ("ua", "wa", "macro_f1"):
        w_small = small[key]["high"] - small[key]["low"]
        w_large = large[key]["high"] - large[key]["low"]
        assert w_large < w_small / 3  # ~ sqrt(25) = 5 times narrower


def test_coverage_of_the_wa_interval():
    """Over 150 simulated test sets with true accuracy 0.7, ~95 % of the WA intervals hold 0.7."""
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(150):
        yt = rng.integers(0, 4, 200)
        correct = rng.random(200) < 0.7
        yp = np.where(correct, yt, (yt + rng.integers(1, 4, 200)) % 4)
        ci = bootstrap_ci(yt, yp, list("nhas"), n_resamples=1000, seed=i)["wa"]
        hits += ci["low"] <= 0.7 <= ci["high"]
    assert 0.88 <= hits / 150 <= 0.995


def test_group_bootstrap():
    yt, yp = _noisy(300, 0.6, seed=2)
    labels = list("nhas")
    # one group per item, in item order: exactly the item bootstrap
    per_item = bootstrap_ci(yt, yp, labels, groups=[f"{i:04d}" for i in range(300)])
    plain = bootstrap_ci(yt, yp, labels)
    assert per_item["unit"] == "group" and per_item["ua"] == plain["ua"] and per_item["f1"] == plain["f1"]
    # 10 speakers of very different accuracy: resampling speakers gives a wider interval
    rng = np.random.default_rng(0)
    spk = np.repeat(np.arange(10), 50)
    yt = rng.integers(0, 4, 500)
    acc = np.linspace(0.2, 0.95, 10)[spk]
    yp = np.where(rng.random(500) < acc, yt, (yt + 1) % 4)
    by_item = bootstrap_ci(yt, yp, labels)["wa"]
    by_spk = bootstrap_ci(yt, yp, labels, groups=[f"s{s}" for s in spk])
    assert by_spk["n_units"] == 10
    assert by_spk["wa"]["high"] - by_spk["wa"]["low"] > 1.5 * (by_item["high"] - by_item["low"])


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError):
        bootstrap_ci([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError):
        bootstrap_ci([], [], ["a", "b"])
    with pytest.raises(ValueError):
        bootstrap_ci([0, 1], [0, 1], ["a", "b"], groups=["x"])


def test_paired_bootstrap():
    yt, good = _noisy(400, 0.8, seed=4)
    _, bad = _noisy(400, 0.4, seed=5)
    labels = list("nhas")
    same = paired_bootstrap(yt, good, good, labels)
    assert same["difference"] == 0 and same["low"] == 0 and same["high"] == 0 and same["p_two_sided"] == 1.0
    d = paired_bootstrap(yt, good, bad, labels, seed=1)
    assert d["a"] == pytest.approx(report(yt, good, labels)["ua"]) and d["b"] == pytest.approx(report(yt, bad, labels)["ua"])
    assert d["difference"] == pytest.approx(d["a"] - d["b"])
    assert 0 < d["low"] < d["difference"] < d["high"] and d["p_two_sided"] < 0.01
    r = paired_bootstrap(yt, bad, good, labels, seed=1)
    assert r["difference"] == pytest.approx(-d["difference"])
    assert (r["low"], r["high"]) == pytest.approx((-d["high"], -d["low"]))
    # pairing: the same two systems judged on different resamples would be noisier
    noise_a = bootstrap_ci(yt, good, labels)["ua"]
    assert d["high"] - d["low"] < 2 * (noise_a["high"] - noise_a["low"])
    with pytest.raises(ValueError):
        paired_bootstrap(yt, good, bad, labels, metric="auc")


def test_paired_bootstrap_runs_is_paired_bootstrap_for_one_run_and_widens_with_the_seed_spread():
    yt, good = _noisy(400, 0.8, seed=4)
    _, bad = _noisy(400, 0.4, seed=5)
    labels = list("nhas")
    one = paired_bootstrap(yt, good, bad, labels, seed=3)
    copies = paired_bootstrap_runs(yt, [good, good, good], [bad, bad], labels, seed=3)  # runs drawn, items drawn as before
    assert [copies[k] for k in ("a", "b", "difference", "low", "high", "p_two_sided")] == \
        pytest.approx([one[k] for k in ("a", "b", "difference", "low", "high", "p_two_sided")], abs=1e-12)
    # two seeds of A (UA 1.0 and 0.5) against one of B (0.75) on 200 clips: the means tie, the seeds do not
    y = np.repeat(np.arange(4), 50)
    perfect, half, mid = y.copy(), y.copy(), y.copy()
    half[::2], mid[::4] = (half[::2] + 1) % 4, (mid[::4] + 1) % 4
    spread = paired_bootstrap_runs(y, [perfect, half], [mid], labels, n_resamples=2000)
    clips_only = paired_bootstrap_runs(y, [perfect, half], [mid], labels, n_resamples=2000, resample_runs=False)
    assert spread["runs_a"] == [1.0, 0.5] and spread["runs_b"] == [0.75] and spread["difference"] == 0.0
    assert spread["low"] < -0.2 and spread["high"] > 0.2  # a quarter of resamples draw the 0.5 seed twice: -0.25
    assert -0.1 < clips_only["low"] < 0 < clips_only["high"] < 0.1
    with pytest.raises(ValueError, match="at least one run"):
        paired_bootstrap_runs(y, [], [mid], labels)


def test_paired_bootstrap_close_systems_not_significant():
    yt, a = _noisy(200, 0.6, seed=11)
    b = a.copy()
    right, wrong = np.flatnonzero(a == yt)[:5], np.flatnonzero(a != yt)[:5]
    b[right] = (yt[right] + 1) % 4  # b loses 5 items a gets right ...
    b[wrong] = yt[wrong]  # ... and wins 5 that a gets wrong
    d = paired_bootstrap(yt, a, b, list("nhas"))
    assert d["low"] < 0 < d["high"]
    assert d["p_two_sided"] > 0.2


def test_per_speaker_exact():
    out = per_speaker([0, 0, 1, 1, 0, 1], [0, 1, 1, 1, 0, 0], ["s2", "s2", "s2", "s1", "s1", "s1"], ["x", "y"])
    assert list(out) == ["s1", "s2"]
    assert out["s1"] == {"n": 3, "wa": pytest.approx(2 / 3), "ua": pytest.approx(0.75)}
    assert out["s2"] == {"n": 3, "wa": pytest.approx(2 / 3), "ua": pytest.approx(0.75)}
    # a speaker with a single class (as in small random test splits): UA over that class, no warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = per_speaker([2, 2, 0], [2, 1, 0], ["s1", "s1", "s2"], ["x", "y", "z"])
    assert one == {"s1": {"n": 2, "wa": 0.5, "ua": 0.5}, "s2": {"n": 1, "wa": 1.0, "ua": 1.0}}


def test_fold_summary_exact():
    fs = fold_summary([{"ua": 0.5, "wa": 0.6, "macro_f1": 0.4}, {"ua": 0.7, "wa": 0.6, "macro_f1": 0.2}])
    assert fs["ua"]["mean"] == pytest.approx(0.6) and fs["ua"]["std"] == pytest.approx(np.sqrt(0.02))
    assert fs["wa"]["std"] == 0 and fs["macro_f1"]["values"] == [0.4, 0.2]
    assert fold_summary([{"ua": 0.5, "wa": 0.5, "macro_f1": 0.5}])["ua"]["std"] == 0.0


def test_text_forms():
    assert format_ci(0.5531, 0.5123, 0.5969) == "0.553 [0.512, 0.597]"
    rep = report(Y_TRUE, Y_PRED, LABELS)
    assert format_metrics(rep) == "UA 0.722   WA 0.667   macro-F1 0.656"
    rep["ci"] = bootstrap_ci(Y_TRUE, Y_PRED, LABELS, seed=0)
    line = format_metrics(rep)
    ci = rep["ci"]["ua"]
    assert line.startswith(f"UA 0.722 [{ci['low']:.3f}, {ci['high']:.3f}]   WA 0.667 [")
    text = format_report(rep)
    assert "UA (unweighted accuracy)  0.722 [" in text and "1000 resamples" in text
    other = dict(report(Y_TRUE, Y_TRUE, LABELS))
    other["ci"] = bootstrap_ci(Y_TRUE, Y_TRUE, LABELS)
    table = format_comparison({"model": rep, "baseline": other}, chance={"ua": 1 / 3, "wa": 0.5, "macro_f1": 0.222},
                              paired=paired_bootstrap(Y_TRUE, Y_PRED, Y_TRUE, LABELS))
    lines = table.splitlines()
    assert lines[1].startswith("model") and "0.722 [" in lines[1]
    assert lines[2].startswith("baseline") and "1.000 [1.000, 1.000]" in lines[2]
    assert lines[3].split()[-3:] == ["0.333", "0.500", "0.222"]
    assert "UA(model) - UA(baseline): -0.278 [" in table


def test_format_report_without_ci_and_side_by_side():
    labels = ["neutral", "happy", "angry", "sad"]  # two classes with no support
    rep = report(["sad", "sad", "angry"], ["sad", "angry", "angry"], labels)
    text = format_report(rep)
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert any(ln.split()[:1] == ["sad"] and ln.split()[1:] == ["1.00", "0.50", "0.67", "2"] for ln in lines)
    assert "macro avg" in text and "weighted avg" in text and "UA (unweighted accuracy) 0.750" in text
    both = side_by_side({"A": "x\ny", "B": "z"})
    assert both.splitlines()[0].startswith("A") and "B" in both.splitlines()[0]


def test_compare_runs_pairs_two_evaluations_on_the_clips_both_tested(tmp_path):
    """benchmarks/compare_runs.py: UA of each run and the paired difference, on the shared clips only, per corpus."""
    import csv

    from benchmark_scripts import load_benchmark

    cr = load_benchmark("compare_runs")
    truth = ["neutral", "happy", "angry", "sad"] * 2
    runs = {"a": list(truth) + ["sad"], "b": ["neutral", "neutral", "angry", "sad", "neutral", "happy", "sad", "sad"]}
    for name, pred in runs.items():
        (tmp_path / name).mkdir()
        with (tmp_path / name / "oof_predictions.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "corpus", "speaker", "fold", "true", "model", "baseline"])
            for i, p in enumerate(pred):  # run a has a ninth clip that b never tested
                w.writerow([f"c{i}.wav", "x" if i < 4 else "y", f"s{i % 2}", "f", (truth + ["sad"])[i], p, "neutral"])
    text = cr.compare(tmp_path / "a", tmp_path / "b", n_resamples=200)
    assert "8 clips in both (9 in A, 8 in B)" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[4:]}
    assert rows["all"][1:4] == ["8", "1.000", "0.750"] and rows["all"][4] == "+0.250"  # b: neutral 2/2, happy 1/2, angry 1/2, sad 2/2
    assert rows["x"][1:4] == ["4", "1.000", "0.750"] and rows["y"][1:4] == ["4", "1.000", "0.750"]
    with pytest.raises(SystemExit, match="no column 'unadapted'"):
        cr.compare(tmp_path / "a", tmp_path / "b", column="unadapted")
    against = cr.compare(tmp_path / "a", tmp_path / "b", column_b="baseline", n_resamples=200)  # b's baseline: all neutral
    assert "column 'model' of A, 'baseline' of B" in against
    row = next(line.split() for line in against.splitlines() if line.startswith("all"))
    assert row[1:5] == ["8", "1.000", "0.250", "+0.750"]
    seeds = cr.compare([tmp_path / "a", tmp_path / "b"], [tmp_path / "b"], n_resamples=200)  # A: two runs, B: one
    assert "8 clips in every run (of 8-9 a run)" in seeds and "over clips and runs" in seeds
    row = next(line.split() for line in seeds.splitlines() if line.startswith("all"))
    assert row[1:5] == ["8", "0.875", "0.750", "+0.125"]  # A's mean of 1.000 and 0.750
    assert "all       A 1.000 0.750 | B 0.750" in seeds
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert cr.main([a, "--column-b", "baseline", b]) == 0 and cr.main([a, b, "--vs", b]) == 0  # options anywhere
    with pytest.raises(SystemExit):
        cr.main([a, b, a])  # three runs but no --vs: which are A's?


def test_compare_runs_reads_one_finished_fold_of_a_stopped_evaluation(tmp_path):
    """A fold folder (oof.json + predictions.csv + labels.json) gives the rows an oof_predictions.csv would."""
    import csv

    from benchmark_scripts import load_benchmark

    cr = load_benchmark("compare_runs")
    labels = ["neutral", "happy", "angry", "sad"]
    truth = labels * 2
    folds = {"a": [0, 1, 2, 3, 0, 1, 2, 3], "b": [0, 0, 2, 3, 0, 1, 3, 3]}  # a: all right; b: 6 of 8, UA 0.75
    for name, pred in folds.items():
        d = tmp_path / name / "fold_01"
        d.mkdir(parents=True)
        (d / "labels.json").write_text(json.dumps(labels))
        (d / "oof.json").write_text(json.dumps({"name": "fold_01", "model_pred": pred, "unadapted_pred": [-1, 1, 2, 3, 0, 1, 2, 3],
                                                "baseline": {"pred": [0] * 8}}))
        with (d / "predictions.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "speaker", "true", "pred"])
            for i, p in enumerate(pred):
                w.writerow([f"c{i}.wav", f"s{i % 2}", truth[i], labels[p]])
    rows = cr.fold_rows(tmp_path / "a" / "fold_01")
    assert rows[0] == {"path": "c0.wav", "corpus": "", "speaker": "s0", "fold": "fold_01", "true": "neutral", "model": "neutral",
                       "baseline": "neutral", "unadapted": ""}  # -1: not predicted without adaptation
    row = next(line.split() for line in cr.compare(tmp_path / "a" / "fold_01", tmp_path / "b" / "fold_01", n_resamples=200).splitlines()
               if line.startswith("all"))
    assert row[1:5] == ["8", "1.000", "0.750", "+0.250"]
    against = cr.compare(tmp_path / "a" / "fold_01", tmp_path / "a" / "fold_01", column_b="baseline", n_resamples=200)
    assert next(line.split() for line in against.splitlines() if line.startswith("all"))[1:4] == ["8", "1.000", "0.250"]
    broken = tmp_path / "b" / "fold_01" / "predictions.csv"
    broken.write_text(broken.read_text().replace("c1.wav,s1,happy,neutral", "c1.wav,s1,happy,sad"))
    with pytest.raises(SystemExit, match="disagree"):
        cr.fold_rows(tmp_path / "b" / "fold_01")
