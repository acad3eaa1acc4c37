"""Train the model bundled with emospec and write its model card: the one documented command.

    python scripts/train_bundled.py                      # CV estimate + final model -> src/emospec/assets/
    python scripts/train_bundled.py --metrics cv.json    # take the estimate from elsewhere (no CV)
    python scripts/train_bundled.py --metrics-from runs/ablate/default/ravdess runs/ablate/default/emovo
                                                         # the recipe's per-corpus CV runs, pooled (no CV here)
    python scripts/train_bundled.py --recipe robust --set feature.relative_to_peak=true --loco runs/loco/robust-peak \
        --loco-seeds runs/loco/robust-peak-seed1 runs/loco/robust-peak-seed2 \
        --adapt-weight 1                                 # the shipped model: three corpora, estimate from a LOCO run

``--stage cv|final|card`` runs one step (the default ``all`` runs the three in
order), so the CV and the final training can run in parallel before ``card``.
``--stage calibrate`` (with the options of the card's ``command``) fits the
temperature of the model already in ``--assets`` on its validation speakers
and rewrites it and its card: for a model shipped before training fitted one.

Steps:

1. RAVDESS + EMOVO (``emospec.data.corpora.prepare_corpus``), the four classes
   neutral / happy / angry / sad (RAVDESS calm left out), 3D log-Mel features.
2. Speaker-independent estimate of the recipe: ``--cv-folds K`` folds of
   whole speakers, the folds ``emospec evaluate --protocol speaker`` builds
   (``emospec.data.splits.make_folds``), each trained with the same recipe
   (``emospec.experiment.run_split``), pooled out-of-fold UA/WA with 95 %
   confidence intervals from a speaker-level bootstrap
   (``emospec.bootstrap.bootstrap_ci`` with ``groups=speakers``,
   ``--bootstrap`` resamples, seeded), written to ``OUT/cv/evaluation.json``.
   ``--metrics FILE`` instead reads ``{"ua", "wa", "ua_ci95", "wa_ci95", "protocol", ...}``.
3. ``final``: trained on all speakers of both corpora, early stopping on a
   validation set of whole speakers (``emospec.experiment.train_on``, ``OUT/final``).
4. ``card``: the final model saved with float16 weights
   (``emospec.checkpoint.save_model(half=True)``) to ``--assets`` together
   with ``model_card.json`` (also stored in the model's meta).

The recipe is ``--recipe NAME|FILE`` (default: ``default``, see
:mod:`emospec.recipe`), with clips drawn corpus-balanced.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from emospec.bootstrap import bootstrap_ci
from emospec.checkpoint import load_model, save_model
from emospec.config import FeatureConfig, to_dict
from emospec.data.corpora import four_class, prepare_corpus
from emospec.data.dataset import compute_features
from emospec.data.labels import CLASSES4
from emospec.data.paths import find_data_root
from emospec.data.splits import make_folds
from emospec.errors import EmospecError
from emospec.experiment import run_split, train_on, unadapted_calibration, validation_split
from emospec.files import load_json, save_json
from emospec.metrics import unweighted_accuracy, weighted_accuracy
from emospec.modelcard import CORPUS_TERMS, INFERENCE_NORM, licence_for, sha256_of
from emospec.norm import ADAPT_WEIGHT_KEY, CLIP_WEIGHT_KEY, POPULATION_KEY
from emospec.oof import read_oof
from emospec.recipe import parse_overrides, recipe_from
from emospec.versions import environment

CORPORA = ("ravdess", "emovo", "nemo")
REPO = Path(__file__).resolve().parents[1]
MAPPINGS = {
    "ravdess": "RAVDESS neutral/happy/angry/sad (calm, fearful, disgust, surprised left out)",
    "emovo": "EMOVO neu->neutral, gio (joy)->happy, rab (anger)->angry, tri (sadness)->sad",
    "nemo": "nEMO neutral->neutral, happiness->happy, anger->angry, sadness->sad",
}


def four_class_clips(data, fcfg: FeatureConfig, *, progress: bool, corpora=CORPORA):
    """``(rows, feats)``: the four-class clips of every corpus in ``corpora`` that decode; the others reported on stderr."""
    found = []
    for corpus in corpora:
        corpus_rows, skipped = prepare_corpus(corpus, find_data_root(data, corpus=corpus) / corpus)
        found += four_class(corpus_rows, CLASSES4)
        for line in skipped:
            print(f"skipped: {line}", file=sys.stderr)
    feats, bad = compute_features([r.path for r in found], fcfg, progress=progress)
    for line in bad:
        print(f"skipped: {line}", file=sys.stderr)
    pairs = [(r, f) for r, f in zip(found, feats) if f is not None]
    return [r for r, _ in pairs], [f for _, f in pairs]


def pooled_estimate(y_true, y_pred, labels, speakers, corpora, *, n: int, seed: int) -> dict:
    """The card's estimate from pooled out-of-fold predictions: UA/WA, their 95 % CIs resampling whole
    speakers (:func:`emospec.bootstrap.bootstrap_ci`), and UA/WA per corpus; the keys ``emospec info`` shows."""
    ci = bootstrap_ci(y_true, y_pred, labels, n_resamples=n, seed=seed, groups=list(speakers))
    corpus = np.asarray(corpora)
    return {
        "ua": ci["ua"]["estimate"], "wa": ci["wa"]["estimate"],
        "ua_ci95": [ci["ua"]["low"], ci["ua"]["high"]], "wa_ci95": [ci["wa"]["low"], ci["wa"]["high"]],
        "resamples": ci["n_resamples"], "ci_method": f"percentile bootstrap over speakers ({n} resamples, seed {seed})",
        "n_clips": int(len(y_true)),
        "per_corpus": {c: {"ua": unweighted_accuracy(y_true[corpus == c], y_pred[corpus == c]),
                           "wa": weighted_accuracy(y_true[corpus == c], y_pred[corpus == c])}
                       for c in sorted(set(corpus.tolist()))},
    }


WHERE_NOT_HOW = ("device", "workers")
"""Training-config fields that say where a run ran, not how it trained: never a difference between recipes."""


def recipe_differences(run_dir, tcfg) -> dict:
    """Training settings in which the runs under ``run_dir`` differ from ``tcfg``: ``{field: {"run": v, "bundled": w}}``.

    A field missing from a run's ``config.json`` (it predates the option) reads as None.
    """
    mine, diff = to_dict(tcfg), {}
    for cfg in sorted(Path(run_dir).glob("*/*/config.json")):
        theirs = load_json(cfg).get("train", {})
        for key, value in mine.items():
            if key not in WHERE_NOT_HOW and theirs.get(key) != value:
                diff[key] = {"run": theirs.get(key), "bundled": value}
    return diff


def loco_summary(run_dir, tcfg=None, seeds=()) -> dict:
    """The card's leave-one-corpus-out block from an ``emospec evaluate --protocol loco`` run of the recipe.

    With ``tcfg`` (the bundled model's training settings) the block lists every setting the run trained otherwise;
    with ``seeds`` (runs of the same folds with other seeds) it adds the figures of every seed (:func:`seed_spread`).
    """
    m = load_json(Path(run_dir) / "metrics.json")
    if m.get("kind") != "loco":
        raise EmospecError(f"{run_dir}: not a leave-one-corpus-out run (metrics.json kind {m.get('kind')!r})")
    held = {}
    for name, h in m["held_out"].items():
        ci = lambda r: [r["ci"]["ua"]["low"], r["ci"]["ua"]["high"]]  # noqa: E731
        held[name] = {"trained_on": h["train"], "n": h["n"], "ua": h["model"]["ua"], "ua_ci95": ci(h["model"]),
                      "recall": {c: v["recall"] for c, v in h["model"]["per_class"].items()}}
        if "unadapted" in h:
            held[name].update(unadapted_ua=h["unadapted"]["ua"], unadapted_ua_ci95=ci(h["unadapted"]))
        if "baseline" in h:
            held[name].update(baseline_ua=h["baseline"]["ua"], paired_ua=h.get("paired_ua"))
    return {"protocol": "each corpus tested by the recipe trained on the others; 'ua' standardises each test speaker "
                        "with their own clips, 'unadapted_ua' with the training population's statistics (no adaptation clips)",
            "held_out": held, "mean_ua": m["mean_ua"], "run": str(run_dir),
            **({"recipe_differences": recipe_differences(run_dir, tcfg)} if tcfg is not None else {}),
            **({"seeds": seed_spread([run_dir, *seeds])} if seeds else {})}


def seed_spread(run_dirs) -> dict:
    """Run-to-run spread of the leave-one-corpus-out figures: the same recipe trained with other seeds.

    Every ``held_out_C/metrics.json`` under ``run_dirs`` (a ``--protocol loco`` run, or a folder of
    ``emospec evaluate --train A --train B --test C --out DIR/held_out_C`` runs) gives, for corpus ``C``,
    its training seed, UA with the test speakers' own statistics and UA without adaptation. The runs must
    differ in nothing but the seed (the training settings are compared). Returns ``{"per_corpus": {C: {"seeds",
    "ua", "unadapted_ua", "ua_mean", "unadapted_ua_mean"}}, "mean_ua": {"model", "unadapted"}}`` (means over
    seeds, then over corpora), or ``{}`` without runs.
    """
    per: dict = {}
    reference = None
    for path in sorted(p for d in run_dirs for p in Path(d).glob("held_out_*/metrics.json")):
        m = load_json(path)
        if m.get("kind") != "cross-corpus" or len(m.get("tests", {})) != 1:
            raise EmospecError(f"{path}: not one held-out corpus of a leave-one-corpus-out run")
        settings = {k: v for k, v in m["train_config"].items() if k not in ("seed", *WHERE_NOT_HOW)}
        if reference is not None and settings != reference[1]:
            differ = sorted(k for k in set(settings) | set(reference[1]) if settings.get(k) != reference[1].get(k))
            raise EmospecError(f"{path}: trained otherwise than {reference[0]} ({', '.join(differ)}), not another seed of it")
        reference = reference or (path, settings)
        (corpus, t), = m["tests"].items()
        c = per.setdefault(corpus, {"seeds": [], "ua": [], "unadapted_ua": []})
        if m["train_config"]["seed"] in c["seeds"]:
            raise EmospecError(f"{path}: seed {m['train_config']['seed']} of {corpus} given twice")
        c["seeds"].append(m["train_config"]["seed"])
        c["ua"].append(t["model"]["ua"])
        c["unadapted_ua"].append(t.get("unadapted", {}).get("ua", float("nan")))
    if not per:
        return {}
    for c in per.values():
        order = np.argsort(c["seeds"])
        for k in ("seeds", "ua", "unadapted_ua"):
            c[k] = [c[k][i] for i in order]
        c["ua_mean"], c["unadapted_ua_mean"] = float(np.mean(c["ua"])), float(np.mean(c["unadapted_ua"]))
    return {"per_corpus": per, "mean_ua": {"model": float(np.mean([c["ua_mean"] for c in per.values()])),
                                           "unadapted": float(np.mean([c["unadapted_ua_mean"] for c in per.values()]))}}


def cross_validate(rows, feats, y, labels, out: Path, fcfg, tcfg, mcfg, args) -> dict:
    """Speaker-independent k-fold CV of the recipe: pooled out-of-fold UA/WA with speaker-bootstrap CIs."""
    folds = make_folds("speaker", rows, folds=args.cv_folds, seed=args.seed)
    y_true, y_pred, fold_ua = np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64), []
    for fold in folds:
        res = run_split(fold.name, rows, feats, y, labels, fold.train, fold.test, out / fold.name, speaker_independent=True,
                        feature_config=fcfg, model_config=mcfg, train_config=tcfg, progress=not args.quiet)
        y_true[fold.test], y_pred[fold.test] = res.y_true, res.y_pred
        fold_ua.append(res.report["ua"])
        print(f"{fold.name}: UA {res.report['ua']:.3f} WA {res.report['wa']:.3f} ({len(fold.test)} clips)", file=sys.stderr)
    return {
        "protocol": f"speaker-independent {args.cv_folds}-fold CV over both corpora (whole speakers, gender-balanced, "
                    f"the folds of `emospec evaluate --protocol speaker`, seed {args.seed}), same recipe per fold, "
                    f"pooled out-of-fold predictions",
        "fold_ua": fold_ua,
        **pooled_estimate(y_true, y_pred, labels, [r.speaker for r in rows], [r.corpus for r in rows],
                          n=args.bootstrap, seed=args.seed),
    }


def evaluation_from_loco(run_dir, *, n: int, seed: int) -> dict:
    """The card's estimate from a leave-one-corpus-out run of the recipe: every corpus's clips predicted by the
    model trained on the other corpora, pooled (:func:`pooled_estimate`; UA per held-out corpus in ``per_corpus``)."""
    rows = [r for d in sorted(Path(run_dir).glob("held_out_*")) for r in read_oof(d)]
    if not rows:
        raise EmospecError(f"{run_dir}: no held_out_*/oof_predictions.csv (not a leave-one-corpus-out run?)")
    labels = [c for c in CLASSES4 if any(r["true"] == c for r in rows)]
    y_true = np.array([labels.index(r["true"]) for r in rows])
    y_pred = np.array([labels.index(r["model"]) for r in rows])
    return {"protocol": "leave one corpus out, pooled: each corpus's clips predicted by the recipe trained on the "
                        "other corpora (test speakers standardised with their own clips); the shipped model trains "
                        "on all of them, so on these corpora it does better than this, and on a new one about this",
            **pooled_estimate(y_true, y_pred, labels, [r["speaker"] for r in rows], [r["corpus"] for r in rows], n=n, seed=seed),
            "run": str(run_dir)}


def evaluation_from_runs(run_dirs, *, n: int, seed: int) -> dict:
    """The card's estimate from finished ``emospec evaluate`` runs of this recipe (e.g. RAVDESS 6-fold + EMOVO LOSO).

    Pools their out-of-fold predictions (``oof_predictions.csv``): UA/WA with 95 % CIs from the
    speaker-level bootstrap of :func:`emospec.bootstrap.bootstrap_ci`, and UA per corpus (:func:`pooled_estimate`).
    """
    rows = [r for d in run_dirs for r in read_oof(d)]
    labels = [c for c in CLASSES4 if any(r["true"] == c for r in rows)]
    y_true = np.array([labels.index(r["true"]) for r in rows])
    y_pred = np.array([labels.index(r["model"]) for r in rows])
    est = pooled_estimate(y_true, y_pred, labels, [r["speaker"] for r in rows], [r["corpus"] for r in rows], n=n, seed=seed)
    summaries = [load_json(Path(d) / "metrics.json") for d in run_dirs]
    for c, m in est["per_corpus"].items():
        m["baseline_ua"] = next((s["baseline"]["ua"] for s in summaries if s["corpus"] == c and "baseline" in s), None)
    return {
        "protocol": "the recipe's speaker-independent estimate per corpus, pooled: " + "; ".join(
            f"{m['corpus']} {m['protocol']} ({m['n_folds']} folds, trained on {m['corpus']} only)" for m in summaries)
            + ". The shipped model trains on all corpora together; its own CV over them was not run",
        **est,
        "runs": [str(d) for d in run_dirs],
    }


def calibrate_shipped(rows, feats, y, assets: Path, tcfg, command: str) -> int:
    """``--stage calibrate``: fit the temperature of ``assets/model.pt`` on its validation speakers as it runs
    without adaptation clips (:func:`emospec.experiment.unadapted_calibration`), then rewrite the model file
    (float16) and ``model_card.json`` with it. The validation speakers must be the card's (same seed and data)."""
    path = assets / "model.pt"
    shipped = load_model(path)
    card = dict(shipped.meta.get("model_card") or {})
    _, val_idx = validation_split(rows, np.arange(len(rows)), y, speaker_independent=True, fraction=tcfg.val_fraction,
                                  seed=tcfg.seed)
    speakers = sorted({rows[i].speaker for i in val_idx})
    if speakers != card.get("validation_speakers"):
        raise SystemExit(f"{path}: these options hold out {speakers}, the card's model was chosen on "
                         f"{card.get('validation_speakers')}: give the options of its command ({card.get('command')})")
    cal = unadapted_calibration(shipped.model, shipped.meta, [feats[i] for i in val_idx], y[val_idx])
    if not cal:
        raise SystemExit(f"{path}: no population statistics to run it as without adaptation clips; nothing to calibrate")
    shipped.model.temperature.fill_(cal["temperature"])
    card.update(calibration=cal, calibration_command=command)
    save_model(path, shipped.model, shipped.feature_config, list(shipped.labels),
               {**shipped.meta, "model_card": card, "calibration": cal}, half=True)
    card["model_file_sha256"] = sha256_of(path)
    card["model_file_bytes"] = path.stat().st_size
    save_json(assets / "model_card.json", card)
    print(json.dumps(cal, indent=2))
    return 0


def reproduce_command(args: argparse.Namespace) -> str:
    """The ``train_bundled.py`` command line that rebuilds this card from ``args`` (options left at None omitted).

    ``--cv-folds`` appears only when the card's evaluation is the cross-validation this script runs, not
    when ``--metrics``, ``--metrics-from`` or ``--loco`` supplies it.
    """
    recipe = {"--cv-folds": args.cv_folds if not (args.metrics or args.metrics_from or args.loco) else None,
              "--metrics": args.metrics, "--metrics-from": " ".join(args.metrics_from) if args.metrics_from else None,
              "--seed": args.seed, "--epochs": args.epochs, "--recipe": args.recipe, "--corpora": " ".join(args.corpora),
              "--loco": args.loco, "--loco-seeds": " ".join(args.loco_seeds) or None, "--adapt-weight": args.adapt_weight,
              "--set": " --set ".join(args.set) or None}
    return " ".join(["python scripts/train_bundled.py"] + [f"{k} {v}" for k, v in recipe.items() if v is not None])


def parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="folder holding the corpora' folders (default: $EMOSPEC_DATA or ../shared/data)")
    ap.add_argument("--out", default="runs/bundled", help="work folder for the CV and final runs")
    ap.add_argument("--assets", default=str(REPO / "src" / "emospec" / "assets"), help="where model.pt and model_card.json go")
    ap.add_argument("--stage", choices=["all", "cv", "final", "card", "calibrate"], default="all",
                    help="run one step only (calibrate: fit the shipped model's temperature; no training)")
    ap.add_argument("--cv-folds", type=int, default=5, help="speaker-independent folds for the estimate")
    ap.add_argument("--metrics", help="JSON with ua, wa, ua_ci95, wa_ci95, protocol (instead of running CV)")
    ap.add_argument("--metrics-from", nargs="+", metavar="RUN", help="instead of running CV: pool the out-of-fold "
                    "predictions of these `emospec evaluate` run folders (this recipe's per-corpus CV)")
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), help="corpora to train on (default: %(default)s)")
    ap.add_argument("--loco", metavar="RUN", help="an `emospec evaluate --protocol loco` run of the recipe: the card's "
                    "leave-one-corpus-out block, and its estimate unless --metrics/--metrics-from are given (no CV here)")
    ap.add_argument("--loco-seeds", nargs="+", default=[], metavar="DIR",
                    help="runs of the --loco folds with other seeds (loco runs, or folders of held_out_C runs): the card "
                         "gives every seed's figures beside the --loco run's")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    ap.add_argument("--recipe", default="default", help="recipe name or JSON file (default: default)")
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change one recipe field (repeatable)")
    ap.add_argument("--adapt-weight", type=float, metavar="W",
                    help="the model's default weight for --adapt-norm / Recognizer.adapt, saved in its file "
                         "(default: none saved, so emospec.norm.ADAPT_WEIGHT)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    t0 = time.perf_counter()

    over = {"train.seed": args.seed, "train.device": args.device, "train.balance": "corpus",
            **({"train.epochs": args.epochs} if args.epochs else {}), **parse_overrides(args.set)}
    rec = recipe_from(args.recipe, over)
    tcfg, fcfg = rec.train, rec.features
    rows, feats = four_class_clips(args.data, fcfg, progress=not args.quiet, corpora=args.corpora)
    present = {r.label4 for r in rows}
    labels = [c for c in CLASSES4 if c in present]
    y = np.array([labels.index(r.label4) for r in rows], dtype=np.int64)
    mcfg = rec.model_for(len(labels))
    speakers = [r.speaker for r in rows]
    out = Path(args.out)
    print(f"{len(rows)} clips, {len(set(speakers))} speakers: {dict(Counter(r.label4 for r in rows))}", file=sys.stderr)

    if args.stage == "calibrate":
        return calibrate_shipped(rows, feats, y, Path(args.assets), tcfg, reproduce_command(args) + " --stage calibrate")
    eval_path = Path(args.metrics) if args.metrics else out / "cv" / "evaluation.json"
    if args.metrics_from:
        eval_path = out / "evaluation_from_runs.json"
        save_json(eval_path, evaluation_from_runs(args.metrics_from, n=args.bootstrap, seed=args.seed))
    elif args.loco and not args.metrics:
        eval_path = out / "evaluation_from_loco.json"
        save_json(eval_path, evaluation_from_loco(args.loco, n=args.bootstrap, seed=args.seed))
    elif args.stage in ("all", "cv") and not args.metrics:
        save_json(eval_path, cross_validate(rows, feats, y, labels, out / "cv", fcfg, tcfg, mcfg, args))
    all_idx = np.arange(len(rows))
    if args.stage in ("all", "final"):
        train_on(rows, feats, y, labels, all_idx, out / "final", name="all speakers", speaker_independent=True,
                 feature_config=fcfg, model_config=mcfg, train_config=tcfg, progress=not args.quiet)
    if args.stage not in ("all", "card"):
        return 0
    # the validation speakers train_on held out (the same call, the same seed), for the card
    fit_idx, val_idx = validation_split(rows, all_idx, y, speaker_independent=True, fraction=tcfg.val_fraction, seed=tcfg.seed)
    evaluation = dict(load_json(eval_path)) if eval_path.is_file() else {"protocol": f"none: {eval_path} not found"}
    final = load_model(out / "final")
    final.meta.setdefault("best_epoch", -1)
    val_speakers = sorted({rows[i].speaker for i in val_idx})
    command = reproduce_command(args)
    card = {
        "name": "emospec-bundled-4class",
        "labels": labels,
        "training_data": [
            {"corpus": CORPUS_TERMS[c]["name"], "clips": sum(r.corpus == c for r in rows),
             "speakers": len({r.speaker for r in rows if r.corpus == c}), "language": CORPUS_TERMS[c]["language"],
             "counts": dict(Counter(r.label4 for r in rows if r.corpus == c)), "citation": CORPUS_TERMS[c]["citation"]}
            for c in args.corpora
        ],
        "label_mapping": "; ".join(MAPPINGS[c] for c in args.corpora if c in MAPPINGS),
        "protocol": (f"shipped model trained on {len(set(speakers)) - len(val_speakers)} of the {len(set(speakers))} speakers "
                     f"of {len(args.corpora)} corpora ({len(fit_idx)} clips); early stopping on validation UA of the "
                     f"other {len(val_speakers)}, whole held-out speakers "
                     f"{', '.join(val_speakers)} ({len(val_idx)} clips): best epoch {final.meta['best_epoch'] + 1}, "
                     f"validation UA {final.meta.get('best_val_ua', float('nan')):.3f}"),
        "validation_speakers": val_speakers,
        "evaluation": evaluation,
        **({"leave_one_corpus_out": loco_summary(args.loco, tcfg, args.loco_seeds)} if args.loco else {}),
        "inference_norm": INFERENCE_NORM.get(final.model.config.norm, final.model.config.norm),
        **{k: final.meta[k] for k in (CLIP_WEIGHT_KEY, "clip_weight_val_ua", "calibration") if k in final.meta},
        **({ADAPT_WEIGHT_KEY: args.adapt_weight} if args.adapt_weight is not None else {}),
        "train_config": final.meta.get("config", {}).get("train", to_dict(tcfg)),
        "feature_config": to_dict(fcfg),
        "model_config": to_dict(final.model.config),
        "parameters": int(sum(p.numel() for p in final.model.parameters())),
        "storage": "float16 weights (computed in float32)",
        "licence": licence_for(list(args.corpora)),
        "limitations": f"acted speech by {len(set(speakers))} actors in "
                       f"{', '.join(CORPUS_TERMS[c]['language'].split(' (')[0].split(',')[0] for c in args.corpora)}, "
                       "studio recordings; four classes only; expect lower accuracy on spontaneous speech, other "
                       "languages, noise and far-field audio (leave-one-corpus-out UA above: it moved by up to 0.17 between "
                       "seeds on one held-out corpus); held out, nEMO, whose emotions differ least in pitch and voice "
                       "quality (angry +2.6 semitones above the speaker's neutral, RAVDESS +7.1), had its angry clips "
                       "missed most (`python benchmarks/corpus_contrasts.py`, README)",
        "versions": final.meta.get("versions") or environment(),
        "command": command,
        "card_seconds": round(time.perf_counter() - t0, 1),
    }
    assets = Path(args.assets)
    model_path = assets / "model.pt"
    # the fallback statistics for unknown speakers, and how far each clip moves them towards its own
    keep = {k: final.meta[k] for k in (POPULATION_KEY, CLIP_WEIGHT_KEY, "calibration") if k in final.meta}
    if args.adapt_weight is not None:
        keep[ADAPT_WEIGHT_KEY] = args.adapt_weight
    save_model(model_path, final.model.cpu(), final.feature_config, final.labels, {"model_card": card, **keep}, half=True)
    card["model_file_sha256"] = sha256_of(model_path)
    card["model_file_bytes"] = model_path.stat().st_size
    save_json(assets / "model_card.json", card)
    load_model(model_path)  # the shipped file must load
    print(json.dumps({k: card[k] for k in ("evaluation", "protocol", "model_file_bytes")}, indent=2))
    print(f"wrote {model_path} and {assets / 'model_card.json'} in {card['card_seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EmospecError as e:
        print(f"train_bundled: error: {e}", file=sys.stderr)
        sys.exit(1)
