"""emospec.train / experiment: loss falls on real clips; the run dir is complete and reloads.

The loss-falls run trains the paper's model (``RECIPES["paper"]``: no BatchNorm, so the first loss is chance);
the other runs follow the defaults (the default recipe) with a few epochs.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from emospec import audio, features
from emospec.checkpoint import load_model
from emospec.config import FeatureConfig, TrainConfig
from emospec.convergence import format_convergence
from emospec.errors import ConfigError, DataError
from emospec.recipe import RECIPES
from emospec.train import fit


@pytest.fixture(scope="module")
def real_feats(ravdess_clips):
    """Untrimmed default features of 8 real clips: the tests below slice fixed frames (50-250 is speech)."""
    feats = [features.extract(audio.load(p), FeatureConfig(trim_db=None)) for p in ravdess_clips]
    labels = ["neutral", "happy", "sad", "angry"] * 2  # emotions 01, 03, 04, 05 per actor
    classes = ["neutral", "happy", "angry", "sad"]
    return feats, np.array([classes.index(label) for label in labels]), classes


PAPER = RECIPES["paper"]


@pytest.fixture(scope="module")
def speech_run(ravdess_clips, real_feats, tmp_path_factory):
    """24 full-batch epochs of the paper's model on 2 s of speech from 8 real clips (one step an epoch);
    ``(result, run_dir)``."""
    _, y, classes = real_feats
    # 2 s of speech from each clip (frames 50-250 skip the leading silence); crop = clip, so
    # every epoch sees the same 8 inputs: one full-batch step per epoch.
    speech = [features.extract(audio.load(p), PAPER.features)[..., 50:250] for p in ravdess_clips]
    cfg = replace(PAPER.train, epochs=24, batch_size=8, lr=1e-4, crop_s=2.0, patience=100, seed=0, schedule="constant")
    run = tmp_path_factory.mktemp("speech") / "run"
    res = fit(speech, y, speech[:4], y[:4], classes, run, train_config=cfg, feature_config=PAPER.features,
              model_config=replace(PAPER.model_for(4), dropout=0.0), progress=False)
    return res, run


def test_loss_falls_on_a_few_real_clips(real_feats, speech_run):
    _, _, classes = real_feats
    res, run = speech_run
    losses = [h["train_loss"] for h in res.history]
    assert losses[0] == pytest.approx(np.log(4), abs=0.05)  # chance at the start
    assert losses[-1] < 0.7 * losses[0], losses
    for name in ("model.pt", "checkpoint.pt", "config.json", "labels.json", "norm_stats.json", "history.json", "versions.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "labels.json").read_text()) == classes
    versions = json.loads((run / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and "git_commit" in versions
    b = load_model(run)
    assert b.labels == classes and b.feature_config == PAPER.features
    # normalisation statistics travel with the model
    mean = torch.tensor(json.loads((run / "norm_stats.json").read_text())["mean_db"])
    assert torch.allclose(b.model.input_mean[..., 0], mean, atol=1e-4)


def test_label_smoothing_keeps_the_loss_above_the_entropy_of_the_smoothed_targets(ravdess_clips, real_feats, speech_run, tmp_path):
    """Label smoothing (Szegedy et al. 2016) trains on targets 1 - eps + eps/K for the true class and eps/K
    for the others, so no step's cross-entropy can fall below their entropy: 0.780 nats at eps 0.3, K 4.
    The unsmoothed run of the same 24 full-batch epochs goes below it; the smoothed one learns, but not below."""
    _, y, classes = real_feats
    eps, k = 0.3, 4
    hi, lo = 1 - eps + eps / k, eps / k
    floor = -(hi * np.log(hi) + (k - 1) * lo * np.log(lo))
    assert floor == pytest.approx(0.780, abs=1e-3)
    plain, _ = speech_run
    assert min(h["train_loss"] for h in plain.history) < floor - 0.05
    speech = [features.extract(audio.load(p), PAPER.features)[..., 50:250] for p in ravdess_clips]
    cfg = replace(PAPER.train, epochs=24, batch_size=8, lr=1e-4, crop_s=2.0, patience=100, seed=0, schedule="constant",
                  label_smoothing=eps)
    res = fit(speech, y, speech[:4], y[:4], classes, tmp_path / "ls", train_config=cfg, feature_config=PAPER.features,
              model_config=replace(PAPER.model_for(4), dropout=0.0), progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert min(losses) >= floor - 1e-4, losses
    assert losses[-1] < losses[0] - 0.2 and max(h["train_ua"] for h in res.history[-6:]) >= 0.75  # it still learns


def test_same_seed_same_result(real_feats, tmp_path):
    feats, y, classes = real_feats
    cfg = TrainConfig(epochs=2, batch_size=4, crop_s=0.5, seed=3)
    a = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "a", train_config=cfg, progress=False)
    b = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "b", train_config=cfg, progress=False)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    saved = load_model(tmp_path / "a")  # fit's defaults are the default recipe's model and features
    assert (saved.model.config, saved.feature_config) == (RECIPES["default"].model_for(4), FeatureConfig())


@contextlib.contextmanager
def _killed_after_checkpoint(monkeypatch, nth: int):
    """Inside: the run is killed (KeyboardInterrupt) right after its ``nth`` checkpoint, as history.json is about to be saved."""
    import emospec.train as T

    real_save_json, calls = T.save_json, {"history": 0}

    def crashing_save_json(path, obj):
        if str(path).endswith("history.json"):
            calls["history"] += 1
            if calls["history"] == nth:
                raise KeyboardInterrupt("simulated kill")
        return real_save_json(path, obj)

    monkeypatch.setattr(T, "save_json", crashing_save_json)
    with pytest.raises(KeyboardInterrupt):
        yield
    monkeypatch.setattr(T, "save_json", real_save_json)


def test_resume_continues_to_the_same_end(real_feats, tmp_path, monkeypatch):
    feats, y, classes = real_feats
    cfg = TrainConfig(epochs=3, batch_size=4, crop_s=0.5, seed=1, patience=100)
    ref = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "ref", train_config=cfg, progress=False)

    with _killed_after_checkpoint(monkeypatch, 2):  # right after the epoch-1 checkpoint (history.json is saved next)
        fit(feats, y, feats[:2], y[:2], classes, tmp_path / "part", train_config=cfg, progress=False)
    assert torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    res = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "part", train_config=cfg, progress=False, resume=True)
    assert [h["train_loss"] for h in res.history] == [h["train_loss"] for h in ref.history]
    assert [h["val_ua"] for h in res.history] == [h["val_ua"] for h in ref.history]


def test_single_class_is_a_clear_error(real_feats, tmp_path):
    feats, _, classes = real_feats
    with pytest.raises(DataError, match="single class"):
        fit(feats, np.zeros(len(feats), int), [], [], classes, tmp_path / "x", progress=False)


def test_history_records_training_accuracy_per_class_and_the_run_its_convergence(real_feats, speech_run):
    _, _, classes = real_feats
    res, run = speech_run
    hist = json.loads((run / "history.json").read_text())
    # one full batch of 8 crops (2 a class) per epoch: recall per class is k/2, UA their mean
    for h in hist:
        assert len(h["train_recall"]) == 4 and all(r in (0.0, 0.5, 1.0) for r in h["train_recall"])
        assert h["train_ua"] == pytest.approx(np.mean(h["train_recall"]))
    # it fits its 8 clips; at a constant rate full-batch steps swing between fitting 8 and 4 of them late on,
    # at a phase that depends on the CPU's float32 kernels (AVX-512 here: 1.0, 0.62, 0.62, 1.0, 0.75, 0.5)
    assert hist[0]["train_ua"] <= 0.5 and max(h["train_ua"] for h in hist[-6:]) >= 0.75
    conv = json.loads((run / "convergence.json").read_text())
    assert conv == res.convergence
    assert conv["epochs_run"] == 24 and conv["best_epoch"] == res.best_epoch + 1
    assert set(conv["train_recall_full"]) == set(classes)
    assert conv["final_train_loss"] == pytest.approx(np.median([h["train_loss"] for h in hist[-5:]]))
    assert conv["last_epoch_train_loss"] == pytest.approx(hist[-1]["train_loss"])


def test_convergence_measures_the_kept_models_loss_on_full_training_clips(ravdess_clips, real_feats, speech_run):
    from emospec.model import infer

    res, _ = speech_run
    _, y, _ = real_feats
    # speech_run trained on 2 s of speech from all 8 clips (<= TRAIN_CHECK_CLIPS: every one is re-scored)
    speech = [features.extract(audio.load(p), PAPER.features)[..., 50:250] for p in ravdess_clips]
    logits, _ = infer(res.model, speech)  # raw logits: the temperature is not part of the loss
    expected = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)))
    assert res.convergence["train_loss_full"] == pytest.approx(expected, rel=1e-5)
    recall = [float(np.mean(logits.argmax(1).numpy()[y == c] == c)) for c in range(4)]
    assert list(res.convergence["train_recall_full"].values()) == pytest.approx(recall)
    assert f"loss {expected:.3f} on full training clips" in format_convergence(res.convergence)


def test_fit_fits_the_temperature_on_its_validation_clips_and_the_model_file_carries_it(ravdess_clips, real_feats, speech_run):
    from emospec.calibration import nll
    from emospec.model import infer

    res, run = speech_run
    _, y, _ = real_feats
    cal, t = res.calibration, res.calibration["temperature"]
    assert cal["n_clips"] == 4 and t == pytest.approx(float(res.model.temperature))
    assert cal["fitted"] is (t != 1.0)
    saved = load_model(run)
    assert float(saved.model.temperature) == pytest.approx(t, rel=1e-6)
    assert saved.meta["calibration"] == cal and saved.meta["best_epoch"] == res.best_epoch  # the kept model's meta stays
    # speech_run validated on the first four clips' 2 s of speech
    val = [features.extract(audio.load(p), PAPER.features)[..., 50:250] for p in ravdess_clips[:4]]
    logits, _ = infer(res.model, val)
    assert cal["after"]["nll"] == pytest.approx(nll(logits, y[:4], t), abs=1e-5)
    assert cal["before"]["nll"] == pytest.approx(nll(logits, y[:4], 1.0), abs=1e-5)
    if cal["fitted"]:  # some of the four right, some wrong: t is the likelihood's optimum
        assert nll(logits, y[:4], t) <= min(nll(logits, y[:4], 1.0), nll(logits, y[:4], t * 1.1), nll(logits, y[:4], t / 1.1)) + 1e-9
    else:  # all four right (they are training clips too) or all wrong: nothing to fit
        assert t == 1.0 and len(set((logits.argmax(1).numpy() == y[:4]).tolist())) == 1


def _hist(losses, val_ua):
    return [{"epoch": i, "train_loss": loss, "train_ua": 0.5, "val_ua": v} for i, (loss, v) in enumerate(zip(losses, val_ua))]


def test_convergence_warns_when_validation_still_rises_at_the_last_epoch():
    from emospec.convergence import convergence

    rising = convergence(_hist(np.linspace(1.2, 0.6, 30), np.linspace(0.3, 0.6, 30)), epochs=30, patience=30,
                         labels=["a", "b"], train_recall_full=[1.0, 1.0])
    assert rising["best_epoch"] == 30 and rising["epochs_run"] == 30
    assert len(rising["warnings"]) == 1 and "best validation epoch is 30 of 30" in rising["warnings"][0]
    line = np.linspace(1.2, 0.6, 30)  # median of epochs 19-23 (before the last quarter, 7 epochs) -> of epochs 26-30
    assert rising["loss_drop_last_quarter"] == pytest.approx((line[20] - line[27]) / line[20])
    # a peak at epoch 20 of 30, full training fit: no warning
    peak = list(np.linspace(0.3, 0.8, 20)) + [0.7] * 10
    assert convergence(_hist([0.1] * 30, peak), epochs=30, patience=30, labels=["a", "b"],
                       train_recall_full=[0.95, 0.98])["warnings"] == []
    # early stopping ended it: the last epoch cannot be the best, and no budget warning
    assert convergence(_hist([0.1] * 12, [0.5] * 12), epochs=30, patience=8, labels=["a", "b"])["early_stopped"]


def test_one_epoch_whose_loss_jumps_does_not_make_the_final_training_loss():
    from emospec.convergence import FINAL_LOSS_EPOCHS, convergence

    # a run whose last epoch drew an unlucky batch (BatchNorm's batch statistics), as a RAVDESS fold did
    losses = list(np.linspace(1.3, 0.1, 95)) + [0.09, 0.08, 0.1, 0.07, 0.27]
    out = convergence(_hist(losses, np.linspace(0.3, 0.8, 100)), epochs=100, patience=100, labels=["a", "b"])
    assert FINAL_LOSS_EPOCHS == 5
    assert out["final_train_loss"] == pytest.approx(0.09) and out["last_epoch_train_loss"] == pytest.approx(0.27)
    assert out["loss_drop_last_quarter"] > 0.5  # still falling over the last quarter, the jump notwithstanding
    assert "final training loss 0.090" in format_convergence(out)


def test_convergence_warns_when_a_class_is_not_fit_on_its_own_training_clips():
    from emospec.convergence import convergence

    peak = list(np.linspace(0.3, 0.8, 20)) + [0.7] * 10
    out = convergence(_hist([0.7] * 30, peak), epochs=30, patience=30, labels=["neutral", "happy", "angry", "sad"],
                      train_recall_full=[0.97, 0.87, 0.87, 0.08])
    assert out["train_ua_full"] == pytest.approx(np.mean([0.97, 0.87, 0.87, 0.08]))
    assert len(out["warnings"]) == 2
    assert "best validation epoch 20 of 30) has a training-set UA of 0.70" in out["warnings"][0]
    assert out["warnings"][1].endswith("sad 0.08")

    averaged = [dict(h, swa_val_ua=0.6) if h["epoch"] >= 15 else h for h in _hist([0.7] * 30, peak)]
    swa = convergence(averaged, epochs=30, patience=30, labels=["a", "b"], train_recall_full=[0.5, 0.6], select="swa")
    assert (swa["kept_epoch"], swa["averaged_epochs"], swa["best_epoch"]) == (30, [16, 30], 20)
    assert "(weights averaged up to epoch 30 of 30) has a training-set UA of 0.55" in swa["warnings"][0]
    assert format_convergence(swa).startswith("weights of epochs 16-30 averaged (best validation epoch 20)")


def test_plateau_schedule_halves_the_rate_when_validation_stalls(real_feats, tmp_path):
    feats, y, classes = real_feats
    cfg = TrainConfig(epochs=4, batch_size=4, crop_s=0.5, seed=3, schedule="plateau", plateau_patience=1, lr=1e-3, patience=100)
    res = fit(feats, y, feats[:2], y[:2], classes, tmp_path / "p", train_config=cfg, progress=False)
    lrs = [h["lr"] for h in res.history]
    assert lrs[0] == pytest.approx(1e-3)
    assert all(b in (a, a / 2) for a, b in zip(lrs, lrs[1:]))  # only ever halved
    # ReduceLROnPlateau(mode="max", factor=0.5, patience=1), replayed on the recorded validation UA
    lr, best, bad, expected = 1e-3, -np.inf, 0, []
    for h in res.history:
        expected.append(lr)
        if h["val_ua"] > best * (1 + 1e-4) if best > 0 else h["val_ua"] > best:
            best, bad = h["val_ua"], 0
        else:
            bad += 1
        if bad > 1:
            lr, bad = lr / 2, 0
    assert lrs == pytest.approx(expected) and min(lrs) < 1e-3, lrs  # replayed, and it did halve


def test_select_last_keeps_the_final_epoch_not_the_best_validation_one(real_feats, tmp_path):
    from emospec.checkpoint import load_state

    feats, y, classes = real_feats
    cfg = TrainConfig(epochs=4, batch_size=4, crop_s=0.5, seed=2, patience=100, select="last")
    res = fit(feats, y, feats[:4], y[:4], classes, tmp_path / "last", train_config=cfg, progress=False)
    assert res.best_epoch == 3 and res.convergence["kept_epoch"] == 4 and res.convergence["select"] == "last"
    assert res.best_val_ua == res.history[-1]["val_ua"]  # the kept model's own validation UA, not the best one
    final = load_state(tmp_path / "last" / "checkpoint.pt")["model"]  # the weights after the last epoch
    kept = load_model(tmp_path / "last").model.state_dict()
    weights = [k for k in final if k != "temperature"]  # the kept model's temperature was fitted after the last epoch
    assert all(torch.equal(final[k], kept[k]) for k in weights)
    assert all(torch.equal(final[k], res.model.state_dict()[k].cpu()) for k in weights)
    assert float(kept["temperature"]) == pytest.approx(res.calibration["temperature"]) and float(final["temperature"]) == 1.0
    assert load_model(tmp_path / "last").meta["select"] == "last"


def test_selection_key_puts_every_epoch_that_fits_its_crops_before_every_one_that_does_not():
    from emospec.convergence import selection_key

    early, late, late_better = {"train_ua": 0.6, "val_ua": 0.8}, {"train_ua": 0.95, "val_ua": 0.7}, {"train_ua": 0.9, "val_ua": 0.75}
    assert selection_key(early, 0.0) > selection_key(late, 0.0)  # the default: validation UA alone
    assert selection_key(late, 0.9) > selection_key(early, 0.9)  # fit first, then validation UA
    assert selection_key(late_better, 0.9) > selection_key(late, 0.9) and selection_key(early, 0.9)[0] == 0
    assert selection_key({"train_ua": float("nan"), "val_ua": 0.5}, 0.9)[0] == 0
    with pytest.raises(ConfigError, match="select_min_train_ua"):
        TrainConfig(select_min_train_ua=1.5)


def test_select_min_train_ua_keeps_the_best_validation_epoch_among_those_that_fit_their_crops(real_feats, tmp_path):
    """The same training (same seed: the same epochs) twice: kept by validation UA alone (an early epoch here), then
    only among the epochs whose training-set UA on crops reached the run's highest; the kept model file is that epoch's."""
    import math

    from emospec.convergence import selection_key

    feats, y, classes = real_feats
    cfg = TrainConfig(epochs=12, batch_size=4, crop_s=2.0, lr=5e-3, seed=2, patience=100)
    plain = fit(feats, y, feats[4:], y[4:], classes, tmp_path / "plain", train_config=cfg, progress=False)
    train_ua = [h["train_ua"] for h in plain.history]
    cut = max(train_ua)
    fitted = fit(feats, y, feats[4:], y[4:], classes, tmp_path / "fit", progress=False,
                 train_config=replace(cfg, select_min_train_ua=cut))
    assert [h["train_ua"] for h in fitted.history] == train_ua  # the selection rule does not change training
    val = [h["val_ua"] for h in plain.history]
    assert plain.best_epoch == val.index(max(val)) and train_ua[plain.best_epoch] < cut  # validation alone keeps an unfit epoch
    keys = [selection_key(h, cut) for h in fitted.history]
    assert fitted.best_epoch == keys.index(max(keys)) and fitted.history[fitted.best_epoch]["train_ua"] >= cut
    assert fitted.best_val_ua == fitted.history[fitted.best_epoch]["val_ua"] and math.isfinite(fitted.best_val_ua)
    assert load_model(tmp_path / "fit").meta["best_epoch"] == fitted.best_epoch
    assert fitted.convergence["kept_epoch"] == fitted.best_epoch + 1 and plain.convergence["kept_epoch"] == plain.best_epoch + 1


def test_a_run_keeping_fit_epochs_only_resumes_to_the_same_kept_epoch(real_feats, tmp_path, monkeypatch):
    """Killed while its best epoch so far is one that does not fit its crops, the run resumes knowing that."""
    feats, y, classes = real_feats
    cfg = TrainConfig(epochs=12, batch_size=4, crop_s=2.0, lr=5e-3, seed=2, patience=100)
    plain = fit(feats, y, feats[4:], y[4:], classes, tmp_path / "plain", train_config=cfg, progress=False)
    cfg = replace(cfg, select_min_train_ua=max(h["train_ua"] for h in plain.history))
    ref = fit(feats, y, feats[4:], y[4:], classes, tmp_path / "ref", train_config=cfg, progress=False)
    kill = plain.best_epoch + 1  # right after the checkpoint of the epoch validation alone would keep (not fit)
    assert kill < ref.best_epoch
    with _killed_after_checkpoint(monkeypatch, kill + 1):
        fit(feats, y, feats[4:], y[4:], classes, tmp_path / "part", train_config=cfg, progress=False)
    res = fit(feats, y, feats[4:], y[4:], classes, tmp_path / "part", train_config=cfg, progress=False, resume=True)
    assert [h["val_ua"] for h in res.history] == [h["val_ua"] for h in ref.history]
    assert res.best_epoch == ref.best_epoch and load_model(tmp_path / "part").meta["best_epoch"] == ref.best_epoch


def test_select_last_trains_on_every_clip_without_validation(real_feats, tmp_path):
    from emospec.data.manifest import Utterance
    from emospec.errors import ConfigError
    from emospec.experiment import validation_split

    rows = [Utterance(f"{i}.wav", "x", str(i), f"s{i % 4}", "f", "neutral", "neutral") for i in range(8)]
    idx = np.arange(8)
    fit_idx, val_idx = validation_split(rows, idx, np.zeros(8, int), speaker_independent=True, fraction=0.0, seed=0)
    assert fit_idx.tolist() == idx.tolist() and val_idx.size == 0
    with pytest.raises(ConfigError, match="select='last'"):
        TrainConfig(val_fraction=0.0)  # nothing would choose the epoch
    feats, y, classes = real_feats
    res = fit(feats, y, [], [], classes, tmp_path / "all", progress=False,
              train_config=TrainConfig(epochs=2, batch_size=4, crop_s=0.5, val_fraction=0.0, select="last"))
    assert res.best_epoch == 1 and np.isnan(res.best_val_ua)



def test_precise_bn_leaves_the_plain_float32_statistics_of_the_epochs_crops(real_feats, tmp_path):
    """After an epoch every BatchNorm layer holds the mean and variance of its input over the epoch's crops,
    taken with the epoch's final weights in float32 (``precise_bn``); without it, training's lagging running average."""
    import copy

    from emospec.errors import ConfigError
    from emospec.model import batchnorm_layers, recalibrate_batchnorm

    feats, y, classes = real_feats
    speech = torch.stack([f[..., 50:250] for f in feats])  # crop = clip: the epoch's crops are these 8 inputs
    kept = {}
    for batches in (10, 0):
        cfg = TrainConfig(epochs=1, batch_size=8, crop_s=2.0, seed=0, patience=100, select="last", precise_bn=batches)
        kept[batches] = fit(list(speech), y, list(speech[:4]), y[:4], classes, tmp_path / f"pbn{batches}",
                            train_config=cfg, progress=False).model
    assert all(torch.equal(a, b) for a, b in zip(kept[10].parameters(), kept[0].parameters()))  # only statistics differ
    layers = batchnorm_layers(kept[10])
    assert len(layers) == 5  # the default model: BatchNorm after each conv
    with torch.no_grad():
        a = kept[10].features[0](kept[10].normalize(speech))  # conv1's output: bn0's input
    assert torch.allclose(layers[0].running_mean, a.mean((0, 2, 3)), atol=1e-4)
    assert torch.allclose(layers[0].running_var, a.var((0, 2, 3)), rtol=1e-3)  # update_bn keeps the unbiased variance
    stale = batchnorm_layers(kept[0])[0]
    assert (stale.running_mean - a.mean((0, 2, 3))).abs().max() > 0.1 * a.std()  # one step of momentum 0.1: far off
    again = copy.deepcopy(kept[0])  # recalibrating the stale model on the same crops gives the precise one, layer by layer
    assert recalibrate_batchnorm(again, [speech]) == 8
    for got, want in zip(batchnorm_layers(again), layers):
        assert torch.allclose(got.running_mean, want.running_mean, atol=1e-4)
        assert torch.allclose(got.running_var, want.running_var, rtol=1e-3)
    assert recalibrate_batchnorm(again, [speech[:4], speech[4:]]) == 8  # two equal batches: still the plain mean
    assert torch.allclose(batchnorm_layers(again)[0].running_mean, a.mean((0, 2, 3)), atol=1e-4)
    assert recalibrate_batchnorm(again, []) == 0
    with pytest.raises(ConfigError, match="precise_bn"):
        TrainConfig(precise_bn=-1)


def test_select_swa_keeps_the_average_of_the_late_epochs_with_its_own_statistics(real_feats, tmp_path, monkeypatch):
    """``select="swa"``: the kept weights are the mean of the weights after each epoch from ``swa_start`` on,
    with BatchNorm statistics re-estimated for those averaged weights; an interrupted run resumes to the same average."""
    from emospec.errors import ConfigError
    from emospec.model import batchnorm_layers

    feats, y, classes = real_feats
    speech = list(torch.stack([f[..., 50:250] for f in feats]))  # crop = clip: one full-batch step an epoch
    base = TrainConfig(epochs=4, batch_size=8, crop_s=2.0, seed=0, patience=100, schedule="constant", lr=1e-3)

    def run(name, **change):
        return fit(speech, y, speech[:4], y[:4], classes, tmp_path / name, train_config=replace(base, **change), progress=False)

    after3, after4 = (run(f"last{n}", epochs=n, select="last").model for n in (3, 4))  # the weights after epochs 3 and 4
    res = run("swa", select="swa", swa_start=0.5)  # epochs 3 and 4 (0-based 2, 3) join the average
    for name, got in res.model.named_parameters():
        want = (dict(after3.named_parameters())[name] + dict(after4.named_parameters())[name]) / 2
        assert torch.allclose(got, want, atol=1e-6), name
    assert not torch.allclose(res.model.features[0].weight, after4.features[0].weight)  # not the last epoch's weights
    with torch.no_grad():  # the average's own statistics, not either epoch's
        a = res.model.features[0](res.model.normalize(torch.stack(speech)))
    bn0 = batchnorm_layers(res.model)[0]
    assert torch.allclose(bn0.running_mean, a.mean((0, 2, 3)), atol=1e-4)
    assert torch.allclose(bn0.running_var, a.var((0, 2, 3)), rtol=1e-3)

    assert [("swa_val_ua" in h) for h in res.history] == [False, False, True, True]
    assert res.best_val_ua == res.history[-1]["swa_val_ua"]
    conv = res.convergence
    assert (conv["select"], conv["kept_epoch"], conv["averaged_epochs"]) == ("swa", 4, [3, 4])
    saved = load_model(tmp_path / "swa")
    assert (saved.meta["select"], saved.meta["swa_epochs"]) == ("swa", 2)
    assert all(torch.equal(v, res.model.state_dict()[k]) for k, v in saved.model.state_dict().items())

    with _killed_after_checkpoint(monkeypatch, 3):  # after epoch 3's checkpoint (one epoch averaged), then resumed
        run("part", select="swa", swa_start=0.5)
    resumed = fit(speech, y, speech[:4], y[:4], classes, tmp_path / "part", train_config=replace(base, select="swa", swa_start=0.5),
                  progress=False, resume=True)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(resumed.model.parameters(), res.model.parameters()))
    with pytest.raises(ConfigError, match="swa_start"):
        TrainConfig(select="swa", swa_start=1.0)


def test_ema_validates_chooses_and_keeps_the_moving_average_of_the_epochs_weights(real_feats, tmp_path, monkeypatch):
    """``ema=d``: after epoch k the kept weights are ``d * avg + (1 - d) * w_k`` (the first epoch's copied), the
    history's ``val_*`` are that average's and ``raw_val_*`` the weights'; an interrupted run resumes to the same."""
    from emospec.errors import ConfigError

    feats, y, classes = real_feats
    speech = list(torch.stack([f[..., 50:250] for f in feats]))  # crop = clip: one full-batch step an epoch
    base = TrainConfig(epochs=3, batch_size=8, crop_s=2.0, seed=0, patience=100, schedule="constant", lr=1e-3)

    def run(name, **change):
        return fit(speech, y, speech[:4], y[:4], classes, tmp_path / name, train_config=replace(base, **change), progress=False)

    w1, w2, w3 = (dict(run(f"last{n}", epochs=n, select="last").model.named_parameters()) for n in (1, 2, 3))
    res = run("ema", select="last", ema=0.5)
    for name, got in res.model.named_parameters():  # 0.5 * (0.5 * w1 + 0.5 * w2) + 0.5 * w3
        assert torch.allclose(got, 0.25 * w1[name] + 0.25 * w2[name] + 0.5 * w3[name], atol=1e-6), name
    assert not torch.allclose(res.model.features[0].weight, w3["features.0.weight"])
    first, *_ = res.history
    assert first["val_ua"] == first["raw_val_ua"] and abs(first["val_loss"] - first["raw_val_loss"]) < 1e-5  # a copy
    assert all({"val_ua", "raw_val_ua"} <= set(h) for h in res.history)
    assert load_model(tmp_path / "ema").meta["ema"] == 0.5

    best = run("ema-best", ema=0.5)  # select="best": the epoch whose average validated best
    assert best.best_val_ua == max(h["val_ua"] for h in best.history)
    assert best.convergence["kept_epoch"] == 1 + max(range(3), key=lambda e: (best.history[e]["val_ua"], -e))

    with _killed_after_checkpoint(monkeypatch, 2):  # after epoch 2's checkpoint, then resumed
        run("part", select="last", ema=0.5)
    resumed = fit(speech, y, speech[:4], y[:4], classes, tmp_path / "part", train_config=replace(base, select="last", ema=0.5),
                  progress=False, resume=True)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(resumed.model.parameters(), res.model.parameters()))
    for bad in ({"ema": 1.0}, {"ema": -0.1}, {"ema": 0.5, "select": "swa"}):
        with pytest.raises(ConfigError, match="ema"):
            TrainConfig(**bad)
