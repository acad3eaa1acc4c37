"""Late fusion: a finished evaluation's model averaged with an eGeMAPS + SVM fitted on the same training side.

    python benchmarks/fusion.py runs/s18/budget-pbn/e200/ravdess                    # speaker folds or LOSO
    python benchmarks/fusion.py runs/s15/nemo-ref-s1 --train ravdess --train emovo   # a cross-corpus run

The model's class probabilities are the ones its evaluation saved (each
fold's ``oof.json``: the clips as the run scored them, with the test
speakers' statistics where the recipe standardises per speaker). The SVM
is the baseline's: eGeMAPSv02 functionals (:func:`emospec.baseline.
egemaps_functionals`), standardised, linear, class-balanced, with the C the
fold's baseline chose (in-corpus runs: trained on the other folds' clips,
as in the evaluation) or, with ``--train``, fitted on every clip of those
corpora with C from the baseline's speaker-grouped inner CV
(:func:`emospec.baseline.fit_svm`). Its scores become probabilities by
sigmoid calibration (scikit-learn's ``CalibratedClassifierCV``, 5 folds,
one model). The fused system averages the two: ``(1 - w) p_model + w p_svm``
with ``w = 0.5`` fixed in advance, so no weight is chosen on test clips.

Printed: UA with its 95 % CI and recall per class of the model, the
baseline (its own predictions) and the fusion, then the paired bootstrap Δ
of fusion − model and fusion − baseline (clips resampled; ``--by-speaker``
resamples speakers). ``--out`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from emospec.baseline import BaselineConfig, egemaps_functionals, fit_svm, svm_pipeline
from emospec.bootstrap import bootstrap_ci, paired_bootstrap
from emospec.data.corpora import four_class, prepare_corpus
from emospec.data.labels import CLASSES4
from emospec.data.paths import find_data_root
from emospec.errors import EmospecError
from emospec.files import save_json
from emospec.protocols import read_oof

WEIGHT = 0.5
"""The SVM's share of the fused probabilities, fixed before any test clip was seen."""


def fuse(p_model: np.ndarray, p_svm: np.ndarray, w: float = WEIGHT) -> np.ndarray:
    """``(n, k)`` fused class probabilities ``(1 - w) p_model + w p_svm`` of two ``(n, k)`` probability arrays."""
    if p_model.shape != p_svm.shape:
        raise ValueError(f"fusion: model probabilities {p_model.shape} and SVM probabilities {p_svm.shape} differ in shape")
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"fusion: the SVM weight must lie in [0, 1], got {w}")
    return (1.0 - w) * p_model + w * p_svm


def svm_probs(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, c: float, n_classes: int) -> np.ndarray:
    """``(n_test, n_classes)`` sigmoid-calibrated probabilities of the baseline's SVM (scaler, linear, balanced, ``c``:
    :func:`emospec.baseline.svm_pipeline`)."""
    from sklearn.calibration import CalibratedClassifierCV

    cal = CalibratedClassifierCV(svm_pipeline(BaselineConfig(), c), method="sigmoid", cv=5, ensemble=False).fit(X_train, y_train)
    out = np.zeros((len(X_test), n_classes))
    out[:, cal.classes_] = cal.predict_proba(X_test)
    return out


def _corpus_rows(name: str, data_root) -> List:
    """The four-class clips of corpus ``name`` (its folder under the data root)."""
    rows, _ = prepare_corpus(name, find_data_root(data_root, corpus=name) / name)
    return four_class(rows, CLASSES4)


def _functionals(paths: Sequence[str], cache: Path) -> np.ndarray:
    """``(len(paths), 88)`` eGeMAPS functionals; a clip openSMILE cannot read stops the run with its reason."""
    func = egemaps_functionals(paths, cache=cache, progress=False)
    if func.problems:
        raise SystemExit("\n".join(func.problems))
    return func.values


