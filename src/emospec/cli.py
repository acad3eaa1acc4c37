"""The ``emospec`` command line: the only module that prints results.

Results go to stdout; progress bars, warnings and per-file errors to stderr.
Exit status: 0 success, 1 an emospec error (message on one line), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .errors import EmospecError
from .versions import __version__

__all__ = ["main", "build_parser"]

log = logging.getLogger("emospec")


def _err(msg: str) -> None:
    print(f"emospec: error: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- demo
def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train on RAVDESS four classes and print reports for two splits")
    p.add_argument("--data", help="folder holding ravdess/ (default: $EMOSPEC_DATA or ../shared/data)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--epochs", type=int, help="epochs per split (default: the demo recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--include-calm", action="store_true", help="map RAVDESS calm into neutral")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from .demo import DEMO_TRAIN, run_demo
    from .evaluate import side_by_side

    tcfg = replace(DEMO_TRAIN, seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    res = run_demo(args.data, args.out, train_config=tcfg, include_calm=args.include_calm, progress=not args.quiet)
    for line in res.problems:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"RAVDESS four classes: {res.n_clips} clips " + ", ".join(f"{k} {v}" for k, v in res.counts.items()))
    blocks = {}
    for r in res.splits:
        s = r.report["split"]
        title = ("paper: stratified random 90/10 (speakers shared)" if r.name == "paper"
                 else f"speaker-independent: held-out actors {', '.join(x.split('_')[-1] for x in s['test_speakers'])}")
        blocks[f"{title} [n_test={s['n_test']}]"] = r.text
    print()
    print(side_by_side(blocks))
    print()
    for r in res.splits:
        print(f"{r.name:>8}: UA {r.report['ua']:.3f}  WA {r.report['wa']:.3f}  macro-F1 {r.report['macro_f1']:.3f}"
              f"  (best epoch {r.fit.best_epoch + 1}, run dir {r.run_dir})")
    print("plots: " + ", ".join(str(p) for p in res.plots))
    print(f"wall time {res.seconds:.0f} s; summary in {res.out_dir / 'summary.json'}")
    return 0


# --------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a corpus and report on a held-out split")
    p.add_argument("--corpus", default="ravdess", help="corpus loader name (default: ravdess)")
    p.add_argument("--root", help="corpus root folder (default: <data>/<corpus>)")
    p.add_argument("--data", help="folder holding the corpora (default: $EMOSPEC_DATA or ../shared/data)")
    p.add_argument("--protocol", choices=["paper", "speaker"], default="speaker",
                   help="paper: stratified random 90/10; speaker: held-out speakers (default)")
    p.add_argument("--test-speakers", type=int, default=4, help="speakers held out with --protocol speaker")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--crop-s", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class-weights", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    import numpy as np

    from .config import FeatureConfig, TrainConfig
    from .data.corpora import four_class, prepare_corpus
    from .data.dataset import compute_features
    from .data.labels import CLASSES4
    from .data.paths import find_data_root
    from .data.splits import paper_split, speaker_holdout
    from .experiment import run_split

    root = Path(args.root) if args.root else find_data_root(args.data, corpus=args.corpus) / args.corpus
    over = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                              "crop_s": args.crop_s}.items() if v is not None}
    tcfg = replace(TrainConfig(), seed=args.seed, class_weights=args.class_weights, device=args.device, **over)
    fcfg = FeatureConfig()
    rows, problems = prepare_corpus(args.corpus, root)
    rows = four_class(rows, CLASSES4)
    feats, bad = compute_features([r.path for r in rows], fcfg, progress=not args.quiet)
    for line in problems + bad:
        print(f"skipped: {line}", file=sys.stderr)
    keep = [i for i, f in enumerate(feats) if f is not None]
    rows, feats = [rows[i] for i in keep], [feats[i] for i in keep]
    labels = [c for c in CLASSES4 if any(r.label4 == c for r in rows)]
    y = np.array([labels.index(r.label4) for r in rows])
    if args.protocol == "paper":
        tr, te = paper_split([r.label4 for r in rows], seed=args.seed)
    else:
        tr, te = speaker_holdout([r.speaker for r in rows], n_test=args.test_speakers,
                                 genders=[r.gender for r in rows], seed=args.seed)
    res = run_split(args.protocol, rows, feats, y, labels, tr, te, args.out,
                    speaker_independent=args.protocol == "speaker", feature_config=fcfg, train_config=tcfg,
                    progress=not args.quiet, resume=args.resume)
    print(res.text)
    print(f"run dir: {res.run_dir}")
    return 0


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="cross-validate model and baseline (--protocol), cross-corpus (--train/--test), or report a trained model (--model)",
        description="Three forms: `--protocol speaker|loso|paper --corpus C` trains and tests every fold; "
                    "`--train C[:ROOT] --test C[:ROOT] [--test ...]` trains on one corpus and tests on others; "
                    "`--model RUN --corpus C --root DIR | --manifest CSV` reports a trained model.")
    p.add_argument("--model", help="report this trained run directory or model.pt")
    p.add_argument("--manifest", help="manifest CSV (path,label[,speaker]) for --model")
    p.add_argument("--corpus", help="corpus loader name (ravdess, emovo)")
    p.add_argument("--root", help="corpus root folder (default: <data>/<corpus>)")
    p.add_argument("--data", help="folder holding the corpora (default: $EMOSPEC_DATA or ../shared/data)")
    p.add_argument("--json", dest="json_out", help="with --model: also write the report as JSON here")
    p.add_argument("--protocol", choices=["speaker", "loso", "paper"],
                   help="speaker: k folds of whole speakers; loso: leave one speaker out; paper: stratified random 90/10 splits")
    p.add_argument("--folds", type=int, help="folds for speaker (default 6) or paper (default 10; 1 = the single 90/10 split)")
    p.add_argument("--train", dest="train_corpus", metavar="CORPUS[:ROOT]", help="cross-corpus: train on this corpus")
    p.add_argument("--test", dest="test_corpora", metavar="CORPUS[:ROOT]", action="append", help="cross-corpus: test on it (repeatable)")
    p.add_argument("--baseline", choices=["egemaps-svm", "none"], default="egemaps-svm", help="classic baseline on the same folds")
    p.add_argument("--svm-kernel", choices=["linear", "rbf"], default="linear", help="baseline SVM kernel (default linear)")
    p.add_argument("--out", help="run directory (default runs/eval-<protocol>-<corpus> or runs/eval-<train>-to-<tests>)")
    p.add_argument("--map", help="extra label mapping, e.g. calm=neutral")
    p.add_argument("--recipe", default="demo", help="training recipe: demo (default), default, or a JSON file (TrainConfig or a run's config.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a TrainConfig field (repeatable)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--crop-s", type=float)
    p.add_argument("--class-weights", choices=["on", "off"], help="class-weighted loss (default: the recipe's)")
    p.add_argument("--seed", type=int, help="seed for folds, training and bootstrap (default: the recipe's)")
    p.add_argument("--device", help="auto, cpu, cuda...")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--bootstrap-unit", choices=["item", "speaker"], default="item", help="resample clips (default) or whole speakers")
    p.add_argument("--resume", action="store_true", help="reuse finished folds in --out and resume an interrupted one")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=_cmd_evaluate)


def _eval_train_config(args):
    from .errors import ConfigError
    from .recipe import train_config_from

    over = {}
    for item in args.overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        over[k.strip().replace("-", "_")] = v.strip()
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "crop_s": args.crop_s, "seed": args.seed,
             "device": args.device, "class_weights": None if args.class_weights is None else args.class_weights == "on"}
    over.update({k: v for k, v in flags.items() if v is not None})
    return train_config_from(args.recipe, over)


def _eval_corpus(spec: str, args, *, cache):
    from .cv import load_corpus
    from .data.labels import parse_map
    from .data.paths import find_data_root

    name, _, root = spec.partition(":")
    root = Path(root) if root else find_data_root(args.data, corpus=name) / name
    data = load_corpus(name, root, baseline=args.baseline != "none", cache=cache, progress=not args.quiet,
                       mapping=parse_map(args.map) if args.map else None)
    for line in data.problems:
        print(f"skipped: {line}", file=sys.stderr)
    return data


def _cmd_evaluate(args) -> int:
    from .errors import ConfigError

    if args.model:
        return _eval_model(args)
    if args.train_corpus or args.test_corpora:
        if not (args.train_corpus and args.test_corpora) or args.protocol or args.folds:
            raise ConfigError("cross-corpus needs --train CORPUS[:ROOT] and at least one --test CORPUS[:ROOT], "
                              "and no --protocol or --folds")
    elif not (args.protocol and args.corpus):
        raise ConfigError("evaluate needs --protocol with --corpus, --train with --test, or --model")
    from .baseline import BaselineConfig
    from .cv import run_cross_corpus, run_protocol

    tcfg = _eval_train_config(args)
    opts = dict(train_config=tcfg, baseline=None if args.baseline == "none" else BaselineConfig(kernel=args.svm_kernel),
                n_resamples=args.resamples, cluster=args.bootstrap_unit == "speaker", progress=not args.quiet,
                resume=args.resume, plots=not args.no_plots)
    if args.protocol:
        out = Path(args.out or f"runs/eval-{args.protocol}-{args.corpus}")
        spec = f"{args.corpus}:{args.root}" if args.root else args.corpus
        res = run_protocol(_eval_corpus(spec, args, cache=out / "egemaps_cache.npz"), args.protocol, out, folds=args.folds, **opts)
    else:
        tests = [t.partition(":")[0] for t in args.test_corpora]
        out = Path(args.out or f"runs/eval-{args.train_corpus.partition(':')[0]}-to-{'-'.join(tests)}")
        cache = out / "egemaps_cache.npz"
        res = run_cross_corpus(_eval_corpus(args.train_corpus, args, cache=cache),
                               [_eval_corpus(t, args, cache=cache) for t in args.test_corpora], out, **opts)
    print(res.text)
    print()
    print(f"metrics: {res.out_dir / 'metrics.json'}   report: {res.out_dir / 'report.txt'}   "
          f"out-of-fold predictions: {res.out_dir / 'oof_predictions.csv'}")
    for p in res.plots:
        print(f"plot: {p}")
    print(f"wall time {res.summary['seconds']:.0f} s")
    return 0


def _eval_model(args) -> int:
    import numpy as np

    from .checkpoint import load_model
    from .config import save_json
    from .data.corpora import prepare_corpus
    from .data.dataset import compute_features
    from .data.manifest import read_manifest
    from .data.paths import find_data_root
    from .errors import DataError
    from .evaluate import bootstrap_ci, format_report, report
    from .model import infer

    bundle = load_model(args.model)
    if args.manifest:
        rows = read_manifest(args.manifest)
    elif args.corpus:
        rows, problems = prepare_corpus(args.corpus, args.root or find_data_root(args.data, corpus=args.corpus) / args.corpus)
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
    logits, _ = infer(bundle.model, [feats[i] for i in keep])
    y_true = np.array([bundle.labels.index(rows[i].label4) for i in keep])
    y_pred = logits.argmax(1).numpy()
    rep = report(y_true, y_pred, bundle.labels)
    rep["ci"] = bootstrap_ci(y_true, y_pred, bundle.labels, n_resamples=args.resamples)
    print(format_report(rep, title=f"{bundle.path} on {len(keep)} clips"))
    if args.json_out:
        save_json(args.json_out, rep)
    return 0


# --------------------------------------------------------------------------- explain
def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="Grad-CAM heatmap (time x mel band) of a clip's evidence, as a PNG")
    p.add_argument("clip", help="audio file")
    p.add_argument("--model", help="run directory or model.pt (default: the bundled model)")
    p.add_argument("--class", dest="target", help="class to explain (default: the predicted one)")
    p.add_argument("--layer", default="features.11", help="conv-stack module to explain (default features.11, the last conv's ReLU)")
    p.add_argument("--out", help="PNG to write (default: <clip name>.gradcam.png in the current folder)")
    p.add_argument("--device", help="cpu, cuda... (default: cuda when available)")
    p.set_defaults(func=_cmd_explain)


def _cmd_explain(args) -> int:
    from .explain import explain, save_overlay
    from .predict import load

    rec = load(args.model, device=args.device)
    exp = explain(args.clip, rec, target=args.target, layer=args.layer)
    out = save_overlay(exp, args.out or f"{Path(args.clip).name}.gradcam.png", fmax_hz=rec.feature_config.fmax_hz)
    a, b = exp.evidence_span(0.5)
    print(f"{args.clip}: predicted {exp.predicted} ({exp.probs[exp.predicted]:.3f}); explained class {exp.label}")
    print("scores: " + ", ".join(f"{c} {p:.3f}" for c, p in exp.probs.items()))
    print(f"half of the relevance lies in {a:.2f}-{b:.2f} s; strongest mel band {exp.peak_band()} of {exp.heatmap.shape[0]}")
    print(f"heatmap: {out}")
    return 0


# --------------------------------------------------------------------------- main
COMMANDS: List[Callable] = [_add_demo, _add_train, _add_evaluate, _add_explain]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emospec", description="Speech emotion recognition with 3D log-Mel + modified AlexNet.")
    parser.add_argument("--version", action="version", version=f"emospec {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EmospecError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
