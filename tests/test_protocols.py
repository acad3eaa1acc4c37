"""Protocols: folds, recipes, and ``emospec evaluate`` end to end on tiny real subsets."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest

from conftest import run_cli
from corpus_fixtures import clip
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
def subsets(shared_data, tmp_path_factory):
    """Symlinked corpora: RAVDESS actors 01-06 (statement 01, repetition 01: 7 clips each, 42)
    and EMOVO f1, m1 (neutral, joy, anger, sadness; sentences b1, b2: 16 clips)."""
    root = tmp_path_factory.mktemp("corpora")
    for actor in range(1, 7):
        d = root / "ravdess" / f"Actor_{actor:02d}"
        d.mkdir(parents=True)
        for p in (shared_data / "ravdess" / f"Actor_{actor:02d}").glob("*.flac"):
            _, _, emo, _, statement, rep, _ = p.stem.split("-")
            if emo in ("01", "03", "04", "05") and statement == "01" and rep == "01":
                (d / p.name).symlink_to(p)
    for spk in ("f1", "m1"):
        d = root / "emovo" / spk
        d.mkdir(parents=True)
        for emo in ("neu", "gio", "rab", "tri"):
            for sent in ("b1", "b2"):
                (d / f"{emo}-{spk}-{sent}.flac").symlink_to(shared_data / "emovo" / spk / f"{emo}-{spk}-{sent}.flac")
    return root


@pytest.fixture(scope="module")
def cv_run(subsets, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "run"
    r = run_cli("-q", "evaluate", "--protocol", "speaker", "--corpus", "ravdess", "--root", str(subsets / "ravdess"),
                "--folds", "3", "--epochs", "1", "--resamples", "1000", "--out", str(out))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return out, r.stdout.decode()


def _oof(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_cv_every_clip_once_and_no_speaker_leak(cv_run, subsets):
    out, _ = cv_run
    m = json.loads((out / "metrics.json").read_text())
    assert (m["n_clips"], m["n_tested"], m["n_folds"], m["n_speakers"]) == (42, 42, 3, 6)
    oof = _oof(out / "oof_predictions.csv")
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
def test_cv_pooled_metrics_match_predictions(cv_run):
    out, text = cv_run
    m = json.loads((out / "metrics.json").read_text())
    oof = _oof(out / "oof_predictions.csv")
    truth = [r["true"] for r in oof]
    for system in ("model", "baseline"):
        rep = report(truth, [r[system] for r in oof], m["labels"])
        assert m[system]["ua"] == pytest.approx(rep["ua"]) and m[system]["confusion"] == rep["confusion"]
        ci = m[system]["ci"]
        assert ci["n_resamples"] == 1000 and ci["ua"]["low"] <= ci["ua"]["estimate"] <= ci["ua"]["high"]
        assert set(ci["f1"]) == set(CLASSES) and len(m[system]["per_speaker"]) == 6
        assert len(m["fold_summary"][system]["ua"]["values"]) == 3
    assert m["paired_ua"]["a"] == pytest.approx(m["model"]["ua"]) and m["paired_ua"]["b"] == pytest.approx(m["baseline"]["ua"])
    # every actor has 1 neutral and 2 of each other class: the training majority is 'happy' (first of the tie)
    assert m["chance"]["ua"] == pytest.approx(0.25) and m["chance"]["wa"] == pytest.approx(12 / 42)
    assert all(f["baseline"]["c"] in m["baseline_config"]["c_grid"] for f in m["folds"])
    for line in ("model (AlexNet)", "baseline (eGeMAPS+SVM)", "chance (majority class)", "paired bootstrap, UA(model) - UA(baseline)",
                 "mean ± std over 3 folds", "per-class F1 [95% CI]"):
        assert line in text
    ua = m["model"]["ci"]["ua"]
    assert f"{ua['estimate']:.3f} [{ua['low']:.3f}, {ua['high']:.3f}]" in text
    names = {"class_distribution.png", "clips_per_class.png", "confusion_model.png", "confusion_baseline.png",
             "training_curves.png", "per_class_f1.png"}
    assert {p.split("/")[-1] for p in m["plots"]} == names
    for n in names:
        assert (out / n).stat().st_size > 5000 and f"plot: {out / n}" in text


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
    oof = _oof(out / "oof_predictions.csv")
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
    assert {r["corpus"] for r in _oof(out / "oof_predictions.csv")} == {"ravdess"}
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


# --------------------------------------------------------------------------- named test sets
def _label_tree(root, speakers, seed):
    """A folder-per-label tree ``<Label>/<speaker>/<k>.wav``: 4 labels x ``speakers`` x 2 clips of 0.5 s noise."""
    for i, (lab, spk, k) in enumerate((lab, s, k) for lab in ("Neutral", "Happy", "Angry", "Sad") for s in speakers
                                      for k in range(2)):
        clip(root / lab / spk / f"{k}.wav", seconds=0.5, seed=seed + i)
    return root


def test_three_folder_test_sets_give_three_results(tmp_path):
    train = _label_tree(tmp_path / "train", ("s1", "s2", "s3", "s4"), 0)
    a, b = _label_tree(tmp_path / "A", ("x",), 100), _label_tree(tmp_path / "B", ("x",), 200)
    c = _label_tree(tmp_path / "other" / "A", ("x", "y"), 300)  # also called A: named C explicitly
    out = tmp_path / "xc"
    r = run_cli("-q", "evaluate", "--train", f"folder:{train}", "--test", f"folder:{a}", "--test", f"folder:{b}",
                "--test", f"C=folder:{c}", "--epochs", "1", "--baseline", "none", "--resamples", "50", "--no-plots",
                "--out", str(out))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["train"] == "train" and m["n_train"] == 32
    assert {k: (v["n"], v["n_speakers"]) for k, v in m["tests"].items()} == {"A": (8, 1), "B": (8, 1), "C": (16, 2)}
    text = r.stdout.decode()
    for name, n, spk in (("A", 8, 1), ("B", 8, 1), ("C", 16, 2)):
        assert text.count(f"=== test on {name}: {n} clips, {spk} speakers ===") == 1
    # each set keeps its own name in the predictions, so per-corpus statistics never pool two sets
    assert Counter(row["corpus"] for row in _oof(out / "oof_predictions.csv")) == {"A": 8, "B": 8, "C": 16}


def test_two_test_sets_with_one_name_are_an_error(tmp_path):
    for tests in ([f"folder:{tmp_path / 'A'}", f"folder:{tmp_path / 'x' / 'A'}"], ["emovo", "emovo:/elsewhere"],
                  [f"folder:{tmp_path / 'B'}", f"B=folder:{tmp_path / 'C'}"]):
        r = run_cli("-q", "evaluate", "--train", "ravdess", "--test", tests[0], "--test", tests[1], "--epochs", "1",
                    "--out", str(tmp_path / "never"))
        err = r.stderr.decode().strip()
        name = "emovo" if tests[0] == "emovo" else tests[0].rsplit("/", 1)[1]
        assert r.returncode == 1 and err == (f"emospec: error: --test: two data sets are named {name!r} ({tests[0]} and "
                                             f"{tests[1]}); name them apart with --test NAME=CORPUS:ROOT")
    assert not (tmp_path / "never").exists()
    r = run_cli("-q", "evaluate", "--train", "ravdess", "--test", "a b=emovo", "--epochs", "1")
    assert r.returncode == 1 and "data set name 'a b' must be letters" in r.stderr.decode()


# --------------------------------------------------------------------------- leave one corpus out
def test_leave_one_corpus_out_tests_each_corpus_with_a_model_of_the_others(tmp_path):
    a = _label_tree(tmp_path / "a", ("s1", "s2"), 0)             # 16 clips
    b = _label_tree(tmp_path / "b", ("s1", "s2", "s3"), 100)     # 24 clips
    c = _label_tree(tmp_path / "c", ("s1",), 200)                # 8 clips
    out = tmp_path / "loco"
    r = run_cli("-q", "evaluate", "--protocol", "loco", "--corpus", f"A=folder:{a}", "--corpus", f"B=folder:{b}",
                "--corpus", f"C=folder:{c}", "--epochs", "1", "--baseline", "none", "--resamples", "50", "--out", str(out))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["kind"] == "loco" and m["corpora"] == ["A", "B", "C"] and m["labels"] == CLASSES
    sizes = {"A": 16, "B": 24, "C": 8}
    for name, h in m["held_out"].items():
        assert h["n"] == sizes[name] and h["n_train"] == sum(sizes.values()) - sizes[name]
        assert h["train"] == "+".join(k for k in sizes if k != name)
        assert Counter(row["corpus"] for row in _oof(out / f"held_out_{name}" / "oof_predictions.csv")) == {name: sizes[name]}
        assert (out / f"held_out_{name}" / f"confusion_model_{name}.png").read_bytes()[:4] == b"\x89PNG"  # per held-out corpus
    assert m["mean_ua"]["model"] == pytest.approx(sum(h["model"]["ua"] for h in m["held_out"].values()) / 3)
    assert (out / "loco_ua.png").read_bytes()[:4] == b"\x89PNG"
    text = r.stdout.decode()
    assert "Leave one corpus out: A, B, C" in text and "mean UA over held-out corpora: model" in text
    for name in sizes:
        assert sum(line.startswith(f"{name} ") for line in text.splitlines()) == 1


def test_the_loco_table_says_how_test_clips_were_standardised():
    from emospec.protocol_report import loco_text

    part = {"ua": 0.5, "ci": {"ua": {"low": 0.4, "high": 0.6}},
            "per_class": {c: {"recall": 0.5} for c in CLASSES}}
    held = {"A": {"n": 8, "model": part, "unadapted": part}}
    summary = {"corpora": ["A", "B"], "labels": CLASSES, "held_out": held, "mean_ua": {"model": 0.5}}
    speaker = loco_text({**summary, "model_config": {"norm": "speaker"}})
    assert "model: each test speaker standardised with their own unlabelled clips; no adaptation: with the training" in speaker
    utterance = loco_text({**summary, "held_out": {"A": {"n": 8, "model": part}}, "model_config": {"norm": "utterance"}})
    assert "model: each clip standardised with its own statistics alone\n" in utterance + "\n"
    assert "own unlabelled clips" not in utterance and "no adaptation:" not in utterance
    moved = loco_text({**summary, "held_out": {"A": {"n": 8, "model": part, "unadapted": {**part, "clip_weight": 0.75}},
                                              "B": {"n": 8, "model": part, "unadapted": {**part, "clip_weight": 0.0}}},
                       "model_config": {"norm": "speaker"}})
    assert "each clip moved towards its own statistics by the weight chosen on the validation speakers (A 0.75, B 0)" in moved
    assert "towards its own" not in speaker


@pytest.mark.slow
def test_leave_one_corpus_out_with_the_baseline_on_real_clips(subsets, tmp_path):
    out = tmp_path / "loco-real"
    r = run_cli("-q", "evaluate", "--protocol", "loco", "--corpus", f"ravdess:{subsets / 'ravdess'}",
                "--corpus", f"emovo:{subsets / 'emovo'}", "--epochs", "1", "--out", str(out), "--no-plots")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert {k: (h["n"], h["n_train"]) for k, h in m["held_out"].items()} == {"ravdess": (42, 16), "emovo": (16, 42)}
    for h in m["held_out"].values():  # model and baseline on the same clips, with the paired difference
        assert h["model"]["n"] == h["baseline"]["n"] == h["n"]
        assert h["paired_ua"]["low"] <= h["paired_ua"]["difference"] <= h["paired_ua"]["high"]
        assert h["unadapted"]["n"] == h["n"] and "difference" in h["paired_ua_unadapted"]
    assert set(m["mean_ua"]) == {"model", "unadapted", "baseline"}
    # "no adaptation" is what a user gets from the saved model on the raw clips, no adaptation clips given
    from emospec.predict import load

    clips = sorted((subsets / "emovo").rglob("*.flac"))
    truth = [{"neu": "neutral", "gio": "happy", "rab": "angry", "tri": "sad"}[p.name[:3]] for p in clips]
    got = [p.label for p in load(out / "held_out_emovo" / "train_ravdess").predict_batch(clips)]
    assert m["held_out"]["emovo"]["unadapted"]["ua"] == pytest.approx(report(truth, got, m["labels"])["ua"])
    from emospec.checkpoint import load_model  # the clip weight that run used is the one its model file runs with
    from emospec.norm import CLIP_WEIGHT_KEY, CLIP_WEIGHTS

    saved = load_model(out / "held_out_emovo" / "train_ravdess").meta
    assert m["held_out"]["emovo"]["unadapted"]["clip_weight"] == saved[CLIP_WEIGHT_KEY] in CLIP_WEIGHTS


def test_leave_one_corpus_out_usage_errors(tmp_path):
    r = run_cli("-q", "evaluate", "--protocol", "loco", "--corpus", "ravdess")
    assert r.returncode == 1 and "two or more --corpus" in r.stderr.decode()
    r = run_cli("-q", "evaluate", "--protocol", "speaker", "--corpus", "ravdess", "--corpus", "emovo")
    assert r.returncode == 1 and "two or more --corpus" in r.stderr.decode()
    r = run_cli("-q", "evaluate", "--protocol", "loco", "--corpus", "ravdess", "--corpus", "ravdess")
    assert r.returncode == 1 and "ravdess" in r.stderr.decode() and len(r.stderr.decode().strip().splitlines()) == 1


def test_cross_corpus_trains_on_several_corpora_together(tmp_path):
    a, b = _label_tree(tmp_path / "a", ("s1", "s2"), 0), _label_tree(tmp_path / "b", ("s1", "s2", "s3"), 100)
    c = _label_tree(tmp_path / "c", ("s1",), 200)
    out = tmp_path / "ab-to-c"
    r = run_cli("-q", "evaluate", "--train", f"A=folder:{a}", "--train", f"B=folder:{b}", "--test", f"C=folder:{c}",
                "--epochs", "1", "--baseline", "none", "--resamples", "50", "--no-plots", "--out", str(out), "--set", "balance=corpus")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert (m["train"], m["n_train"], m["tests"]["C"]["n"], m["train_config"]["balance"]) == ("A+B", 40, 8, "corpus")
    r = run_cli("-q", "evaluate", "--train", f"A=folder:{a}", "--train", f"C=folder:{b}", "--test", f"C=folder:{c}", "--epochs", "1")
    assert r.returncode == 1 and "named 'C'" in r.stderr.decode() and len(r.stderr.decode().strip().splitlines()) == 1
