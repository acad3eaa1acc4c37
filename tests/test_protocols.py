"""Protocols: folds, recipes, and ``emospec evaluate`` end to end on tiny real subsets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from corpus_fixtures import csv_rows
from emospec.config import TrainConfig
from emospec.data.manifest import Utterance
from emospec.demo import DEMO_TRAIN
from emospec.errors import ConfigError, DataError
from emospec.files import save_json
from emospec.metrics import report
from emospec.protocols import make_folds, speaker_kfold
from emospec.recipe import RECIPES, train_config_from

CLASSES = ["neutral", "happy", "angry", "sad"]


def _rows(n_speakers: int, per_class=(2, 4, 4, 4)):
    rows = []
    for s in range(n_speakers):
        for c, n in zip(CLASSES, per_class):
            for i in range(n):
                rows.append(Utterance(f"/x/{s}_{c}_{i}.wav", "toy", f"{s}_{c}_{i}", f"spk{s:02d}", "mf"[s % 2], c, c))
    return rows


# --------------------------------------------------------------------------- folds
def test_speaker_kfold_six_folds_by_actor():
    rows = _rows(24)
    folds = make_folds("speaker", rows, seed=0)
    assert len(folds) == 6
    seen = np.zeros(len(rows), dtype=int)
    for f in folds:
        test_spk = {rows[i].speaker for i in f.test}
        assert len(test_spk) == 4 and not test_spk & {rows[i].speaker for i in f.train}
        assert Counter(rows[i].gender for i in f.test) == {"f": 28, "m": 28}  # 2 F + 2 M actors
        assert len(f.train) + len(f.test) == len(rows) and f.speaker_independent
        seen[f.test] += 1
    assert (seen == 1).all()
    assert [f.test.tolist() for f in make_folds("speaker", rows, seed=0)] == [f.test.tolist() for f in folds]
    assert [f.test.tolist() for f in make_folds("speaker", rows, seed=1)] != [f.test.tolist() for f in folds]
    assert len(make_folds("speaker", rows, folds=4)) == 4
    with pytest.raises(DataError):
        speaker_kfold([r.speaker for r in rows], [r.gender for r in rows], 25)


def test_loso_and_paper_folds():
    rows = _rows(6)
    loso = make_folds("loso", rows)
    assert [f.name for f in loso] == [f"loso_spk{s:02d}" for s in range(6)]
    assert all({rows[i].speaker for i in f.test} == {f.name[5:]} for f in loso)
    with pytest.raises(ConfigError):
        make_folds("loso", rows, folds=3)
    paper = make_folds("paper", rows)
    assert len(paper) == 10 and not any(f.speaker_independent for f in paper)
    counts = np.zeros(len(rows), dtype=int)
    for f in paper:
        counts[f.test] += 1
        assert set(f.train.tolist()).isdisjoint(f.test.tolist())
    assert (counts == 1).all()
    single = make_folds("paper", rows, folds=1)
    assert len(single) == 1 and len(single[0].test) == int(round(0.1 * len(rows)))  # paper split rounds (5,531 -> 553)
    assert Counter(rows[i].label4 for i in single[0].test)["neutral"] >= 1  # stratified
    with pytest.raises(ConfigError):
        make_folds("random", rows)


def test_train_and_evaluate_share_one_fold_builder(tmp_path):
    from emospec import protocols as cv
    from emospec.cli import build_parser
    from emospec.data import splits

    assert cv.make_folds is splits.make_folds and cv.PROTOCOLS is splits.PROTOCOLS == ("speaker", "loso", "paper", "all")
    parser = build_parser()
    train = parser.parse_args(["train", "--out", "x"])
    evaluate = parser.parse_args(["evaluate", "--protocol", "speaker", "--corpus", "ravdess"])
    assert train.protocol == "speaker" and train.folds is None and evaluate.folds is None  # both: make_folds' default k
    rows = _rows(24)
    assert [f.name for f in make_folds("speaker", rows)] == [f"fold_0{j}" for j in range(1, 7)]
    with pytest.raises(ConfigError, match="protocol 'all' tests nothing"):  # train's 'all' has no test side to evaluate
        cv.run_protocol(cv.CorpusData("toy", rows, [], None), "all", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_train_config_from_recipes(tmp_path):
    assert train_config_from() == RECIPES["default"].train == TrainConfig()  # one meaning of "default"
    assert train_config_from("paper") == RECIPES["paper"].train != TrainConfig()
    assert train_config_from("demo") == DEMO_TRAIN
    cfg = train_config_from("demo", {"epochs": "3", "class_weights": "false", "lr": "0.01", "optimizer": "sgd"})
    assert (cfg.epochs, cfg.class_weights, cfg.lr, cfg.optimizer, cfg.crop_s) == (3, False, 0.01, "sgd", DEMO_TRAIN.crop_s)
    save_json(tmp_path / "recipe.json", {"epochs": 5, "crop_s": 1.5})
    assert (train_config_from(str(tmp_path / "recipe.json")).epochs, train_config_from(str(tmp_path / "recipe.json")).crop_s) == (5, 1.5)
    save_json(tmp_path / "config.json", {"feature": {}, "model": {}, "train": {"epochs": 7}})
    assert train_config_from(str(tmp_path / "config.json")).epochs == 7
    for bad in ({"epoch": "3"}, {"epochs": "three"}, {"class_weights": "maybe"}, {"epochs": "0"}):
        with pytest.raises(ConfigError):
            train_config_from("demo", bad)


# --------------------------------------------------------------------------- end to end on real clips
@pytest.fixture(scope="module")
def cv_run(subsets, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "run"
    r = run_cli("-q", "evaluate", "--protocol", "speaker", "--corpus", "ravdess", "--root", str(subsets / "ravdess"),
                "--folds", "3", "--epochs", "1", "--resamples", "1000", "--out", str(out))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return out, r.stdout.decode()


@pytest.mark.slow
def test_cv_every_clip_once_and_no_speaker_leak(cv_run, subsets):
    out, _ = cv_run
    m = json.loads((out / "metrics.json").read_text())
    assert (m["n_clips"], m["n_tested"], m["n_folds"], m["n_speakers"]) == (42, 42, 3, 6)
    oof = csv_rows(out / "oof_predictions.csv")
    assert len(oof) == 42 and len({r["path"] for r in oof}) == 42
    assert {r["path"] for r in oof} == {str(p) for p in (subsets / "ravdess").glob("*/*.flac")}
    tested = []
    for f in m["folds"]:
        split = json.loads((out / f["name"] / "split.json").read_text())
        spk = lambda ids: {"ravdess_" + i.split("-")[-1] for i in ids}  # noqa: E731
        assert spk(split["test"]).isdisjoint(spk(split["train"]) | spk(split["val"]))
        assert spk(split["train"]).isdisjoint(spk(split["val"]))
        assert len(spk(split["test"])) == 2 and f["n_test"] == 14
        tested += split["test"]
        assert {r["fold"] for r in oof if r["speaker"] in spk(split["test"])} == {f["name"]}
    assert len(tested) == len(set(tested)) == 42


@pytest.mark.slow
def test_train_and_evaluate_hold_out_the_same_speakers(cv_run, subsets, tmp_path):
    """``emospec train`` and ``emospec evaluate`` with ``--protocol speaker``, the same seed and k: the same folds,
    fold by fold and under the same names, and the same validation speakers carved out of a fold's training side."""
    out, _ = cv_run
    m = json.loads((out / "metrics.json").read_text())
    evaluated = [(f["name"], f["test_speakers"]) for f in m["folds"]]
    r = run_cli("-q", "train", "--corpus", f"ravdess:{subsets / 'ravdess'}", "--protocol", "speaker", "--folds", "3",
                "--fold", "2", "--epochs", "1", "--no-cache", "--out", str(tmp_path / "T"))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    splits = json.loads((tmp_path / "T" / "splits.json").read_text())
    assert splits["seed"] == m["train_config"]["seed"] and splits["folds_k"] == 3
    assert [(f["name"], f["test_speakers"]) for f in splits["folds"]] == evaluated
    assert [len(s) for _, s in evaluated] == [2, 2, 2] and len({x for _, s in evaluated for x in s}) == 6
    ran, held = json.loads((tmp_path / "T" / "split.json").read_text()), json.loads((out / "fold_02" / "split.json").read_text())
    assert ran["name"] == held["name"] == "fold_02" and ran["test_speakers"] == evaluated[1][1]
    for side in ("train", "val", "test"):
        assert sorted(ran[side]) == sorted(held[side]), side


