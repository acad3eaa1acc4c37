"""Train-and-test on one split: the unit every protocol (demo, train, CV) is built from.

:func:`train_on` is the one "train on these speakers" step: it carves a
validation set out of the training side (:func:`validation_split`: whole
speakers for speaker-independent splits, a stratified 10 % otherwise),
standardises the features as ``ModelConfig.norm`` says and trains with
:func:`emospec.train.fit`. :func:`run_split` takes features already computed
for a manifest, a train/test split, and configs; it trains with
:func:`train_on`, tests on full-length clips and writes ``metrics.json``,
``report.txt``, ``split.json`` and ``predictions.csv`` into the run directory.
``emospec train --protocol all`` and ``scripts/train_bundled.py`` call
:func:`train_on` alone (nothing to test).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from . import distributed
from .augment import AUGMENT_VERSION, VOICE_VERSION, augmented_features, contrast_versions, standardised_versions, voice_features
from .bootstrap import bootstrap_ci
from .calibration import calibration_summary, fit_temperature, fittable
from .checkpoint import load_model, save_model
from .config import FeatureConfig, ModelConfig, TrainConfig
from .data.manifest import Utterance
from .data.splits import paper_split, speaker_holdout
from .files import atomic_write_bytes, save_json
from .metrics import format_report, report
from .model import infer
from .norm import (
    CLIP_WEIGHT_KEY,
    choose_clip_weight,
    inference_model,
    normalize_for,
    population_meta,
    population_stats,
    population_versions,
    raw_inputs,
    skewed_subset_versions,
)
from .train import FitResult, fit

__all__ = ["SplitResult", "Trained", "run_split", "train_on", "unadapted_calibration", "validation_split"]


@dataclass
class SplitResult:
    """One trained-and-tested split."""

    name: str
    run_dir: Path
    report: Dict
    text: str
    fit: FitResult
    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray
    unadapted_pred: Optional[np.ndarray] = None
    """For ``speaker``/``corpus`` models: the test predictions with the training population's statistics
    in place of each test speaker's own (the inference default when no adaptation clips are given)."""
    raw_probs: Optional[np.ndarray] = None
    """``(n_test, n_classes)`` softmax of the logits without the model's temperature (``probs`` use it)."""
    unadapted_probs: Optional[np.ndarray] = None
    """``(n_test, n_classes)`` probabilities behind ``unadapted_pred`` (temperature applied)."""
    unadapted_raw_probs: Optional[np.ndarray] = None
    """The same without the temperature."""


