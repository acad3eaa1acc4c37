"""``emospec evaluate`` and ``emospec explain``."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import add_recipe_options, recipe_from_args


# --------------------------------------------------------------------------- evaluate
def add_evaluate(sub) -> None:
    from ..data.splits import PROTOCOLS

    p = sub.add_parser(
        "evaluate",
        help="cross-validate model and baseline (--protocol), cross-corpus (--train/--test), or report a trained model (--model)",
        description="Four forms: `--protocol speaker|loso|paper --corpus C` trains and tests every fold; "
                    "`--protocol loco --corpus A --corpus B [--corpus C ...]` leaves one corpus out in turn; "
                    "`--train C[:ROOT] --test C[:ROOT] [--test ...]` trains on one corpus and tests on others; "
                    "`--model RUN --corpus C --root DIR | --manifest CSV` reports a trained model.")
    p.add_argument("--model", help="report this trained run directory or model.pt")
    p.add_argument("--manifest", help="manifest CSV (path,label[,speaker]) for --model")
    p.add_argument("--corpus", action="append", metavar="[NAME=]CORPUS[:ROOT]",
                   help="corpus loader name (ravdess, emovo, nemo, ...; see emospec prepare -h); repeat it with --protocol loco")
    p.add_argument("--root", help="corpus root folder (default: <data>/<corpus>)")
    p.add_argument("--data", help="folder holding the corpora (default: $EMOSPEC_DATA or ../shared/data)")
    p.add_argument("--json", dest="json_out", help="with --model: also write the report as JSON here")
    p.add_argument("--protocol", choices=[k for k in PROTOCOLS if k != "all"] + ["loco"],  # 'all' tests nothing
                   help="speaker: k folds of whole speakers; loso: leave one speaker out; paper: stratified random 90/10 "
                        "splits; loco: leave one corpus out (each --corpus tested by a model trained on the others)")
    p.add_argument("--folds", type=int, help="folds for speaker (default 6) or paper (default 10; 1 = the single 90/10 split)")
    p.add_argument("--train", dest="train_corpus", metavar="[NAME=]CORPUS[:ROOT]", action="append",
                   help="cross-corpus: train on this corpus (repeatable: several train together; "
                        "--set balance=corpus samples them equally)")
    p.add_argument("--extra-train", dest="extra_train", metavar="[NAME=]CORPUS[:ROOT]", action="append", default=[],
                   help="with --protocol: add this corpus to every fold's training side, never tested (repeatable); "
                        "--set balance=corpus samples corpora equally")
    p.add_argument("--test", dest="test_corpora", metavar="[NAME=]CORPUS[:ROOT]", action="append",
                   help="cross-corpus: test on it (repeatable); each test set is reported under its NAME, by default "
                        "the corpus name, or for folder:ROOT / manifest:FILE the folder's (file's) name; names must differ")
    p.add_argument("--baseline", choices=["egemaps-svm", "none"], default="egemaps-svm", help="classic baseline on the same folds")
    p.add_argument("--svm-kernel", choices=["linear", "rbf"], default="linear", help="baseline SVM kernel (default linear)")
    p.add_argument("--adapt-norm", choices=["speaker", "corpus"],
                   help="standardise features per speaker or per corpus from their own unlabelled audio, test audio "
                        "included (model: model.norm; baseline: its functionals)")
    p.add_argument("--out", help="run directory (default runs/eval-<protocol>-<corpus> or runs/eval-<train>-to-<tests>)")
    p.add_argument("--map", help="extra label mapping, e.g. calm=neutral")
    add_recipe_options(p, seed_help="seed for folds, training and bootstrap (default: the recipe's)")
    p.add_argument("--fold-seed", type=int, help="seed for the folds only (default: --seed), so that runs with other "
                   "training seeds test on the same folds; --protocol speaker, paper")
    p.add_argument("--device", help="auto, cpu, cuda...")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--bootstrap-unit", choices=["item", "speaker"], default="item", help="resample clips (default) or whole speakers")
    p.add_argument("--resume", action="store_true", help="reuse finished folds in --out and resume an interrupted one")
    p.add_argument("--jobs", type=int, help="folds trained at once, each in its own process (default: one per CPU "
                   "thread, 2 on a 2-core CPU; 1 on CUDA); --protocol speaker, loso, paper")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=_cmd_evaluate)


def _eval_corpus(spec: str, args, *, cache, features):
    """Load the data set ``[NAME=]LOADER[:ROOT]`` as a :class:`~emospec.protocols.CorpusData` called NAME.

    Rows of a ``folder``/``manifest`` set take NAME as their corpus, so that
    per-corpus (and per-speaker) statistics never pool two such sets.
    """
    from dataclasses import replace

    from ..data.corpora import parse_named_spec
    from ..data.labels import parse_map
    from ..data.paths import find_data_root
    from ..protocols import load_corpus

    name, loader, root = parse_named_spec(spec)
    folder = Path(root) if root else find_data_root(args.data, corpus=loader) / loader
    data = load_corpus(loader, folder, feature_config=features, baseline=args.baseline != "none", cache=cache, progress=not args.quiet,
                       mapping=parse_map(args.map) if args.map else None)
    for line in data.problems:
        print(f"skipped: {line}", file=sys.stderr)
    data.name = name
    if loader in ("folder", "manifest"):
        data.rows = [replace(r, corpus=name) for r in data.rows]
    return data


def _set_names(specs, flag: str):
    """The names of the data sets ``specs`` given with ``flag``; a ConfigError if two share one."""
    from ..data.corpora import parse_named_spec
    from ..errors import ConfigError

    names = [parse_named_spec(s)[0] for s in specs]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ConfigError(f"{flag}: two data sets are named {n!r} ({specs[names.index(n)]} and {specs[i]}); "
                              f"name them apart with {flag} NAME=CORPUS:ROOT")
    return names


def _cmd_evaluate(args) -> int:
    from ..errors import ConfigError

    if args.model:
        return _eval_model(args)
    if args.train_corpus or args.test_corpora:
        if not (args.train_corpus and args.test_corpora) or args.protocol or args.folds:
            raise ConfigError("cross-corpus needs --train CORPUS[:ROOT] and at least one --test CORPUS[:ROOT], "
                              "and no --protocol or --folds")
    elif not (args.protocol and args.corpus):
        raise ConfigError("evaluate needs --protocol with --corpus, --train with --test, or --model")
    elif (args.protocol == "loco") != (len(args.corpus) > 1):
        raise ConfigError("--protocol loco takes two or more --corpus; the other protocols take one")
    if args.protocol == "loco" and (args.root or args.extra_train or args.folds):
        raise ConfigError("--protocol loco: give each corpus as --corpus NAME[:ROOT]; --root, --extra-train and --folds do not apply")
    if args.jobs is not None and (args.protocol in (None, "loco") or args.jobs < 1):
        raise ConfigError("--jobs N (N >= 1) goes with --protocol speaker, loso or paper: the folds trained at once")
    if args.fold_seed is not None and args.protocol not in ("speaker", "paper"):
        raise ConfigError("--fold-seed goes with --protocol speaker or paper (the protocols whose folds a seed draws)")
    if args.extra_train and not args.protocol:
        raise ConfigError("--extra-train goes with --protocol (cross-corpus runs train on --train only)")
    from ..baseline import BaselineConfig
    from ..crosscorpus import combine_corpora, run_cross_corpus, run_loco
    from ..protocols import run_protocol

    rec = recipe_from_args(args, model_norm=args.adapt_norm)
    base = None if args.baseline == "none" else BaselineConfig(kernel=args.svm_kernel, norm=args.adapt_norm or "global")
    opts = dict(train_config=rec.train, feature_config=rec.features, model_config=rec.model, baseline=base,
                n_resamples=args.resamples, cluster=args.bootstrap_unit == "speaker", progress=not args.quiet,
                resume=args.resume, plots=not args.no_plots)
    if args.protocol == "loco":
        names = _set_names(args.corpus, "--corpus")
        out = Path(args.out or f"runs/eval-loco-{'-'.join(names)}")
        cache = out / "egemaps_cache.npz"
        res = run_loco([_eval_corpus(c, args, cache=cache, features=rec.features) for c in args.corpus], out, **opts)
    elif args.protocol:
        corpus = args.corpus[0]
        out = Path(args.out or f"runs/eval-{args.protocol}-{corpus}")
        spec = f"{corpus}:{args.root}" if args.root else corpus
        cache = out / "egemaps_cache.npz"
        _set_names(args.extra_train, "--extra-train")
        extra = [_eval_corpus(e, args, cache=cache, features=rec.features) for e in args.extra_train]
        res = run_protocol(_eval_corpus(spec, args, cache=cache, features=rec.features), args.protocol, out, folds=args.folds,
                           extra=extra, workers=args.jobs, fold_seed=args.fold_seed, **opts)
    else:
        tests = _set_names(args.test_corpora, "--test")
        trains = _set_names(args.train_corpus, "--train")
        _set_names(args.train_corpus + args.test_corpora, "--train and --test")  # a set is trained on or tested, not both
        out = Path(args.out or f"runs/eval-{'+'.join(trains)}-to-{'-'.join(tests)}")
        cache = out / "egemaps_cache.npz"
        train = combine_corpora([_eval_corpus(t, args, cache=cache, features=rec.features) for t in args.train_corpus])
        res = run_cross_corpus(train,
                               [_eval_corpus(t, args, cache=cache, features=rec.features) for t in args.test_corpora], out, **opts)
    print(res.text)
    print()
    where = "held_out_*/oof_predictions.csv" if args.protocol == "loco" else "oof_predictions.csv"
    print(f"metrics: {res.out_dir / 'metrics.json'}   report: {res.out_dir / 'report.txt'}   "
          f"out-of-fold predictions: {res.out_dir / where}")
    for p in res.plots:
        print(f"plot: {p}")
    print(f"wall time {res.summary['seconds']:.0f} s")
    return 0


def _eval_model(args) -> int:
    import numpy as np

    from ..bootstrap import bootstrap_ci
    from ..checkpoint import load_model
    from ..data.corpora import prepare_corpus
    from ..data.dataset import compute_features
    from ..data.manifest import read_manifest
    from ..data.paths import find_data_root
    from ..errors import DataError
    from ..files import save_json
    from ..metrics import format_report, report
    from ..model import infer
    from ..norm import normalize_for

    bundle = load_model(args.model)
    if args.manifest:
        rows = read_manifest(args.manifest)
    elif args.corpus:
        if len(args.corpus) > 1:
            raise DataError("--model reports on one --corpus")
        corpus = args.corpus[0]
        rows, problems = prepare_corpus(corpus, args.root or find_data_root(args.data, corpus=corpus) / corpus)
        for line in problems:
            print(f"skipped: {line}", file=sys.stderr)
    else:
        raise DataError("--model needs --manifest CSV or --corpus NAME [--root DIR]")
    rows = [r for r in rows if r.label4 in bundle.labels]
    if not rows:
        raise DataError(f"no utterances with a label the model knows ({bundle.labels})")
    feats, bad = compute_features([r.path for r in rows], bundle.feature_config, progress=not args.quiet)
    for line in bad:
        print(f"skipped: {line}", file=sys.stderr)
    keep = [i for i, f in enumerate(feats) if f is not None]
    # the model's own standardisation: per speaker/corpus from their (unlabelled) clips, as in training
    clips = [f for f in feats if f is not None]  # the clips of keep, in order
    logits, _ = infer(bundle.model, normalize_for([rows[i] for i in keep], clips, bundle.model.config.norm))
    y_true = np.array([bundle.labels.index(rows[i].label4) for i in keep])
    y_pred = logits.argmax(1).numpy()
    rep = report(y_true, y_pred, bundle.labels)
    rep["ci"] = bootstrap_ci(y_true, y_pred, bundle.labels, n_resamples=args.resamples)
    print(format_report(rep, title=f"{bundle.path} on {len(keep)} clips"))
    if args.json_out:
        save_json(args.json_out, rep)
    return 0


# --------------------------------------------------------------------------- explain
def add_explain(sub) -> None:
    p = sub.add_parser("explain", help="Grad-CAM heatmap (time x mel band) of a clip's evidence, as a PNG")
    p.add_argument("clip", help="audio file")
    p.add_argument("--model", help="run directory or model.pt (default: the bundled model)")
    p.add_argument("--class", dest="target", help="class to explain (default: the predicted one)")
    p.add_argument("--layer", default="features.11", help="conv-stack module to explain (default features.11, the last conv's ReLU)")
    p.add_argument("--out", help="PNG to write (default: <clip name>.gradcam.png in the current folder)")
    p.add_argument("--device", help="cpu, cuda... (default: cuda when available)")
    p.set_defaults(func=_cmd_explain)


def _cmd_explain(args) -> int:
    from ..explain import explain, save_overlay
    from ..predict import load

    rec = load(args.model, device=args.device)
    exp = explain(args.clip, rec, target=args.target, layer=args.layer)
    out = save_overlay(exp, args.out or f"{Path(args.clip).name}.gradcam.png", fmax_hz=rec.feature_config.fmax_hz)
    a, b = exp.evidence_span(0.5)
    print(f"{args.clip}: predicted {exp.predicted} ({exp.probs[exp.predicted]:.3f}); explained class {exp.label}")
    print("scores: " + ", ".join(f"{c} {p:.3f}" for c, p in exp.probs.items()))
    print(f"half of the relevance lies in {a:.2f}-{b:.2f} s; strongest mel band {exp.peak_band()} of {exp.heatmap.shape[0]}")
    print(f"heatmap: {out}")
    return 0