def run_fusion(run: Path, train: Sequence[str] = (), data_root=None, cache: Optional[Path] = None,
               w: float = WEIGHT) -> Dict:
    """Per-clip ``y``, ``model``, ``baseline`` and ``fusion`` predictions (``(n,)`` int) of a finished run, with
    ``labels``, ``speakers``, the C of each fold's SVM and the SVM's ``weight``.

    In-corpus, each fold's SVM trains on every other clip of ``oof_predictions.csv``; a run whose folds trained
    on clips the file does not hold (a fold subset, extra training corpora) is refused."""
    rows = read_oof(run)
    folds = sorted({r["fold"] for r in rows})
    labels = json.loads((run / folds[0] / "labels.json").read_text())
    paths = [r["path"] for r in rows]
    fold_of = np.array([r["fold"] for r in rows])
    cache = cache or run / "egemaps_fusion.npz"
    X = _functionals(paths, cache)
    unknown = sorted({r["true"] for r in rows} - set(labels))
    if unknown:
        raise SystemExit(f"{run / 'oof_predictions.csv'}: labels {unknown} are not the model's classes {labels}")
    y = np.array([labels.index(r["true"]) for r in rows])
    p_model = np.full((len(rows), len(labels)), np.nan)
    p_svm = np.full_like(p_model, np.nan)
    base = np.array([labels.index(r["baseline"]) if r.get("baseline") else -1 for r in rows])
    cs = {}
    if train:
        tr_rows = [r for name in train for r in _corpus_rows(name, data_root)]
        X_tr = _functionals([r.path for r in tr_rows], cache)
        y_tr = np.array([labels.index(r.label4) for r in tr_rows])
        search = fit_svm(X_tr, y_tr, [r.speaker for r in tr_rows])
        c_all = float(search.best_params_["svc__C"])
        if (base < 0).any():  # a run without its baseline: the refitted SVM's own predictions stand in
            base = search.predict(X).astype(np.int64)
    stem = {Path(p).stem: i for i, p in enumerate(paths)}
    for fold in folds:
        oof = json.loads((run / fold / "oof.json").read_text())
        idx = np.array([stem[s] for s in oof["test_ids"]])
        p_model[idx] = oof["probs"]
        test = fold_of == fold
        if train:
            cs[fold] = c_all
            p_svm[test] = svm_probs(X_tr, y_tr, X[test], c_all, len(labels))
        else:
            if not oof.get("baseline"):
                raise SystemExit(f"{run / fold}: no baseline in oof.json (run with --baseline none?); give --train")
            if oof.get("n_train", (~test).sum()) != (~test).sum():  # the SVM must see the evaluation's training side
                raise SystemExit(f"{run / fold}: trained on {oof['n_train']} clips, but {run / 'oof_predictions.csv'} holds "
                                 f"{(~test).sum()} others (a fold subset, or extra training corpora?)")
            if (oof["baseline"].get("config") or {}).get("norm", "global") != "global":
                raise SystemExit(f"{run / fold}: the baseline standardised its functionals per speaker or corpus; "
                                 "fusion.py refits the global one only")
            cs[fold] = float(oof["baseline"]["c"])
            p_svm[test] = svm_probs(X[~test], y[~test], X[test], cs[fold], len(labels))
    if np.isnan(p_model).any() or np.isnan(p_svm).any() or (base < 0).any():
        raise SystemExit(f"{run}: some clips lack the model's probabilities, the SVM's or the baseline's prediction")
    return {"labels": labels, "y": y, "speakers": [r["speaker"] for r in rows], "c": cs, "weight": w, "model": p_model.argmax(1),
            "baseline": base, "svm": p_svm.argmax(1), "fusion": fuse(p_model, p_svm, w).argmax(1)}


def summary(res: Dict, resamples: int = 1000, by_speaker: bool = False) -> Dict:
    """UA [95 % CI] and recall per class of each system; paired Δ of the fusion against the model and the baseline."""
    y, labels = res["y"], res["labels"]
    groups = res["speakers"] if by_speaker else None
    out: Dict = {"n": int(len(y)), "weight": res["weight"], "c": res["c"]}
    for key in ("model", "baseline", "svm", "fusion"):
        ci = bootstrap_ci(y, res[key], labels, n_resamples=resamples, groups=groups)["ua"]
        recall = {c: float(np.mean(res[key][y == k] == k)) for k, c in enumerate(labels) if (y == k).any()}
        out[key] = {"ua": ci["estimate"], "ci": [ci["low"], ci["high"]], "recall": recall}
    for other in ("model", "baseline"):
        out[f"fusion_vs_{other}"] = paired_bootstrap(y, res["fusion"], res[other], labels, n_resamples=resamples, groups=groups)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished emospec evaluate run (oof_predictions.csv and its fold folders)")
    ap.add_argument("--train", action="append", default=[], help="cross-corpus runs: the corpora the model trained on")
    ap.add_argument("--data", help="folder holding the corpora (default: $EMOSPEC_DATA or ../shared/data)")
    ap.add_argument("--cache", type=Path, help="eGeMAPS cache (default: RUN/egemaps_fusion.npz)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--by-speaker", action="store_true", help="resample speakers instead of clips")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    try:
        s = summary(run_fusion(args.run, args.train, args.data, args.cache), args.resamples, args.by_speaker)
    except EmospecError as e:  # no such run, an unreadable corpus: one line, no traceback
        raise SystemExit(f"fusion: {e}") from None
    print(f"{args.run} ({s['n']} clips; SVM weight {s['weight']}; C per fold {sorted(set(s['c'].values()))})")
    for key in ("model", "baseline", "svm", "fusion"):
        m = s[key]
        print(f"  {key:<9} UA {m['ua']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]  recall "
              + " ".join(f"{c} {v:.2f}" for c, v in m["recall"].items()))
    for other in ("model", "baseline"):
        p = s[f"fusion_vs_{other}"]
        print(f"  fusion - {other}: {p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_json(args.out, s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