@pytest.mark.slow
def test_fold_seed_keeps_the_folds_while_the_training_seed_changes(cv_run, subsets, tmp_path):
    """``--fold-seed 0 --seed 5``: the folds of seed 0 (cv_run's, fold by fold), a model trained with seed 5."""
    out, _ = cv_run
    m0 = json.loads((out / "metrics.json").read_text())
    other = tmp_path / "seed5"
    r = run_cli("-q", "evaluate", "--protocol", "speaker", "--corpus", "ravdess", "--root", str(subsets / "ravdess"),
                "--folds", "3", "--epochs", "1", "--seed", "5", "--fold-seed", "0", "--baseline", "none", "--no-plots",
                "--out", str(other))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m5 = json.loads((other / "metrics.json").read_text())
    assert (m0["fold_seed"], m5["fold_seed"], m5["train_config"]["seed"]) == (0, 0, 5)
    assert [(f["name"], f["test_speakers"]) for f in m5["folds"]] == [(f["name"], f["test_speakers"]) for f in m0["folds"]]
    drawn = make_folds("speaker", _rows(6), folds=3, seed=5)  # seed 5 alone deals the speakers otherwise
    assert [sorted({_rows(6)[i].speaker for i in f.test}) for f in drawn] != [
        sorted({_rows(6)[i].speaker for i in f.test}) for f in make_folds("speaker", _rows(6), folds=3, seed=0)]
    r = run_cli("-q", "evaluate", "--protocol", "loso", "--corpus", "emovo", "--fold-seed", "1", "--root", str(tmp_path))
    assert r.returncode == 1 and "--fold-seed goes with --protocol speaker or paper" in r.stderr.decode()