def validation_split(
    rows: Sequence[Utterance], train_idx: np.ndarray, y: np.ndarray, *, speaker_independent: bool, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``train_idx`` into (fit, validation) index arrays.

    Speaker-independent: whole speakers (about ``fraction`` of them, at least
    one, gender-balanced when known) go to validation. Otherwise a stratified
    random ``fraction``. ``fraction=0`` keeps every clip for fitting (no validation).
    """
    if fraction == 0:
        return np.asarray(train_idx), np.asarray(train_idx)[:0]
    speakers = [rows[i].speaker for i in train_idx]
    if speaker_independent and len(set(speakers)) >= 3:
        n_val = max(1, int(round(len(set(speakers)) * fraction)))
        genders = [rows[i].gender for i in train_idx]
        a, b = speaker_holdout(speakers, n_test=n_val, genders=genders, seed=seed)
    else:
        a, b = paper_split([str(v) for v in y[train_idx]], test_fraction=fraction, seed=seed)
    return train_idx[a], train_idx[b]


@dataclass(frozen=True)
class Trained:
    """What :func:`train_on` returns.

    ``fit`` is the training result (model, history...); ``fit_idx`` and
    ``val_idx`` are the int64 row indices it was fitted and early-stopped on;
    ``feats[i]`` is row ``i``'s input as the model expects it,
    ``(3, n_mels, frames_i)`` float32 (dB, standardised per group unless
    ``norm="global"``), for every row, test rows included. ``population``
    is the model file's ``{POPULATION_KEY: ...}`` and chosen ``clip_weight`` (empty for other modes).
    """

    fit: FitResult
    fit_idx: np.ndarray
    val_idx: np.ndarray
    feats: List[torch.Tensor]
    population: Dict = field(default_factory=dict)


def train_on(
    rows: Sequence[Utterance], feats: Sequence[torch.Tensor], y: np.ndarray, labels: Sequence[str],
    train_idx: np.ndarray, run_dir: str | Path, *, name: str, speaker_independent: bool,
    feature_config: FeatureConfig = FeatureConfig(), model_config: Optional[ModelConfig] = None,
    train_config: TrainConfig = TrainConfig(), progress: bool = True, resume: bool = False,
) -> Trained:
    """Train a model on the rows ``train_idx`` (validation carved out of them); write it to ``run_dir``.

    ``feats[i]`` is ``(3, n_mels, frames_i)`` float32 dB for ``rows[i]``;
    ``y[i]`` its class index into ``labels``. In order: :func:`validation_split`
    (seeded by ``train_config.seed``, ``train_config.val_fraction``), the
    training population's statistics for the model file
    (:func:`emospec.norm.population_meta`), every clip standardised with its
    group's statistics (:func:`emospec.norm.normalize_for`; test speakers'
    from their own unlabelled clips), then :func:`emospec.train.fit` with
    ``meta["split"] = name``. The same seeds give the same model.
    """
    y = np.asarray(y, dtype=np.int64)
    model_config = model_config or ModelConfig(n_classes=len(labels), n_mels=feature_config.n_mels)
    fit_idx, val_idx = validation_split(
        rows, np.asarray(train_idx), y, speaker_independent=speaker_independent,
        fraction=train_config.val_fraction, seed=train_config.seed,
    )
    population = population_meta(model_config.norm, [feats[i] for i in fit_idx])
    normed = normalize_for(rows, feats, model_config.norm)
    versions = _versions(rows, feats, normed, y, labels, fit_idx, model_config.norm, feature_config, train_config, progress)
    result = fit(
        [normed[i] for i in fit_idx], y[fit_idx], [normed[i] for i in val_idx], y[val_idx], labels, run_dir,
        feature_config=feature_config, model_config=model_config, train_config=train_config,
        progress=progress, resume=resume, meta={"split": name, **population, **_augment_meta(train_config)},
        train_groups=[rows[i].corpus for i in fit_idx], train_versions=versions,
        train_speakers=[rows[i].speaker for i in fit_idx],
    )
    population = {**population, **_inference_defaults(result, population, [feats[i] for i in val_idx], y[val_idx], run_dir)}
    return Trained(result, fit_idx, val_idx, normed, population)


def _inference_defaults(result: FitResult, population: Dict[str, object], val_feats, y_val,
                        run_dir: str | Path) -> Dict[str, object]:
    """How the model runs without adaptation clips, chosen on the validation speakers (raw dB ``val_feats``):
    how far each clip's own statistics move the population's (:func:`emospec.norm.choose_clip_weight`), then
    the temperature refitted on those speakers run that way (:func:`unadapted_calibration`; ``fit`` fitted it on
    their own statistics). Both go into the saved model's meta and the temperature into ``result.model``; the
    returned dict is the clip weight's."""
    model = result.model
    chosen = choose_clip_weight(model, population, val_feats, y_val, device=next(model.parameters()).device)
    cal = unadapted_calibration(model, {**population, **chosen}, val_feats, y_val)
    if not cal:
        return chosen
    t = float(cal["temperature"])
    model.temperature.fill_(t)
    result.calibration = {**result.calibration, "temperature_own_statistics": result.calibration.get("temperature"), **cal}
    path = Path(run_dir) / "model.pt"
    if distributed.is_main() and path.exists():
        saved = load_model(path)
        saved.model.temperature.fill_(t)
        save_model(path, saved.model, saved.feature_config, list(saved.labels),
                   {**saved.meta, **chosen, "calibration": result.calibration})
    return chosen


def unadapted_calibration(model, meta: Dict, val_feats: Sequence[torch.Tensor], y_val) -> Dict[str, Any]:
    """The temperature of a ``speaker``/``corpus`` model for its inference default: fitted
    (:func:`emospec.calibration.fit_temperature`) on the validation speakers' raw dB clips ``val_feats``
    (``(3, n_mels, frames_i)``, classes ``y_val``) run without their own statistics, as
    :func:`emospec.norm.inference_model` runs them with ``meta``'s population statistics and clip weight.

    Returns ``{"temperature", "fitted", "fitted_on", "n_clips", "before_unadapted", "after_unadapted"}``
    (:func:`emospec.calibration.calibration_summary` of those clips), or ``{}`` for a model without population
    statistics or without clips. ``model`` is left as it is.
    """
    if population_stats(meta) is None or model.config.norm not in ("speaker", "corpus") or not len(val_feats):
        return {}
    y_val = np.asarray(y_val)
    net = inference_model(model, meta)
    logits, _ = infer(net, raw_inputs(net, list(val_feats)), device=next(model.parameters()).device)
    t = fit_temperature(logits, y_val)
    return {"temperature": t, "fitted": fittable(logits, y_val),
            "fitted_on": "validation speakers without their own statistics (the inference default)", "n_clips": int(len(y_val)),
            "before_unadapted": calibration_summary(torch.softmax(logits, 1).numpy(), y_val),
            "after_unadapted": calibration_summary(torch.softmax(logits / t, 1).numpy(), y_val)}


