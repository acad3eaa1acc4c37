"""The eGeMAPS + SVM baseline: openSMILE functionals, their cache, speaker-grouped C selection."""

from __future__ import annotations

import os

import numpy as np
import pytest

from emospec.baseline import N_FUNCTIONALS, BaselineConfig, egemaps_functionals, fit_svm, run_fold
from emospec.errors import ConfigError, DataError
from emospec.metrics import report

CLASSES = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry"}


@pytest.fixture(scope="module")
def subset(shared_data):
    """Three RAVDESS actors x four classes, statement 01: 14 clips each (42)."""
    rows = []
    for actor in ("01", "02", "03"):
        for p in sorted((shared_data / "ravdess" / f"Actor_{actor}").glob("*.flac")):
            _, _, emo, _, statement, _, _ = p.stem.split("-")
            if emo in CLASSES and statement == "01":
                rows.append((str(p), CLASSES[emo], f"ravdess_{actor}"))
    assert len(rows) == 42
    return rows


@pytest.fixture(scope="module")
def functionals(subset, tmp_path_factory):
    cache = tmp_path_factory.mktemp("egemaps") / "cache.npz"
    return egemaps_functionals([r[0] for r in subset], cache=cache, progress=False), cache


def test_functionals_are_88_opensmile_values(subset, functionals):
    import opensmile

    func, cache = functionals
    assert func.values.shape == (42, N_FUNCTIONALS) == (42, 88)
    assert np.isfinite(func.values).all() and func.ok.all() and func.problems == []
    assert func.n_computed == 42 and cache.exists()
    assert len(func.names) == 88 and "loudness_sma3_amean" in func.names
    # identical to openSMILE reading the 16 kHz file itself
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    direct = smile.process_file(subset[5][0]).to_numpy().reshape(-1)
    np.testing.assert_allclose(func.values[5], direct, rtol=1e-4, atol=1e-5)
    # emotions differ in loudness: angry clips are louder on average than sad ones for these actors
    loud = func.values[:, func.names.index("loudness_sma3_amean")]
    labels = np.array([r[1] for r in subset])
    assert loud[labels == "angry"].mean() > loud[labels == "sad"].mean()


def test_cache_is_reused_and_invalidated(subset, functionals, tmp_path):
    func, cache = functionals
    again = egemaps_functionals([r[0] for r in subset], cache=cache, progress=False)
    assert again.n_computed == 0
    np.testing.assert_array_equal(again.values, func.values)
    # a changed file (new mtime) is extracted again; a file that is not audio is a NaN row and one problem
    link = tmp_path / "clip.flac"
    link.write_bytes(open(subset[0][0], "rb").read())
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    paths = [r[0] for r in subset[:3]] + [str(link), str(junk)]
    first = egemaps_functionals(paths, cache=cache, progress=False)
    assert first.n_computed == 1  # the copy; the junk file fails
    assert not first.ok[4] and np.isnan(first.values[4]).all()
    assert len(first.problems) == 1 and "junk.wav" in first.problems[0]
    np.testing.assert_allclose(first.values[3], func.values[0])
    os.utime(link, ns=(1, 1))
    assert egemaps_functionals(paths, cache=cache, progress=False).n_computed == 1


def test_baseline_on_held_out_speaker(subset, functionals):
    func, _ = functionals
    labels = ["neutral", "happy", "angry", "sad"]
    y = np.array([labels.index(r[1]) for r in subset])
    spk = [r[2] for r in subset]
    train = np.flatnonzero(np.array(spk) != "ravdess_03")
    test = np.flatnonzero(np.array(spk) == "ravdess_03")
    cfg = BaselineConfig()
    fp = run_fold(func.values, y, spk, train, test, cfg)
    assert fp.y_pred.shape == (14,) and set(fp.y_pred.tolist()) <= {0, 1, 2, 3}
    assert fp.c in cfg.c_grid and set(fp.grid) == {f"{c:g}" for c in cfg.c_grid}
    assert fp.inner_ua == pytest.approx(max(fp.grid.values()))
    rep = report(y[test], fp.y_pred, labels)
    assert rep["n"] == 14 and 0.0 <= rep["ua"] <= 1.0
    # two training speakers: the inner CV is leave-one-speaker-out
    search = fit_svm(func.values[train], y[train], [spk[i] for i in train], cfg)
    assert search.n_splits_ == 2


def test_svm_separates_separable_classes():
    """Four Gaussian blobs in 88-d, six speakers, imbalanced: balanced SVM gets them all."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(4, 88))
    y = np.concatenate([np.full(n, k) for k, n in enumerate([10, 40, 40, 40])])
    X = centres[y] + rng.normal(0, 1, size=(len(y), 88))
    spk = [f"s{i % 6}" for i in range(len(y))]
    test = np.array([i for i in range(len(y)) if spk[i] == "s5"])
    train = np.array([i for i in range(len(y)) if spk[i] != "s5"])
    fp = run_fold(X, y, spk, train, test, BaselineConfig(kernel="rbf"))
    assert (fp.y_pred == y[test]).all()
    assert fit_svm(X[train], y[train], [spk[i] for i in train]).n_splits_ == 5


def test_bad_configs_and_data():
    with pytest.raises(ConfigError):
        BaselineConfig(kernel="poly")
    with pytest.raises(ConfigError):
        BaselineConfig(c_grid=(1.0, -1.0))
    with pytest.raises(DataError, match="speakers"):
        fit_svm(np.zeros((4, 88)), np.array([0, 1, 0, 1]), ["a"] * 4)
