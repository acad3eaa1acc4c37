"""Evaluation protocols within a corpus: cross-validation, the model beside the baseline.

:func:`run_protocol` trains and tests every fold of a protocol with
:func:`emospec.experiment.run_split` (and, on exactly the same folds, the
eGeMAPS + SVM baseline of :mod:`emospec.baseline`), then reports pooled
out-of-fold metrics with bootstrap CIs, mean ± std over folds, a paired
bootstrap on the UA difference and the majority-class chance line.
Training on some corpora and testing on others (cross-corpus, leave one
corpus out) is :mod:`emospec.crosscorpus`, built from the same pieces
(:func:`evaluate_folds`, :func:`summarise`, :func:`finish`). The protocols' folds come from the one fold builder,
:func:`emospec.data.splits.make_folds` (re-exported here), which
``emospec train`` uses too:

* ``speaker``: k folds of whole speakers (k = 6 by default: RAVDESS's 24 actors
  give 4 per fold), each fold balanced by gender;
* ``loso``: leave one speaker out;
* ``paper``: the paper's stratified random 90/10 split with speakers on both
  sides; ``folds=1`` is that single split, ``folds=k`` a stratified k-fold of
  such splits (10 by default, so every clip is tested once).

Where the baseline runs, a third system is scored on the same clips: the
**fusion** of the two, the mean of the network's calibrated probabilities and
the SVM's (:func:`emospec.baseline.fuse`, weight fixed in advance), with its
paired differences against each.

A run directory holds ``fold_XX/`` (one run_split each), ``metrics.json``,
``report.txt``, ``oof_predictions.csv`` (per clip: true label, the model's, the baseline's, the fusion's and,
for per-speaker models, those without the test speakers' statistics: :mod:`emospec.oof`),
``egemaps_cache.npz`` and the plots (see :mod:`emospec.protocol_report`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .baseline import BaselineConfig, egemaps_functionals, fuse, run_fold
from .bootstrap import bootstrap_ci, paired_bootstrap
from .calibration import calibration_summary
from .config import FeatureConfig, ModelConfig, TrainConfig, to_dict
from .data.corpora import four_class, prepare_corpus
from .data.dataset import compute_features
from .data.labels import CLASSES4
from .data.manifest import Utterance
from .data.splits import PROTOCOLS, Fold, make_folds, speaker_kfold
from .errors import ConfigError, DataError
from .experiment import run_split
from .files import atomic_write_bytes, load_json, save_json
from .metrics import fold_summary, per_speaker, report
from .norm import group_keys, normalize_rows
from .oof import OOF_NAME, write_oof
from .parallel import parallel_workers, run_jobs
from .versions import environment

__all__ = ["CorpusData", "Fold", "EvalResult", "load_corpus", "make_folds", "speaker_kfold", "run_protocol", "PROTOCOLS"]

log = logging.getLogger(__name__)

PROB_DECIMALS = 8
"""Decimals of the model's probabilities in each fold's ``oof.json``: a model whose validation speakers gave it a
temperature in the hundreds (:data:`emospec.calibration.T_RANGE`) has probabilities within 1e-4 of each other, and
5 decimals could tie them and change their argmax."""


@dataclass
class CorpusData:
    """A corpus ready for evaluation: rows, their features, their baseline functionals.

    ``feats[i]`` is ``(3, n_mels, frames_i)`` float32 dB; ``functionals`` is
    ``(n, 88)`` float64 or ``None`` without the baseline. Clips that failed
    either extraction are dropped and listed in ``problems``.
    """

    name: str
    rows: List[Utterance]
    feats: List[torch.Tensor]
    functionals: Optional[np.ndarray]
    problems: List[str] = field(default_factory=list)


def functionals_of(d: CorpusData) -> np.ndarray:
    """``d.functionals`` ``(n, 88)`` float64 for the baseline; DataError when ``d`` was loaded without them."""
    if d.functionals is None:
        raise DataError(f"{d.name}: the baseline needs eGeMAPS functionals, but the corpus was loaded without them")
    return d.functionals


@dataclass
class EvalResult:
    """Everything a protocol run produced; ``summary`` is what ``metrics.json`` holds."""

    out_dir: Path
    summary: Dict
    text: str
    plots: List[Path]


def load_corpus(
    name: str, root: str | Path, *, feature_config: FeatureConfig = FeatureConfig(), baseline: bool = True,
    cache: Optional[Path] = None, mapping: Optional[Mapping[str, str]] = None, progress: bool = True,
) -> CorpusData:
    """Scan a corpus, keep the four classes, compute 3D log-Mel (and eGeMAPS) features."""
    rows, problems = prepare_corpus(name, root, mapping=mapping)
    rows = four_class(rows, CLASSES4)
    feats, bad = compute_features([r.path for r in rows], feature_config, progress=progress, desc=f"{name} 3D log-Mel")
    problems = problems + bad
    keep = np.array([f is not None for f in feats])
    values = None
    if baseline:
        func = egemaps_functionals([r.path for r in rows], sample_rate_hz=feature_config.sample_rate_hz, cache=cache, progress=progress)
        problems += func.problems
        keep &= func.ok
        values = func.values[keep]
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise DataError(f"{root}: no usable {name} clips")
    clips = [f for f, k in zip(feats, keep) if k and f is not None]  # keep is already False wherever f is None
    return CorpusData(name, [rows[i] for i in idx], clips, values, problems)


def _majority(y: np.ndarray, train: np.ndarray, k: int) -> int:
    return int(np.bincount(y[train], minlength=k).argmax())


def _fold_outputs(fold: Fold, fold_dir: Path, rows, data: CorpusData, y, labels, *, train_config, feature_config,
                  model_config: ModelConfig, baseline: Optional[BaselineConfig], progress: bool, resume: bool) -> Dict:
    """Train and test the model (and the baseline) on one fold; kept in ``fold_dir/oof.json``.

    With ``resume``, a finished fold whose test items and configs match is
    reused (the baseline is refitted alone when only its config changed, or when
    the record predates the SVM's probabilities that the fusion needs).
    """
    ids = [rows[i].utterance_id for i in fold.test]
    cached = fold_dir / "oof.json"
    key = {"test_ids": ids, "n_train": int(len(fold.train)), "train_config": to_dict(train_config),
           "feature_config": to_dict(feature_config), "model_config": to_dict(model_config)}
    out = None
    if resume and cached.exists():
        old = load_json(cached)
        if all(old.get(k) == v for k, v in key.items()):
            log.info("%s: reusing the trained fold", fold_dir)
            out = old
    if out is None:
        res = run_split(fold.name, rows, data.feats, y, labels, fold.train, fold.test, fold_dir,
                        speaker_independent=fold.speaker_independent, feature_config=feature_config,
                        model_config=model_config, train_config=train_config, progress=progress,
                        resume=resume and (fold_dir / "checkpoint.pt").exists())
        out = {"name": fold.name, **key, "test_speakers": sorted({rows[i].speaker for i in fold.test}),
               "model_pred": res.y_pred.tolist(), "probs": np.round(res.probs, PROB_DECIMALS).tolist(), "best_epoch": res.fit.best_epoch,
               "temperature": float(res.fit.model.temperature), "validation_calibration": res.fit.calibration,
               **{name: None if v is None else np.round(v, PROB_DECIMALS).tolist() for name, v in (
                   ("probs_uncalibrated", res.raw_probs), ("probs_unadapted", res.unadapted_probs),
                   ("probs_unadapted_uncalibrated", res.unadapted_raw_probs))},
               "history": res.fit.history, "convergence": res.fit.convergence, "majority": _majority(y, fold.train, len(labels)),
               "n_val": res.report["split"]["n_val"], "baseline": None,
               "unadapted_pred": None if res.unadapted_pred is None else res.unadapted_pred.tolist(),
               "clip_weight": (res.report.get("unadapted") or {}).get("clip_weight")}
    wanted = to_dict(baseline) if baseline is not None else None
    old_base = out.get("baseline") or {}
    if old_base.get("config") != wanted or (wanted is not None and "probs" not in old_base):  # runs before the fusion: refit
        out["baseline"] = None
        if baseline is not None:
            fp = run_fold(functionals_of(data), y, [r.speaker for r in rows], fold.train, fold.test, baseline, len(labels))
            out["baseline"] = {"pred": fp.y_pred.tolist(), "c": fp.c, "inner_ua": fp.inner_ua, "grid": fp.grid, "config": wanted,
                               "probs": np.round(fp.probs, 5).tolist()}
    save_json(cached, out)
    return out


def _systems(idx: np.ndarray, y, preds: Mapping[str, np.ndarray], labels, speakers, *, n_resamples, seed, cluster) -> Dict:
    """Pooled reports with CIs and per-speaker accuracy for each system on items ``idx``."""
    groups = [speakers[i] for i in idx] if cluster else None
    out = {}
    for name, p in preds.items():
        rep = report(y[idx], p[idx], labels)
        rep["ci"] = bootstrap_ci(y[idx], p[idx], labels, n_resamples=n_resamples, seed=seed, groups=groups)
        rep["per_speaker"] = per_speaker(y[idx], p[idx], [speakers[i] for i in idx], labels)
        out[name] = rep
    return out


def evaluate_folds(data: CorpusData, folds: List[Fold], labels: List[str], out: Path, *, train_config, feature_config,
                    model_config: Optional[ModelConfig], baseline,
                    progress, resume, workers: int = 1) -> Tuple[Dict[str, np.ndarray], List[Dict], np.ndarray]:
    """Run every fold; return out-of-fold predictions (-1 where untested), per-fold records, y.

    The predictions are ``(n,)`` int class indices per system: ``model``, ``chance`` (the training side's
    majority class), and where run ``unadapted`` (without the test speakers' statistics), ``baseline``,
    ``fusion`` and ``fusion_unadapted`` (:func:`fused_predictions`).

    ``workers`` folds train at once, in processes of their own (:func:`emospec.parallel.run_jobs`).

    ``model_config.norm`` (the model's features, in :func:`run_split`) and
    ``baseline.norm`` (its functionals, here) standardise each group with its
    own statistics (:mod:`emospec.norm`); groups never straddle a
    speaker-independent split, so test speakers' statistics come from their
    own unlabelled clips.
    """
    rows = data.rows
    model_config = replace(model_config or ModelConfig(), n_classes=len(labels), n_mels=feature_config.n_mels)
    if baseline is not None and baseline.norm != "global" and data.functionals is not None:
        groups = group_keys(baseline.norm, [r.speaker for r in rows], [r.corpus for r in rows])
        data = CorpusData(data.name, rows, data.feats, normalize_rows(data.functionals, groups), data.problems)
    y = np.array([labels.index(r.label4) for r in rows], dtype=np.int64)
    n = len(rows)
    preds = {"model": np.full(n, -1), "chance": np.full(n, -1), **({"baseline": np.full(n, -1)} if baseline else {})}
    tested = np.zeros(n, dtype=bool)
    for fold in folds:
        if np.any(tested[fold.test]):
            raise DataError(f"{fold.name}: items tested in an earlier fold")
        tested[fold.test] = True
    jobs = [dict(fold=fold, fold_dir=out / fold.name, rows=rows, data=data, y=y, labels=labels, train_config=train_config,
                 feature_config=feature_config, model_config=model_config, baseline=baseline, resume=resume)
            for fold in folds]
    if workers > 1:
        log.info("%d folds, %d at a time", len(folds), workers)
        records = run_jobs(_fold_outputs, [{**job, "progress": False} for job in jobs], workers,
                           names=[f.name for f in folds], run_dirs=[out / f.name for f in folds],
                           epochs=train_config.epochs, progress=progress)
    else:
        records = []
        for j, (fold, job) in enumerate(zip(folds, jobs)):
            log.info("fold %d/%d %s: %d train, %d test", j + 1, len(folds), fold.name, len(fold.train), len(fold.test))
            records.append(_fold_outputs(**job, progress=progress))
    for fold, rec in zip(folds, records):
        preds["model"][fold.test] = rec["model_pred"]
        if rec.get("unadapted_pred") is not None:  # speaker/corpus models: also without the test speakers' statistics
            preds.setdefault("unadapted", np.full(n, -1))[fold.test] = rec["unadapted_pred"]
        preds["chance"][fold.test] = rec["majority"]
        if baseline:
            preds["baseline"][fold.test] = rec["baseline"]["pred"]
            for name, fused in fused_predictions(rec).items():
                preds.setdefault(name, np.full(n, -1))[fold.test] = fused
    return preds, records, y


def fused_predictions(rec: Mapping) -> Dict[str, np.ndarray]:
    """One fold's fused answers ``(n_test,)`` int: ``fusion`` from the model's probabilities as evaluated and
    ``fusion_unadapted`` from those without the test speakers' statistics (where the fold ran it), each averaged
    with the baseline SVM's (:func:`emospec.baseline.fuse`)."""
    p_svm = np.asarray(rec["baseline"]["probs"], dtype=np.float64)
    out = {"fusion": fuse(np.asarray(rec["probs"]), p_svm).argmax(1)}
    if rec.get("probs_unadapted") is not None:
        out["fusion_unadapted"] = fuse(np.asarray(rec["probs_unadapted"]), p_svm).argmax(1)
    return out


def _fold_table(records: List[Dict], y: np.ndarray, folds: List[Fold], labels, preds) -> List[Dict]:
    table = []
    for fold, rec in zip(folds, records):
        scores = {k: report(y[fold.test], preds[k][fold.test], labels) for k in ("model", "baseline", "fusion") if k in preds}
        row = {"name": fold.name, "test_speakers": rec["test_speakers"], "n_test": int(len(fold.test)),
               "best_epoch": rec["best_epoch"], "best_val_ua": _best_val_ua(rec.get("history") or []),
               "convergence": rec.get("convergence")}
        for k, rep in scores.items():
            row[k] = {m: rep[m] for m in ("ua", "wa", "macro_f1")}
        if rec["baseline"]:
            row["baseline"].update(c=rec["baseline"]["c"], inner_ua=rec["baseline"]["inner_ua"])
        table.append(row)
    return table


def _best_val_ua(history: Sequence[Dict]) -> Optional[float]:
    """The best validation UA of a fold's training history (the model-selection figure), or None.

    With weight averaging (``select="swa"``) it is the kept average's: the last ``swa_val_ua``.
    """
    averaged = [h["swa_val_ua"] for h in history if "swa_val_ua" in h and h["swa_val_ua"] == h["swa_val_ua"]]
    if averaged:
        return averaged[-1]
    vals = [h["val_ua"] for h in history if h.get("val_ua") == h.get("val_ua")]
    return max(vals) if vals else None


def pooled_calibration(folds: Sequence[Fold], records: Sequence[Dict], y: np.ndarray,
                       within: Optional[np.ndarray] = None) -> Optional[Dict]:
    """The model's out-of-fold calibration: ``{"temperatures": per fold, "calibrated": calibration_summary,
    "uncalibrated": ...}`` over every tested clip, or those of them in ``within`` (indices into ``y``)
    (:mod:`emospec.calibration`), and ``"unadapted"`` / ``"unadapted_uncalibrated"`` for the model run without
    the test speakers' statistics where every fold ran it; None when a fold's record predates temperature scaling."""
    if not records or any(r.get("probs_uncalibrated") is None for r in records):
        return None
    idx = np.concatenate([f.test for f in folds])
    keep = np.isin(idx, within) if within is not None else np.ones(len(idx), dtype=bool)

    def stacked(key: str) -> np.ndarray:
        every = [np.asarray(r[key], dtype=np.float64).reshape(len(f.test), -1) for f, r in zip(folds, records)]
        return np.concatenate(every)[keep]
    out = {"temperatures": [float(r["temperature"]) for r in records],
           "calibrated": calibration_summary(stacked("probs"), y[idx[keep]]),
           "uncalibrated": calibration_summary(stacked("probs_uncalibrated"), y[idx[keep]])}
    if all(r.get("probs_unadapted") is not None for r in records):
        out["unadapted"] = calibration_summary(stacked("probs_unadapted"), y[idx[keep]])
        out["unadapted_uncalibrated"] = calibration_summary(stacked("probs_unadapted_uncalibrated"), y[idx[keep]])
    return out


PAIRED = {"paired_ua": ("model", "baseline"), "paired_ua_unadapted": ("unadapted", "baseline"),
          "paired_ua_fusion": ("fusion", "baseline"), "paired_fusion_model": ("fusion", "model"),
          "paired_ua_fusion_unadapted": ("fusion_unadapted", "baseline"),
          "paired_fusion_unadapted_model": ("fusion_unadapted", "unadapted")}
"""The paired bootstraps of a pooled evaluation: key -> (system, minus system), UA of the first minus the second."""


def summarise(idx, y, preds, labels, speakers, *, n_resamples, seed, cluster) -> Dict:
    """The pooled evaluation of the clips ``idx``: each system's metrics with bootstrap CIs and the paired
    differences of :data:`PAIRED` (:func:`_systems`); a system only where it was run on every one of them."""
    scored = {k: v for k, v in preds.items() if k != "chance" and np.all(v[idx] >= 0)}
    if "model" not in scored:
        raise DataError(f"{len(idx)} clips to summarise, but the model did not predict every one of them")
    out = {"n": int(len(idx)), **_systems(idx, y, scored, labels, speakers, n_resamples=n_resamples, seed=seed, cluster=cluster)}
    chance = report(y[idx], preds["chance"][idx], labels)
    out["chance"] = {k: chance[k] for k in ("ua", "wa", "macro_f1")}
    for key, (a, b) in PAIRED.items():
        if a in scored and b in scored:
            out[key] = paired_bootstrap(y[idx], preds[a][idx], preds[b][idx], labels, metric="ua", n_resamples=n_resamples,
                                        seed=seed, groups=[speakers[i] for i in idx] if cluster else None)
    return out


def run_protocol(
    data: CorpusData, protocol: str, out_dir: str | Path, *, folds: Optional[int] = None,
    feature_config: FeatureConfig = FeatureConfig(), train_config: TrainConfig = TrainConfig(),
    model_config: Optional[ModelConfig] = None, baseline: Optional[BaselineConfig] = BaselineConfig(),
    n_resamples: int = 1000, cluster: bool = False,
    progress: bool = True, resume: bool = False, plots: bool = True, extra: Sequence[CorpusData] = (),
    fold_subset: Optional[Sequence[int]] = None, workers: Optional[int] = None, fold_seed: Optional[int] = None,
) -> EvalResult:
    """Train and test every fold of ``protocol`` on ``data``; write and return the pooled evaluation.

    Every clip tested appears in exactly one fold's test side; the pooled
    metrics (``summary["model"]``, ``["baseline"]``) are computed on the
    out-of-fold predictions of all tested clips, with ``n_resamples``
    bootstrap resamples of items (of speakers with ``cluster=True``).
    ``extra`` corpora join every fold's training side (model and baseline
    alike) and are never tested; see ``TrainConfig.balance``. ``fold_subset``
    (0-based fold numbers) runs only those folds of the same fold list, for a
    quick first look: the pooled figures are then over their test clips only.
    ``workers`` folds train at once, each in its own process (None: two
    1-thread trainings on a 2-core CPU, one at a time on CUDA or under
    torchrun; :func:`emospec.parallel.parallel_workers`). Results do not
    depend on it beyond floating-point summation order (threads per training).
    ``fold_seed`` draws the folds (None: ``train_config.seed``, as ``emospec
    evaluate --seed`` does), so that runs with other training seeds can test
    on the same folds and be paired or averaged (``benchmarks/ablate.py
    --ensemble``).
    """
    from .protocol_report import protocol_figures, protocol_text

    if protocol == "all":
        raise ConfigError("protocol 'all' tests nothing; evaluate takes speaker, loso or paper")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = [c for c in CLASSES4 if any(r.label4 == c for r in data.rows)]
    fold_seed = train_config.seed if fold_seed is None else fold_seed
    fold_list = make_folds(protocol, data.rows, folds=folds, seed=fold_seed)
    if fold_subset is not None:
        fold_list = [fold_list[j] for j in sorted(set(fold_subset))]
    main = data
    if extra:
        data, n_main = with_extra(data, extra, labels), len(data.rows)
        more = np.arange(n_main, len(data.rows))
        fold_list = [Fold(f.name, np.concatenate([f.train, more]), f.test, f.speaker_independent) for f in fold_list]
    workers = max(1, min(workers or parallel_workers(len(fold_list), train_config.device), len(fold_list)))
    preds, records, y = evaluate_folds(data, fold_list, labels, out, train_config=train_config, feature_config=feature_config,
                                        model_config=model_config, baseline=baseline if data.functionals is not None else None,
                                        progress=progress, resume=resume, workers=workers)
    tested = np.flatnonzero(preds["model"] >= 0)
    speakers = [r.speaker for r in data.rows]
    summary = {
        "kind": "protocol", "corpus": main.name, "protocol": protocol, "labels": labels, "n_clips": len(main.rows),
        "n_speakers": len({r.speaker for r in main.rows}), "counts": {c: int(n) for c, n in Counter(r.label4 for r in main.rows).items()},
        "extra_train": {d.name: len(d.rows) for d in extra},
        "n_folds": len(fold_list), "fold_seed": fold_seed, "folds_at_once": workers, "n_tested": int(tested.size),
        **summarise(tested, y, preds, labels, speakers, n_resamples=n_resamples, seed=train_config.seed, cluster=cluster),
        "folds": _fold_table(records, y, fold_list, labels, preds),
        "calibration": pooled_calibration(fold_list, records, y),
        "train_config": to_dict(train_config), "feature_config": to_dict(feature_config),
        "model_config": to_dict(model_config or ModelConfig()),
        "baseline_config": to_dict(baseline) if baseline and data.functionals is not None else None,
        "problems": data.problems, "versions": environment(),
    }
    summary["fold_summary"] = {k: fold_summary([f[k] for f in summary["folds"]]) for k in ("model", "baseline", "fusion")
                               if k in summary}
    write_oof(out / OOF_NAME, data.rows, tested, y, preds, labels, fold_list)
    made = protocol_figures(summary, main, records, out) if plots else []
    return finish(out, summary, made, protocol_text, t0)


def with_extra(data: CorpusData, extra: Sequence[CorpusData], labels: List[str]) -> CorpusData:
    """``data`` followed by the clips of ``extra`` whose class is in ``labels``."""
    if any((d.functionals is None) != (data.functionals is None) for d in extra):
        raise DataError("extra training corpora need the baseline's functionals too (or no baseline at all)")
    parts = [(d, [i for i, r in enumerate(d.rows) if r.label4 in labels]) for d in extra]
    return CorpusData(
        "+".join([data.name, *(d.name for d in extra)]), data.rows + [d.rows[i] for d, keep in parts for i in keep],
        data.feats + [d.feats[i] for d, keep in parts for i in keep],
        None if data.functionals is None else np.concatenate([data.functionals, *(functionals_of(d)[keep] for d, keep in parts)]),
        data.problems + [p for d in extra for p in d.problems])


def finish(out: Path, summary: Dict, made: List[Path], render, t0: float) -> EvalResult:
    """Add plots and wall time to ``summary``; write ``metrics.json`` and ``report.txt``."""
    summary["plots"] = [str(p) for p in made]
    summary["seconds"] = time.perf_counter() - t0
    text = render(summary)
    save_json(out / "metrics.json", summary)
    atomic_write_bytes(out / "report.txt", (text + "\n").encode("utf-8"))
    return EvalResult(out, summary, text, made)