def _versions(rows, feats, normed, y, labels, fit_idx, norm: str, feature_config: FeatureConfig, train_config: TrainConfig,
              progress: bool) -> Optional[List[List[torch.Tensor]]]:
    """The training clips' altered versions (standardised like them), or None when the recipe asks for none:
    ``augment_copies`` from the audio (:mod:`emospec.augment`), ``voice_copies`` virtual speakers
    (:func:`emospec.augment.voice_features`), then ``stats_copies`` standardised with
    emotion-skewed subsets of their speaker's clips (:func:`emospec.norm.skewed_subset_versions`), then with
    ``population_copy`` one standardised with all training clips' statistics (:func:`emospec.norm.population_versions`),
    then ``contrast_copies`` of the standardised clips (``normed``) with their contrast to the speaker's *neutral*
    shrunk (:func:`emospec.augment.contrast_versions`; to the speaker's mean when ``labels`` has no neutral)."""
    if not (train_config.augment_copies or train_config.voice_copies or train_config.stats_copies
            or train_config.population_copy or train_config.contrast_copies):
        return None
    fit_rows = [rows[i] for i in fit_idx]
    versions: List[List[torch.Tensor]] = [[] for _ in fit_idx]
    if train_config.augment_copies:
        raw = augmented_features([r.path for r in fit_rows], train_config.augment_copies, feature_config,
                                 seed=train_config.seed, progress=progress)
        for mine, more in zip(versions, standardised_versions(fit_rows, raw, norm)):
            mine += more
    if train_config.voice_copies:
        raw = voice_features([r.path for r in fit_rows], [f"{r.corpus}/{r.speaker}" for r in fit_rows],
                             train_config.voice_copies, feature_config, seed=train_config.seed, progress=progress)
        for mine, more in zip(versions, standardised_versions(fit_rows, raw, norm)):
            mine += more
    if train_config.stats_copies:
        skewed = skewed_subset_versions(fit_rows, [feats[i] for i in fit_idx], y[fit_idx], norm, train_config.stats_copies,
                                        seed=train_config.seed)
        for mine, more in zip(versions, skewed):
            mine += more
    if train_config.population_copy:
        for mine, more in zip(versions, population_versions([feats[i] for i in fit_idx], norm)):
            mine += more
    if train_config.contrast_copies:
        shrunk = contrast_versions([normed[i] for i in fit_idx], [(r.corpus, r.speaker) for r in fit_rows], y[fit_idx],
                                   train_config.contrast_copies, low=train_config.contrast_low, seed=train_config.seed,
                                   reference=list(labels).index("neutral") if "neutral" in labels else None)
        for mine, more in zip(versions, shrunk):
            mine += more
    return versions


def _augment_meta(train_config: TrainConfig) -> Dict[str, object]:
    """What the model's training clips were altered with (``augment``, ``stats_copies``); ``{}`` when nothing."""
    return {**({"augment": AUGMENT_VERSION} if train_config.augment_copies else {}),
            **({"voices": VOICE_VERSION, "voice_copies": train_config.voice_copies} if train_config.voice_copies else {}),
            **({"stats_copies": train_config.stats_copies} if train_config.stats_copies else {}),
            **({"population_copy": True} if train_config.population_copy else {}),
            **({"contrast_copies": train_config.contrast_copies, "contrast_low": train_config.contrast_low}
               if train_config.contrast_copies else {})}


def _predictions_csv(rows: Sequence[Utterance], idx: np.ndarray, labels: Sequence[str], y_true, y_pred, probs) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "speaker", "true", "pred", *[f"p_{c}" for c in labels]])
    for k, i in enumerate(idx):
        w.writerow([rows[i].path, rows[i].speaker, labels[y_true[k]], labels[y_pred[k]], *[f"{p:.4f}" for p in probs[k]]])
    return buf.getvalue().encode("utf-8")


