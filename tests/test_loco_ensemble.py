"""benchmarks/loco_ensemble.py: each run's models as a user runs them without adaptation, and their average."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark_scripts import load_benchmark
from emospec.checkpoint import save_model
from emospec.config import FeatureConfig, ModelConfig
from emospec.features import extract
from emospec.metrics import unweighted_accuracy
from emospec.model import EmoAlexNet
from emospec.norm import POPULATION_KEY, group_stats
from emospec.predict import load

LABELS = ["neutral", "happy", "angry", "sad"]
FC = FeatureConfig(n_mels=64, top_db=80.0)


def _script():
    return load_benchmark("loco_ensemble")


def _model(norm: str, seed: int) -> EmoAlexNet:
    torch.manual_seed(seed)
    m = EmoAlexNet(config=ModelConfig(n_mels=64, batch_norm=True, norm=norm)).eval()
    with torch.no_grad():
        m.classifier[4].weight.mul_(40.0)  # confident, varied answers from random weights
    return m


@pytest.mark.parametrize("layout", ["loco", "cross"])
def test_each_model_runs_as_without_adaptation_and_the_ensemble_averages_probabilities(tmp_path, layout):
    """``loco``: each run's ``held_out_x/train_a+b``; ``cross``: a cross-corpus run's one ``train_a+b`` model
    tested on x and on z (two test sets in one ``oof_predictions.csv``, z in one run only: not averaged)."""
    rng = np.random.default_rng(0)
    paths, truth = [], []
    for i in range(12):
        t = np.arange(int(16000 * (0.5 + 0.1 * i))) / 16000
        wave = (0.05 + 0.3 * (i % 3)) * np.sin(2 * np.pi * (120 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[-1], wave.astype(np.float32), 16000)
        truth.append(LABELS[i % 4])
    feats = [extract(torch.from_numpy(sf.read(p, dtype="float32")[0]), FC) for p in paths]
    pop = group_stats([f + 6.0 for f in feats])  # a training population 6 dB louder than these clips
    models = {"spk": (_model("speaker", 1), {POPULATION_KEY: {"mean": pop.mean.tolist(), "std": pop.std.tolist()}}),
              "utt": (_model("utterance", 2), {})}
    model_dirs = {}
    for run, (model, meta) in models.items():
        held = tmp_path / run / "held_out_x" if layout == "loco" else tmp_path / run
        model_dirs[run] = held / "train_a+b"
        save_model(model_dirs[run] / "model.pt", model, FC, LABELS, meta)
        with (held / "oof_predictions.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "corpus", "speaker", "fold", "true", "model", "baseline"])
            for p, y in zip(paths, truth):
                w.writerow([str(p), "x", "s1", "train_a+b", y, "neutral", y if y != "sad" else "happy"])
            if layout == "cross" and run == "spk":  # a second test set, without a baseline (--baseline none)
                w.writerow([str(paths[0]), "z", "s9", "train_a+b", "sad", "sad", ""])
    out = tmp_path / "ens.json"
    assert _script().main([str(tmp_path / "spk"), str(tmp_path / "utt"), "--resamples", "50", "--out", str(out)]) == 0
    assert list(json.loads(out.read_text())["held_out"]) == ["x"]
    res = json.loads(out.read_text())["held_out"]["x"]

    y = [LABELS.index(t) for t in truth]
    scores = {}
    for run in models:  # what `emospec.load(model).predict_batch(paths)` answers, with no adaptation clips
        got = load(model_dirs[run] / "model.pt", device="cpu").predict_batch([str(p) for p in paths])
        scores[run] = np.array([[g.scores[c] for c in LABELS] for g in got])
        assert res["single_ua"][str(tmp_path / run)] == pytest.approx(unweighted_accuracy(y, scores[run].argmax(1)))
    assert not np.array_equal(scores["spk"].argmax(1), scores["utt"].argmax(1))  # two different answers to average
    mean = (scores["spk"] + scores["utt"]) / 2
    assert res["ensemble_ua"] == pytest.approx(unweighted_accuracy(y, mean.argmax(1)))
    assert res["baseline_ua"] == pytest.approx(0.75)  # sad always called happy
    assert res["paired_vs_baseline"]["difference"] == pytest.approx(res["ensemble_ua"] - 0.75)


def test_models_with_another_class_order_are_not_averaged(tmp_path):
    wave = (0.3 * np.sin(2 * np.pi * 200 * np.arange(8000) / 16000)).astype(np.float32)
    sf.write(tmp_path / "c.wav", wave, 16000)
    for run, labels in (("a", LABELS), ("b", LABELS[::-1])):
        held = tmp_path / run / "held_out_x"
        save_model(held / "train_y" / "model.pt", _model("utterance", 3), FC, labels, {})
        (held / "oof_predictions.csv").write_text(f"path,corpus,speaker,fold,true,model\n{tmp_path / 'c.wav'},x,s,f,sad,sad\n")
    with pytest.raises(SystemExit, match="classes .* differ"):
        _script().main([str(tmp_path / "a"), str(tmp_path / "b")])


def test_a_run_without_held_out_folders_or_one_model_is_a_clear_error(tmp_path):
    for name in ("a", "b"):
        save_model(tmp_path / "run" / f"train_{name}" / "model.pt", _model("utterance", 3), FC, LABELS, {})
    (tmp_path / "run" / "oof_predictions.csv").write_text("path,corpus,speaker,fold,true,model\n")
    with pytest.raises(SystemExit, match="one train_\\*/model.pt \\(found 2\\)"):
        _script().main([str(tmp_path / "run")])
