"""benchmarks/window_average.py: whole clips vs the average over crop-length windows, for a saved model."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark_scripts import load_benchmark
from emospec.checkpoint import save_model
from emospec.config import FeatureConfig, ModelConfig
from emospec.features import extract
from emospec.model import EmoAlexNet
from emospec.norm import POPULATION_KEY, fold_into_model, group_stats

LABELS = ["neutral", "happy", "angry", "sad"]
FC = FeatureConfig(n_mels=64, top_db=60.0)


def _script():
    return load_benchmark("window_average")


def test_window_starts_cover_the_clip_and_end_at_its_end():
    starts = _script().window_starts
    assert starts(150, 200, 50) == [0] and starts(200, 200, 50) == [0]  # no longer than a window: the whole clip
    assert starts(300, 200, 50) == [0, 50, 100]
    assert starts(320, 200, 50) == [0, 50, 100, 120]  # the last window ends at the last frame


def test_whole_clip_and_window_average_as_defined(tmp_path):
    mod = _script()
    rng = np.random.default_rng(0)
    torch.manual_seed(3)
    model = EmoAlexNet(config=ModelConfig(n_mels=64, batch_norm=True, norm="speaker")).eval()
    with torch.no_grad():
        model.classifier[4].weight.mul_(40.0)  # confident, varied answers from random weights
    rows, feats = [], []
    for i in range(8):  # 0.5 ... 4.0 s: short clips are one window, long ones several
        t = np.arange(int(16000 * (0.5 + 0.5 * i))) / 16000
        wave = (0.05 + 0.2 * (i % 3)) * np.sin(2 * np.pi * (150 + 60 * i) * t) + 0.01 * rng.standard_normal(t.size)
        path = tmp_path / f"c{i}.wav"
        sf.write(path, wave.astype(np.float32), 16000)
        feats.append(extract(torch.from_numpy(sf.read(path, dtype="float32")[0]), FC))
        rows.append({"path": str(path), "speaker": f"s{i % 2}", "true": LABELS[i % 4]})
    pop = group_stats([f + 3.0 for f in feats])
    run = tmp_path / "fold_01"
    save_model(run / "model.pt", model, FC, LABELS, {POPULATION_KEY: {"mean": pop.mean.tolist(), "std": pop.std.tolist()}})
    (run / "config.json").write_text(json.dumps({"train": {"crop_s": 2.0}}))
    with torch.no_grad():  # the run's own answers: each speaker's statistics folded in, whole clips
        for r in rows:
            idx = [j for j, q in enumerate(rows) if q["speaker"] == r["speaker"]]
            own = fold_into_model(model, group_stats([feats[j] for j in idx]))
            r["pred"] = LABELS[int(own(feats[rows.index(r)][None]).argmax())]
    with (run / "predictions.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "speaker", "true", "pred"])
        w.writeheader()
        w.writerows(rows)

    res = mod.score(run, hop_s=0.5, resamples=50)
    assert res["speaker"]["agrees_with_run"] == 1.0  # the whole-clip path reproduces the run's answers

    # the window average by hand for the longest clip (4.0 s = 401 frames: windows at 0, 50, ..., 200, 201)
    own = fold_into_model(model, group_stats([feats[j] for j in range(8) if j % 2 == 1]))
    x = feats[7]
    assert x.shape[-1] == 401
    with torch.no_grad():
        by_hand = torch.stack([torch.softmax(own(x[None, ..., s:s + 200]), 1)[0] for s in (0, 50, 100, 150, 200, 201)]).mean(0)
    whole, avg = mod.whole_and_windows(own, [feats[j] for j in range(8) if j % 2 == 1], 200, 50)
    assert avg[-1] == pytest.approx(by_hand.numpy(), abs=1e-5)
    assert not np.allclose(whole[-1], avg[-1], atol=1e-3)  # a long clip's average differs from its whole-clip answer
    assert whole[0] == pytest.approx(avg[0], abs=1e-6)  # a 1.0 s clip is one window: the same answer

    # two runs pooled (here two copies of one folder): the pooled figures are those of all the clips together
    shutil.copytree(run, tmp_path / "fold_02")
    out = tmp_path / "w.json"
    assert mod.main([str(run), str(tmp_path / "fold_02"), "--resamples", "50", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    one, pooled = got[str(run)]["speaker"], got["pooled"]["speaker"]
    assert pooled["n"] == 2 * one["n"] == 16
    assert pooled["whole_ua"] == pytest.approx(one["whole_ua"]) and pooled["windows_ua"] == pytest.approx(one["windows_ua"])
    assert set(got["pooled"]) == {"speaker", "unadapted"}