def run_split(
    name: str,
    rows: Sequence[Utterance],
    feats: Sequence[torch.Tensor],
    y: np.ndarray,
    labels: Sequence[str],
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    run_dir: str | Path,
    *,
    speaker_independent: bool,
    feature_config: FeatureConfig = FeatureConfig(),
    model_config: Optional[ModelConfig] = None,
    train_config: TrainConfig = TrainConfig(),
    progress: bool = True,
    resume: bool = False,
) -> SplitResult:
    """Train on ``train_idx`` (minus validation) with :func:`train_on`, test on ``test_idx``; write the run dir.

    ``feats[i]`` is ``(3, n_mels, frames_i)`` float32 dB for ``rows[i]``;
    ``y[i]`` its class index into ``labels``. With ``model_config.norm`` other
    than ``"global"`` every clip is first standardised with its group's
    statistics (:func:`emospec.norm.normalize_for`): test speakers' from their
    own unlabelled clips.
    """
    run_dir = Path(run_dir)
    y = np.asarray(y, dtype=np.int64)
    trained = train_on(rows, feats, y, labels, train_idx, run_dir, name=name, speaker_independent=speaker_independent,
                       feature_config=feature_config, model_config=model_config, train_config=train_config,
                       progress=progress, resume=resume)
    result, fit_idx, val_idx = trained.fit, trained.fit_idx, trained.val_idx
    if distributed.is_main():  # under torchrun only rank 0 writes
        save_json(run_dir / "split.json", {
            "name": name, "speaker_independent": speaker_independent,
            "train": [rows[i].utterance_id for i in fit_idx], "val": [rows[i].utterance_id for i in val_idx],
            "test": [rows[i].utterance_id for i in test_idx],
            "test_speakers": sorted({rows[i].speaker for i in test_idx}),
        })
    device = next(result.model.parameters()).device
    logits, _ = infer(result.model, [trained.feats[i] for i in test_idx], device=device)
    probs = result.model.probabilities(logits).numpy()
    raw_probs = torch.softmax(logits, 1).numpy()
    y_true, y_pred = y[test_idx], probs.argmax(1)
    rep = report(y_true, y_pred, labels)
    rep["ci"] = bootstrap_ci(y_true, y_pred, labels, seed=train_config.seed)
    unadapted = unadapted_probs = unadapted_raw = None
    if trained.population:  # as a user runs it without adaptation clips: raw features, training statistics
        net = inference_model(result.model, trained.population)
        plain, _ = infer(net, raw_inputs(net, [feats[i] for i in test_idx]), device=device)
        unadapted = plain.argmax(1).numpy()
        unadapted_probs, unadapted_raw = net.probabilities(plain).numpy(), torch.softmax(plain, 1).numpy()
        rep["unadapted"] = {k: v for k, v in report(y_true, unadapted, labels).items() if k in ("ua", "wa", "per_class")}
        rep["unadapted"]["clip_weight"] = float(trained.population.get(CLIP_WEIGHT_KEY) or 0.0)
    rep["split"] = {"name": name, "speaker_independent": speaker_independent, "n_train": int(len(fit_idx)),
                    "n_val": int(len(val_idx)), "n_test": int(len(test_idx)),
                    "test_speakers": sorted({rows[i].speaker for i in test_idx})}
    rep["best_epoch"] = result.best_epoch
    rep["best_val_ua"] = result.best_val_ua
    rep["convergence"] = result.convergence
    rep["calibration"] = {"temperature": float(result.model.temperature), "validation": result.calibration,
                          "test": calibration_summary(probs, y_true), "test_uncalibrated": calibration_summary(raw_probs, y_true)}
    if unadapted_probs is not None and unadapted_raw is not None:
        rep["calibration"].update(test_unadapted=calibration_summary(unadapted_probs, y_true),
                                  test_unadapted_uncalibrated=calibration_summary(unadapted_raw, y_true))
    text = format_report(rep)
    if distributed.is_main():
        save_json(run_dir / "metrics.json", rep)
        atomic_write_bytes(run_dir / "report.txt", (text + "\n").encode("utf-8"))
        atomic_write_bytes(run_dir / "predictions.csv", _predictions_csv(rows, np.asarray(test_idx), labels, y_true, y_pred, probs))
    return SplitResult(name, run_dir, rep, text, result, y_true, y_pred, probs, unadapted, raw_probs, unadapted_probs,
                       unadapted_raw)
