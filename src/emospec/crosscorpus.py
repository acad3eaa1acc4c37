"""Across corpora: train on some corpora, test on others; leave one corpus out.

:func:`run_cross_corpus` trains once on one corpus (or several merged by
:func:`combine_corpora`) and tests on each of the others, on the classes they
all share; :func:`run_loco` holds each corpus out in turn. Both train the
model and the eGeMAPS + SVM baseline on the same clips through the fold
machinery of :mod:`emospec.protocols`, and write the same files as its
protocols (``metrics.json``, ``report.txt``, ``oof_predictions.csv``, plots of
:mod:`emospec.protocol_report`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from .baseline import BaselineConfig
from .config import FeatureConfig, ModelConfig, TrainConfig, to_dict
from .data.labels import CLASSES4
from .data.splits import Fold
from .errors import ConfigError, DataError
from .oof import OOF_NAME, write_oof
from .protocols import (
    CorpusData,
    EvalResult,
    evaluate_folds,
    finish,
    functionals_of,
    pooled_calibration,
    summarise,
    with_extra,
)
from .versions import environment

__all__ = ["run_cross_corpus", "combine_corpora", "run_loco"]


def run_cross_corpus(
    train: CorpusData, tests: Sequence[CorpusData], out_dir: str | Path, *,
    feature_config: FeatureConfig = FeatureConfig(), train_config: TrainConfig = TrainConfig(),
    model_config: Optional[ModelConfig] = None, baseline: Optional[BaselineConfig] = BaselineConfig(),
    n_resamples: int = 1000, cluster: bool = False,
    progress: bool = True, resume: bool = False, plots: bool = True,
) -> EvalResult:
    """Train on all of ``train`` (validation: held-out training speakers), test on each of ``tests``.

    Only the classes present in every corpus are used (normally the four).
    ``summary["tests"][name]`` holds each test corpus's pooled evaluation.
    """
    from .protocol_report import cross_corpus_figures, cross_corpus_text

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    every = [train, *tests]
    labels = [c for c in CLASSES4 if all(any(r.label4 == c for r in d.rows) for d in every)]
    if len(labels) < 2:
        raise DataError(f"cross-corpus: the corpora share fewer than two classes ({labels})")
    use_baseline = baseline is not None and all(d.functionals is not None for d in every)
    parts, offset, spans = [], 0, {}
    for d in every:
        keep = [i for i, r in enumerate(d.rows) if r.label4 in labels]
        parts.append((d, keep))
        spans[d.name if d is not train else "__train__"] = np.arange(offset, offset + len(keep))
        offset += len(keep)
    rows = [d.rows[i] for d, keep in parts for i in keep]
    merged = CorpusData("+".join(d.name for d in every), rows, [d.feats[i] for d, keep in parts for i in keep],
                        np.concatenate([functionals_of(d)[keep] for d, keep in parts]) if use_baseline else None,
                        [p for d in every for p in d.problems])
    test_idx = np.concatenate([spans[d.name] for d in tests])
    fold = Fold(f"train_{train.name}", spans["__train__"], test_idx, True)
    preds, records, y = evaluate_folds(merged, [fold], labels, out, train_config=train_config, feature_config=feature_config,
                                        model_config=model_config, baseline=baseline if use_baseline else None, progress=progress,
                                        resume=resume)
    speakers = [r.speaker for r in rows]
    summary = {
        "kind": "cross-corpus", "train": train.name, "labels": labels, "n_train": int(len(spans["__train__"])),
        "tests": {d.name: {"n_speakers": len({r.speaker for r in d.rows}),
                           **summarise(spans[d.name], y, preds, labels, speakers, n_resamples=n_resamples,
                                        seed=train_config.seed, cluster=cluster),
                           "calibration": pooled_calibration([fold], records, y, within=spans[d.name])} for d in tests},
        "best_epoch": records[0]["best_epoch"], "n_val": records[0].get("n_val"), "baseline_fit": records[0]["baseline"] and
        {k: records[0]["baseline"][k] for k in ("c", "inner_ua", "grid")},
        "train_config": to_dict(train_config), "feature_config": to_dict(feature_config),
        "model_config": to_dict(model_config or ModelConfig()),
        "baseline_config": to_dict(baseline) if use_baseline else None, "problems": merged.problems, "versions": environment(),
    }
    for part in summary["tests"].values():  # one model: the clip weight it runs with when given no adaptation clips
        if "unadapted" in part:
            part["unadapted"]["clip_weight"] = records[0].get("clip_weight") or 0.0
    write_oof(out / OOF_NAME, rows, test_idx, y, preds, labels, [fold])
    made = cross_corpus_figures(summary, records, out) if plots else []
    return finish(out, summary, made, cross_corpus_text, t0)


def combine_corpora(datas: Sequence[CorpusData]) -> CorpusData:
    """Several corpora as one training set named ``A+B+...``: their clips of the classes all of them share.

    Rows keep their own corpus (so ``TrainConfig.balance="corpus"`` and per-corpus
    statistics see them apart); one corpus is returned as it is.
    """
    if len(datas) == 1:
        return datas[0]
    labels = [c for c in CLASSES4 if all(any(r.label4 == c for r in d.rows) for d in datas)]
    first = CorpusData(datas[0].name, [r for r in datas[0].rows if r.label4 in labels],
                       [f for f, r in zip(datas[0].feats, datas[0].rows) if r.label4 in labels],
                       None if datas[0].functionals is None else
                       datas[0].functionals[[i for i, r in enumerate(datas[0].rows) if r.label4 in labels]],
                       datas[0].problems)
    return with_extra(first, datas[1:], labels)


def run_loco(
    datas: Sequence[CorpusData], out_dir: str | Path, *,
    feature_config: FeatureConfig = FeatureConfig(), train_config: TrainConfig = TrainConfig(),
    model_config: Optional[ModelConfig] = None, baseline: Optional[BaselineConfig] = BaselineConfig(), n_resamples: int = 1000,
    cluster: bool = False, progress: bool = True, resume: bool = False, plots: bool = True,
) -> EvalResult:
    """Leave one corpus out: each corpus of ``datas`` in turn is the test set, all the others train.

    Each held-out corpus is a :func:`run_cross_corpus` run in ``out_dir/held_out_<name>/`` (model
    and baseline trained on the other corpora together; ``train_config.balance="corpus"`` samples
    them equally). ``summary["held_out"][name]`` is that corpus's pooled evaluation (UA with CIs,
    the paired Δ against the baseline); ``summary["mean_ua"]`` the mean over held-out corpora.
    """
    from .protocol_report import loco_figures, loco_text

    t0 = time.perf_counter()
    names = [d.name for d in datas]
    if len(datas) < 2:
        raise ConfigError(f"leave-one-corpus-out needs at least two corpora, got {names}")
    if len(set(names)) != len(names):
        raise ConfigError(f"leave-one-corpus-out: two corpora share a name ({names})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = [c for c in CLASSES4 if all(any(r.label4 == c for r in d.rows) for d in datas)]
    held: Dict[str, Dict] = {}
    for k, test in enumerate(datas):
        train = combine_corpora([d for j, d in enumerate(datas) if j != k])
        res = run_cross_corpus(train, [test], out / f"held_out_{test.name}", feature_config=feature_config,
                               train_config=train_config, model_config=model_config, baseline=baseline, n_resamples=n_resamples,
                               cluster=cluster, progress=progress, resume=resume, plots=plots)
        held[test.name] = {"train": train.name, "n_train": res.summary["n_train"], "best_epoch": res.summary["best_epoch"],
                           **res.summary["tests"][test.name]}
    systems = [k for k in ("model", "unadapted", "baseline", "fusion", "fusion_unadapted") if all(k in h for h in held.values())]
    summary = {
        "kind": "loco", "corpora": names, "labels": labels, "held_out": held,
        "mean_ua": {k: float(np.mean([h[k]["ua"] for h in held.values()])) for k in systems},
        "train_config": to_dict(train_config), "feature_config": to_dict(feature_config),
        "model_config": to_dict(model_config or ModelConfig()), "baseline_config": to_dict(baseline) if baseline else None,
        "versions": environment(),
    }
    made = loco_figures(summary, out) if plots else []
    return finish(out, summary, made, loco_text, t0)