@pytest.mark.slow
def test_cv_pooled_metrics_match_predictions(cv_run):
    out, text = cv_run
    m = json.loads((out / "metrics.json").read_text())
    oof = csv_rows(out / "oof_predictions.csv")
    truth = [r["true"] for r in oof]
    for system in ("model", "baseline", "fusion"):
        rep = report(truth, [r[system] for r in oof], m["labels"])
        assert m[system]["ua"] == pytest.approx(rep["ua"]) and m[system]["confusion"] == rep["confusion"]
        ci = m[system]["ci"]
        assert ci["n_resamples"] == 1000 and ci["ua"]["low"] <= ci["ua"]["estimate"] <= ci["ua"]["high"]
        assert set(ci["f1"]) == set(CLASSES) and len(m[system]["per_speaker"]) == 6
        assert len(m["fold_summary"][system]["ua"]["values"]) == 3
    assert m["paired_ua"]["a"] == pytest.approx(m["model"]["ua"]) and m["paired_ua"]["b"] == pytest.approx(m["baseline"]["ua"])
    assert m["paired_fusion_model"]["a"] == pytest.approx(m["fusion"]["ua"])
    assert m["paired_ua_fusion"]["b"] == pytest.approx(m["baseline"]["ua"])
    # every actor has 1 neutral and 2 of each other class: the training majority is 'happy' (first of the tie)
    assert m["chance"]["ua"] == pytest.approx(0.25) and m["chance"]["wa"] == pytest.approx(12 / 42)
    assert all(f["baseline"]["c"] in m["baseline_config"]["c_grid"] for f in m["folds"])
    for line in ("model (AlexNet)", "baseline (eGeMAPS+SVM)", "fusion (model+baseline)", "chance (majority class)",
                 "paired bootstrap, UA(model) - UA(baseline)", "fusion: the mean of the model's calibrated probabilities",
                 "mean ± std over 3 folds", "per-class F1 [95% CI]"):
        assert line in text
    ua = m["model"]["ci"]["ua"]
    assert f"{ua['estimate']:.3f} [{ua['low']:.3f}, {ua['high']:.3f}]" in text
    names = {"class_distribution.png", "clips_per_class.png", "confusion_model.png", "confusion_baseline.png",
             "confusion_fusion.png", "training_curves.png", "per_class_f1.png"}
    assert {p.split("/")[-1] for p in m["plots"]} == names
    for n in names:
        assert (out / n).stat().st_size > 5000 and f"plot: {out / n}" in text


@pytest.mark.slow
def test_cv_fusion_is_each_folds_stored_model_and_svm_probabilities_averaged(cv_run):
    """The fused answer of every clip is the argmax of the mean of the two probability arrays its fold stored:
    the model's calibrated ones (as evaluated, and without adaptation) and the baseline SVM's (rows sum to 1)."""
    from emospec.baseline import fuse

    out, _ = cv_run
    m = json.loads((out / "metrics.json").read_text())
    rows = csv_rows(out / "oof_predictions.csv")
    fused = {Path(r["path"]).stem: (r["fusion"], r["fusion_unadapted"]) for r in rows}
    truth = {Path(r["path"]).stem: r["true"] for r in rows}
    for f in m["folds"]:
        rec = json.loads((out / f["name"] / "oof.json").read_text())
        svm = np.array(rec["baseline"]["probs"])
        assert svm.shape == (len(rec["test_ids"]), 4) and np.allclose(svm.sum(1), 1.0, atol=1e-4)
        for probs, col in ((rec["probs"], 0), (rec["probs_unadapted"], 1)):
            want = [m["labels"][k] for k in fuse(np.array(probs), svm).argmax(1)]
            assert [fused[i][col] for i in rec["test_ids"]] == want
        got = report([truth[i] for i in rec["test_ids"]], [fused[i][0] for i in rec["test_ids"]], m["labels"])
        assert f["fusion"]["ua"] == pytest.approx(got["ua"])
    assert m["fusion_unadapted"]["n"] == m["n_tested"] and "difference" in m["paired_ua_fusion_unadapted"]


