"""Corpora never heard, without adaptation: several runs' saved models alone, and the average of their probabilities.

    python benchmarks/loco_ensemble.py runs/loco/robust runs/loco/robust-pbn runs/loco/robust-pbn-swa runs/loco/utterance
    python benchmarks/loco_ensemble.py runs/s23/nemo-ref runs/s23/nemo-ref-s1 runs/s23/nemo-ref-s2   # seeds, cross-corpus

Each argument is a finished ``emospec evaluate --protocol loco`` run, or a
cross-corpus one (``--train A --train B --test C``: one ``train_*`` model,
its test sets told apart by the ``corpus`` column of its
``oof_predictions.csv``); the two kinds mix. For every corpus tested in all
of them, each run's model for that corpus (``held_out_C/train_*``, or the
cross-corpus run's one model) classifies the corpus's clips as a user runs it
with no adaptation clips: the training population's statistics folded in
and moved towards each clip's own by the model's clip weight, if any
(:func:`emospec.norm.inference_model`), or each clip standardised alone for
``norm="utterance"`` models (:func:`emospec.norm.model_input`). The ensemble
averages the models' class probabilities. Printed per held-out corpus: each
run's UA, the ensemble's UA with its 95 % CI (clips resampled), its recall per
class, and the paired bootstrap Δ against the eGeMAPS + SVM baseline of the
first run (its ``oof_predictions.csv``, where it ran one); then the means. ``--out`` writes
the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from emospec.bootstrap import bootstrap_ci, paired_bootstrap
from emospec.checkpoint import load_model
from emospec.data.dataset import compute_features
from emospec.metrics import unweighted_accuracy
from emospec.model import infer
from emospec.norm import inference_model, raw_inputs
from emospec.oof import read_oof


def unadapted_probs(model_dir: Path, paths, cache: dict) -> tuple:
    """``(labels, probs (n, n_classes))`` of the model in ``model_dir`` on ``paths``, with no adaptation clips.

    ``cache`` maps a feature config (as a string) to the clips' features, so runs that share one extract once.
    """
    bundle = load_model(model_dir)
    key = repr(bundle.feature_config)
    if key not in cache:
        feats, bad = compute_features(list(paths), bundle.feature_config, progress=False)
        if bad:
            raise SystemExit("\n".join(bad))
        cache[key] = feats
    model = inference_model(bundle.model, bundle.meta)
    inputs = raw_inputs(model, cache[key])
    return list(bundle.labels), model.probabilities(infer(model, inputs)[0]).numpy()


def held_out(run: Path, corpus: str) -> Path:
    found = sorted((run / f"held_out_{corpus}").glob("train_*/model.pt"))
    if not found:
        raise SystemExit(f"{run / f'held_out_{corpus}'}: no trained model (train_*/model.pt)")
    return found[0].parent


def tested_sets(run: Path) -> dict:
    """``{corpus: (model_dir, oof rows)}`` of one run: each ``held_out_C`` of a leave-one-corpus-out run, or
    each corpus a cross-corpus run (one ``train_*/model.pt``) tested with its one model."""
    loco = sorted(run.glob("held_out_*"))
    if loco:
        return {d.name[len("held_out_"):]: (held_out(run, d.name[len("held_out_"):]), read_oof(d)) for d in loco}
    models = sorted(run.glob("train_*/model.pt"))
    if len(models) != 1:
        raise SystemExit(f"{run}: neither held_out_* folders nor one train_*/model.pt (found {len(models)})")
    sets: dict = {}
    for r in read_oof(run):
        sets.setdefault(r["corpus"], (models[0].parent, []))[1].append(r)
    return sets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished leave-one-corpus-out or cross-corpus run directories")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    sets = {run: tested_sets(run) for run in args.runs}
    corpora = sorted(set.intersection(*(set(s) for s in sets.values())))
    if not corpora:
        raise SystemExit("no corpus is tested in every run")
    out: dict = {"runs": [str(r) for r in args.runs], "held_out": {}}
    for corpus in corpora:
        rows = sets[args.runs[0]][corpus][1]
        cache: dict = {}
        single, probs, labels = {}, [], None
        for run in args.runs:
            mine, p = unadapted_probs(sets[run][corpus][0], [r["path"] for r in rows], cache)
            if labels is not None and mine != labels:  # averaging needs one class order
                raise SystemExit(f"{run}: classes {mine} differ from {labels} of {args.runs[0]}")
            labels = mine
            y = np.array([labels.index(r["true"]) for r in rows])
            single[str(run)] = unweighted_accuracy(y, p.argmax(1))
            probs.append(p)
        pred = np.mean(probs, 0).argmax(1)
        ci = bootstrap_ci(y, pred, labels, n_resamples=args.resamples)
        res = {"n": len(rows), "single_ua": single, "ensemble_ua": ci["ua"]["estimate"],
               "ensemble_ua_ci95": [ci["ua"]["low"], ci["ua"]["high"]],
               "ensemble_recall": {c: float(((pred == k) & (y == k)).sum() / max(1, (y == k).sum())) for k, c in enumerate(labels)}}
        if rows and all(r.get("baseline") for r in rows):  # empty when the run had --baseline none
            base = np.array([labels.index(r["baseline"]) for r in rows])
            res["baseline_ua"] = unweighted_accuracy(y, base)
            res["paired_vs_baseline"] = paired_bootstrap(y, pred, base, labels, n_resamples=args.resamples)
        out["held_out"][corpus] = res
        p = res.get("paired_vs_baseline")
        print(f"{corpus} ({len(rows)} clips): " + ", ".join(f"{Path(k).name} {v:.3f}" for k, v in single.items())
              + f"; ensemble {res['ensemble_ua']:.3f} [{ci['ua']['low']:.3f}, {ci['ua']['high']:.3f}]"
              + (f"; baseline {res['baseline_ua']:.3f}, Δ {p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]" if p else "")
              + "\n  ensemble recall " + " ".join(f"{c} {v:.2f}" for c, v in res["ensemble_recall"].items()))
    held = out["held_out"].values()
    out["mean"] = {**{Path(r).name: float(np.mean([h["single_ua"][str(r)] for h in held])) for r in args.runs},
                   "ensemble": float(np.mean([h["ensemble_ua"] for h in held]))}
    if all("baseline_ua" in h for h in held):
        out["mean"]["baseline"] = float(np.mean([h["baseline_ua"] for h in held]))
    print("mean UA over held-out corpora: " + ", ".join(f"{k} {v:.3f}" for k, v in out["mean"].items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
