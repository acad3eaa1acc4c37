"""Several corpora at once: named test sets, leave one corpus out, training on several corpora together."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import run_cli
from corpus_fixtures import clip, csv_rows
from emospec.metrics import report

CLASSES = ["neutral", "happy", "angry", "sad"]


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
    assert Counter(row["corpus"] for row in csv_rows(out / "oof_predictions.csv")) == {"A": 8, "B": 8, "C": 16}


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
        assert Counter(row["corpus"] for row in csv_rows(out / f"held_out_{name}" / "oof_predictions.csv")) == {name: sizes[name]}
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
        assert h["fusion_unadapted"]["n"] == h["n"] and "difference" in h["paired_fusion_unadapted_model"]
    assert set(m["mean_ua"]) == {"model", "unadapted", "baseline", "fusion", "fusion_unadapted"}
    text = r.stdout.decode()
    fused = m["held_out"]["emovo"]["fusion_unadapted"]["ci"]["ua"]
    assert "fusion, no adaptation" in text and f"{fused['estimate']:.3f} [{fused['low']:.3f}, {fused['high']:.3f}]" in text
    cal = m["held_out"]["emovo"]["calibration"]  # the temperature's effect without adaptation clips, per held-out corpus
    assert (f"  {'emovo':<12} T {cal['temperatures'][0]:.2f}: ECE {cal['unadapted_uncalibrated']['ece']:.3f} -> "
            f"{cal['unadapted']['ece']:.3f}, mean top probability") in text
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