@pytest.mark.slow
def test_cv_reports_the_models_calibration_with_and_without_its_temperature(cv_run):
    """Each fold's model carries the temperature fitted on its validation speakers run as without adaptation clips
    (the default recipe standardises per speaker); the pooled ECE / NLL are those of the folds' stored probabilities."""
    from emospec.calibration import T_RANGE, calibration_summary
    from emospec.checkpoint import load_model

    out, text = cv_run
    m = json.loads((out / "metrics.json").read_text())
    cal, probs, raw, plain, y = m["calibration"], [], [], [], []
    truth = {Path(r["path"]).stem: r["true"] for r in csv_rows(out / "oof_predictions.csv")}
    for f, t in zip(m["folds"], cal["temperatures"]):
        bundle = load_model(out / f["name"])
        assert float(bundle.model.temperature) == pytest.approx(t, rel=1e-6) and T_RANGE[0] <= t <= T_RANGE[1]
        meta = bundle.meta["calibration"]
        assert meta["temperature"] == pytest.approx(t) and "without their own statistics" in meta["fitted_on"]
        assert meta["after_unadapted"]["nll"] <= meta["before_unadapted"]["nll"] + 1e-9  # T = 1 was a candidate
        rec = json.loads((out / f["name"] / "oof.json").read_text())
        assert rec["temperature"] == pytest.approx(t)
        probs += rec["probs"]
        raw += rec["probs_uncalibrated"]
        plain += rec["probs_unadapted"]
        y += [m["labels"].index(truth[i]) for i in rec["test_ids"]]  # folds in turn, each fold's test clips in order
    assert cal["calibrated"] == pytest.approx(calibration_summary(np.array(probs), y), abs=1e-6)
    assert cal["uncalibrated"] == pytest.approx(calibration_summary(np.array(raw), y), abs=1e-6)
    assert cal["unadapted"] == pytest.approx(calibration_summary(np.array(plain), y), abs=1e-6)
    assert np.array_equal(np.argmax(probs, 1), np.argmax(raw, 1))  # the temperature never changes a prediction
    assert f"ECE {cal['uncalibrated']['ece']:.3f} -> {cal['calibrated']['ece']:.3f}" in text


