"""benchmarks/fusion.py: the model's saved probabilities averaged with an eGeMAPS + SVM on the same folds."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from benchmark_scripts import load_benchmark
from conftest import SR, noise, sine

LABELS = ["neutral", "happy", "angry", "sad"]
TONE = {"neutral": (180.0, 0.05), "happy": (320.0, 0.2), "angry": (500.0, 0.6), "sad": (120.0, 0.02)}
"""Each class a pitch (Hz) and a level: functionals that a linear SVM separates."""


def _finished_run(root, model_probs, with_baseline=True):
    """A two-fold 'finished evaluation' of 4 speakers x 4 classes x 3 clips: oof_predictions.csv and fold folders."""
    run = root / "run"
    rows, k = [], 0
    for s in range(4):
        for label in LABELS:
            for j in range(3):
                f0, amp = TONE[label]
                path = root / "clips" / f"s{s}_{label}_{j}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, sine(f0 * (1 + 0.03 * j + 0.02 * s), 1.0, amp=amp) + noise(1.0, amp=0.003, seed=k), SR)
                rows.append({"path": str(path), "corpus": "synth", "speaker": f"synth_{s}", "fold": f"fold_0{1 + s // 2}",
                             "true": label, "model": "", "baseline": "", "unadapted": ""})
                k += 1
    run.mkdir()
    for fold in ("fold_01", "fold_02"):
        test = [i for i, r in enumerate(rows) if r["fold"] == fold]
        (run / fold).mkdir()
        (run / fold / "labels.json").write_text(json.dumps(LABELS))
        oof = {"test_ids": [f"s{i // 12}_{rows[i]['true']}_{i % 3}" for i in test], "probs": [model_probs(rows[i]) for i in test],
               "baseline": {"c": 1.0, "pred": [0] * len(test)} if with_baseline else None, "n_train": 48 - len(test)}
        (run / fold / "oof.json").write_text(json.dumps(oof))
    for r in rows:
        r["model"] = LABELS[int(np.argmax(model_probs(r)))]
        r["baseline"] = "neutral" if with_baseline else ""
    with (run / "oof_predictions.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return run


def test_fuse_is_the_weighted_mean_of_two_probability_arrays():
    fusion = load_benchmark("fusion")
    a = np.array([[0.7, 0.3], [0.2, 0.8]])
    b = np.array([[0.1, 0.9], [0.6, 0.4]])
    np.testing.assert_allclose(fusion.fuse(a, b), [[0.4, 0.6], [0.4, 0.6]])
    np.testing.assert_allclose(fusion.fuse(a, b, 0.0), a)
    np.testing.assert_allclose(fusion.fuse(a, b, 1.0), b)
    with pytest.raises(ValueError, match="shape"):
        fusion.fuse(a, b[:1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fusion.fuse(a, b, 1.5)


def test_an_uninformative_model_leaves_the_svm_s_answers_and_a_confident_one_keeps_its_own(tmp_path):
    fusion = load_benchmark("fusion")
    flat = _finished_run(tmp_path, lambda r: [0.25] * 4)
    res = fusion.run_fusion(flat)
    assert len(res["y"]) == 48 and res["c"] == {"fold_01": 1.0, "fold_02": 1.0}
    np.testing.assert_array_equal(res["fusion"], res["svm"])  # 0.5 * 0.25 + 0.5 * p: the SVM decides alone
    assert (res["model"] == 0).all() and (res["baseline"] == 0).all()  # the csv's columns, read back
    s = fusion.summary(res, resamples=200)
    assert s["svm"]["ua"] >= 0.9  # pitch and level separate the tones: the SVM was fitted on the other fold's speakers
    assert s["model"]["ua"] == 0.25 and s["fusion"]["ua"] == s["svm"]["ua"]
    assert s["fusion_vs_model"]["difference"] == pytest.approx(s["fusion"]["ua"] - 0.25)
    assert s["fusion_vs_baseline"]["low"] > 0
    assert fusion.main([str(flat), "--resamples", "200", "--out", str(tmp_path / "out" / "fusion.json")]) == 0
    saved = json.loads((tmp_path / "out" / "fusion.json").read_text())
    assert saved["fusion"]["ua"] == s["fusion"]["ua"] and saved["c"] == {"fold_01": 1.0, "fold_02": 1.0}
    assert (flat / "egemaps_fusion.npz").exists()  # the functionals' cache, beside the run by default

    confident = _finished_run(tmp_path / "b", lambda r: [0.97 if c == "sad" else 0.01 for c in LABELS])
    res = fusion.run_fusion(confident)
    assert (res["fusion"] == LABELS.index("sad")).all()  # 0.5 * 0.97 outweighs any calibrated SVM's 0.5 * p


def test_a_run_without_its_baseline_needs_the_training_corpora(tmp_path):
    fusion = load_benchmark("fusion")
    run = _finished_run(tmp_path, lambda r: [0.25] * 4, with_baseline=False)
    with pytest.raises(SystemExit, match="give --train"):
        fusion.run_fusion(run)


def test_a_run_whose_folds_trained_on_clips_the_file_lacks_is_refused(tmp_path):
    fusion = load_benchmark("fusion")
    run = _finished_run(tmp_path, lambda r: [0.25] * 4)
    oof = json.loads((run / "fold_02" / "oof.json").read_text())
    (run / "fold_02" / "oof.json").write_text(json.dumps({**oof, "n_train": 40}))  # e.g. an --extra-train corpus
    with pytest.raises(SystemExit, match="trained on 40 clips.*holds 24 others"):
        fusion.run_fusion(run)


def test_a_clip_opensmile_cannot_read_stops_the_run_naming_it(tmp_path):
    fusion = load_benchmark("fusion")
    run = _finished_run(tmp_path, lambda r: [0.25] * 4)
    bad = tmp_path / "clips" / "s3_sad_2.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(SystemExit, match="s3_sad_2.wav"):
        fusion.run_fusion(run)


def test_no_run_or_a_label_outside_the_model_s_classes_is_one_line(tmp_path):
    fusion = load_benchmark("fusion")
    with pytest.raises(SystemExit, match="fusion: .*oof_predictions.csv: not found"):
        fusion.main([str(tmp_path / "nothing")])
    run = _finished_run(tmp_path, lambda r: [0.25] * 4)
    text = (run / "oof_predictions.csv").read_text()
    (run / "oof_predictions.csv").write_text(text.replace(",sad,", ",calm,", 1))
    with pytest.raises(SystemExit, match=r"labels \['calm'\] are not the model's classes"):
        fusion.run_fusion(run)