@pytest.mark.slow
def test_cv_resume_reuses_folds(cv_run, subsets):
    """--resume keeps the trained folds; a changed baseline config refits only the baseline."""
    out, _ = cv_run
    before = {p: (out / p / "model.pt").stat().st_mtime_ns for p in ("fold_01", "fold_02", "fold_03")}
    m0 = json.loads((out / "metrics.json").read_text())
    args = ["-q", "evaluate", "--protocol", "speaker", "--corpus", "ravdess", "--root", str(subsets / "ravdess"),
            "--folds", "3", "--epochs", "1", "--out", str(out), "--resume", "--no-plots"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert {p: (out / p / "model.pt").stat().st_mtime_ns for p in before} == before
    m1 = json.loads((out / "metrics.json").read_text())
    assert m1["model"]["ua"] == m0["model"]["ua"] and m1["baseline"]["ci"] == m0["baseline"]["ci"]
    r = run_cli(*args, "--svm-kernel", "rbf")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert {p: (out / p / "model.pt").stat().st_mtime_ns for p in before} == before
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["model"]["ci"] == m0["model"]["ci"] and m2["baseline_config"]["kernel"] == "rbf"
    assert json.loads((out / "fold_01" / "oof.json").read_text())["baseline"]["config"]["kernel"] == "rbf"


@pytest.mark.slow
def test_reporting_a_trained_model_still_works(cv_run, subsets):
    out, _ = cv_run
    r = run_cli("-q", "evaluate", "--model", str(out / "fold_01"), "--corpus", "emovo", "--root", str(subsets / "emovo"),
                "--json", str(out / "emovo.json"))
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rep = json.loads((out / "emovo.json").read_text())
    assert rep["n"] == 16 and "ci" in rep
    assert f"UA (unweighted accuracy)  {rep['ua']:.3f} [" in r.stdout.decode()


@pytest.mark.slow
def test_cross_corpus(subsets, tmp_path):
    out = tmp_path / "xc"
    r = run_cli("-q", "evaluate", "--train", f"ravdess:{subsets / 'ravdess'}", "--test", f"emovo:{subsets / 'emovo'}",
                "--epochs", "1", "--out", str(out), "--no-plots")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["kind"] == "cross-corpus" and m["labels"] == CLASSES and m["n_train"] == 42
    part = m["tests"]["emovo"]
    assert part["n"] == 16 and part["n_speakers"] == 2 and part["model"]["n"] == 16 and "paired_ua" in part
    oof = csv_rows(out / "oof_predictions.csv")
    assert len(oof) == 16 and {r["corpus"] for r in oof} == {"emovo"}
    assert all(r["unadapted"] in CLASSES for r in oof)  # a per-speaker model: also the predictions without adaptation
    from emospec.metrics import unweighted_accuracy

    got = unweighted_accuracy([CLASSES.index(r["true"]) for r in oof], [CLASSES.index(r["unadapted"]) for r in oof])
    assert got == pytest.approx(part["unadapted"]["ua"])
    split = json.loads((out / "train_ravdess" / "split.json").read_text())
    assert all(i.startswith("03-01-") for i in split["train"] + split["val"])
    assert "=== test on emovo: 16 clips, 2 speakers ===" in r.stdout.decode()


def test_evaluate_usage_errors(tmp_path):
    r = run_cli("-q", "evaluate", "--protocol", "speaker")
    assert r.returncode == 1 and "--corpus" in r.stderr.decode()
    r = run_cli("-q", "evaluate", "--train", "ravdess")
    assert r.returncode == 1 and "--test" in r.stderr.decode()
    r = run_cli("-q", "evaluate", "--protocol", "speaker", "--corpus", "ravdess", "--set", "epoch=3", "--root", str(tmp_path))
    assert r.returncode == 1 and "epoch" in r.stderr.decode() and len(r.stderr.decode().strip().splitlines()) == 1


@pytest.mark.slow
def test_extra_training_corpus_joins_every_fold_and_is_never_tested(subsets, tmp_path):
    out = tmp_path / "extra"
    r = run_cli("-q", "evaluate", "--protocol", "speaker", "--corpus", "ravdess", "--root", str(subsets / "ravdess"),
                "--folds", "3", "--epochs", "1", "--extra-train", f"emovo:{subsets / 'emovo'}", "--set", "balance=corpus",
                "--set", "model.norm=speaker", "--out", str(out), "--no-plots")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert (m["n_clips"], m["n_tested"], m["n_speakers"], m["extra_train"]) == (42, 42, 6, {"emovo": 16})
    assert m["model_config"]["norm"] == "speaker" and m["train_config"]["balance"] == "corpus"
    assert {r["corpus"] for r in csv_rows(out / "oof_predictions.csv")} == {"ravdess"}
    emovo_ids = {f"{e}-{s}-{b}" for e in ("neu", "gio", "rab", "tri") for s in ("f1", "m1") for b in ("b1", "b2")}
    for f in m["folds"]:
        split = json.loads((out / f["name"] / "split.json").read_text())
        assert emovo_ids <= set(split["train"]) | set(split["val"]) and emovo_ids.isdisjoint(split["test"])
        assert len(split["train"]) + len(split["val"]) == 28 + 16
    from emospec.checkpoint import load_model
    from emospec.norm import POPULATION_KEY

    meta = load_model(out / "fold_01" / "model.pt").meta  # a per-speaker model keeps its training population's statistics
    assert len(meta[POPULATION_KEY]["mean"]) == 3 and meta[POPULATION_KEY]["frames"] > 0


@pytest.mark.slow
def test_cross_corpus_adapt_norm(subsets, tmp_path):
    out = tmp_path / "xc-adapt"
    r = run_cli("-q", "evaluate", "--train", f"ravdess:{subsets / 'ravdess'}", "--test", f"emovo:{subsets / 'emovo'}",
                "--epochs", "1", "--adapt-norm", "corpus", "--out", str(out), "--no-plots")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["model_config"]["norm"] == "corpus" and m["baseline_config"]["norm"] == "corpus"
    assert m["tests"]["emovo"]["n"] == 16
    r = run_cli("-q", "evaluate", "--train", "ravdess", "--test", "emovo", "--extra-train", "emovo")
    assert r.returncode == 1 and "--extra-train" in r.stderr.decode()
