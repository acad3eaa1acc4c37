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


# --------------------------------------------------------------------------- data options (prepare, train)
def _add_label_options(p) -> None:
    p.add_argument("--map", help="label mapping overrides, e.g. 'Angry=angry,calm=neutral' (empty value drops a label)")
    p.add_argument("--classes", help="the run's classes in order (default: neutral,happy,angry,sad)")


def _add_cache_options(p) -> None:
    p.add_argument("--cache", help="feature cache folder (default: $EMOSPEC_CACHE or ~/.cache/emospec/features)")
    p.add_argument("--workers", type=int, default=1, help="feature worker processes (default: 1)")


def _label_options(args):
    from .data.labels import CLASSES4, parse_classes, parse_map

    return (parse_map(args.map) if args.map else None), (parse_classes(args.classes) if args.classes else CLASSES4)


def _skipped(lines: List[str]) -> None:
    for line in lines:
        print(f"skipped: {line}", file=sys.stderr)
    if lines:
        print(f"skipped {len(lines)} item(s) in all", file=sys.stderr)


def _typos(labels: List[str], mapping, classes) -> None:
    from .data.labels import likely_typos

    for line in likely_typos(labels, mapping, classes):
        print(f"warning: {line}", file=sys.stderr)


# --------------------------------------------------------------------------- prepare
_PREPARE_EPILOG = """\
Filling one cache from several machines: the cache key is the audio content and
the feature config, not the path, so machines may mount the corpus anywhere.
Point every machine at one shared cache folder and give each its own slice:

  machine 1:  emospec prepare ravdess /data/ravdess --features --cache /shared/cache --shard 1/3 --workers 8
  machine 2:  emospec prepare ravdess /data/ravdess --features --cache /shared/cache --shard 2/3 --workers 8
  machine 3:  emospec prepare ravdess /data/ravdess --features --cache /shared/cache --shard 3/3 --workers 8

Slices are dealt round-robin over the utterances sorted by (corpus, id), so they
are disjoint and cover the corpus; entries are written atomically, so machines
may overlap safely. Afterwards `emospec train --cache /shared/cache ...` decodes nothing.
"""


def _add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare", help="scan a corpus, print counts, write its manifest (and fill the feature cache)",
        description="Scan CORPUS at ROOT in its release layout, print counts per class and per speaker, "
                    "write the manifest CSV, and with --features compute every clip's features into the cache.",
        epilog=_PREPARE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", help="ravdess, emovo, iemocap, crema-d, crema-d-votes, tess, emodb, savee, folder, manifest")
    p.add_argument("root", help="the corpus folder (iemocap: also the df_iemocap.csv table; manifest: the CSV/JSON file)")
    p.add_argument("--out", default="manifest.csv", help="manifest CSV to write (default: manifest.csv)")
    _add_label_options(p)
    p.add_argument("--features", action="store_true", help="compute the features of every utterance into the cache")
    _add_cache_options(p)
    p.add_argument("--shard", help="with --features: compute only slice I of N (1-based), e.g. 2/4")
    p.set_defaults(func=_cmd_prepare)


def _cmd_prepare(args) -> int:
    from .config import FeatureConfig
    from .data.cache import FeatureCache, default_cache_dir
    from .data.corpora import prepare_corpus
    from .data.dataset import fill_cache, parse_shard, shard
    from .data.manifest import count_table, write_manifest

    mapping, classes = _label_options(args)
    part = parse_shard(args.shard) if args.shard else None
    rows, problems = prepare_corpus(args.corpus, args.root, mapping=mapping, classes=classes)
    _skipped(problems)
    _typos([r.label for r in rows], mapping, classes)
    n_spk = len({r.speaker for r in rows if r.speaker})
    print(f"{args.corpus} at {args.root}: {len(rows)} utterances, {n_spk} speakers, {len(problems)} skipped")
    print(count_table(rows, classes))
    write_manifest(args.out, rows)
    print(f"manifest: {args.out}")
    if args.features:
        cache = FeatureCache(Path(args.cache) if args.cache else default_cache_dir(), FeatureConfig())
        todo = shard(rows, *part, key=lambda r: (r.corpus, r.utterance_id)) if part else rows
        st = fill_cache([r.path for r in todo], cache, workers=args.workers, progress=not args.quiet)
        _skipped(st.problems)
        where = f" (shard {part[0]}/{part[1]})" if part else ""
        print(f"features{where}: {len(todo)} clips, {st.hits} cached, {st.computed} computed, "
              f"{len(st.problems)} failed, {st.seconds:.1f} s, {args.workers} worker(s) -> {cache.folder}")
    return 0


# --------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on one or more corpora and report on held-out data")
    p.add_argument("--corpus", action="append", metavar="NAME[:ROOT]",
                   help="corpus to train on; repeat to train on several (ROOT default: <data>/<name>; default: ravdess)")
    p.add_argument("--manifest", action="append", metavar="FILE", help="a manifest CSV/JSON (path,label[,speaker]); repeatable")
    p.add_argument("--root", help="root of the single --corpus (same as NAME:ROOT)")
    p.add_argument("--data", help="folder holding the corpora (default: $EMOSPEC_DATA or ../shared/data)")
    p.add_argument("--protocol", choices=["paper", "speaker", "loso", "all"], default="speaker",
                   help="paper: stratified random 90/10; speaker: speaker-independent k-fold (IEMOCAP: by session; "
                        "default); loso: leave one speaker out; all: train on everything, validation carved out")
    p.add_argument("--folds", type=int, default=5, help="k for --protocol speaker (default 5)")
    p.add_argument("--test-speakers", type=int, help="--protocol speaker: one fold holding out this many speakers")
    p.add_argument("--fold", default="1", help="which fold to train and test: its number or name (default 1)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="test share for --protocol paper (default 0.1)")
    p.add_argument("--split", help="reuse a saved split (a run's splits.json or split.json) instead of --protocol")
    _add_label_options(p)
    _add_cache_options(p)
    p.add_argument("--no-cache", action="store_true", help="compute features without the cache")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--crop-s", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class-weights", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision (default auto: bf16/fp16 on CUDA, off on CPU)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.set_defaults(func=_cmd_train)


def _train_rows(args, classes, mapping):
    """Rows, features and problems for ``train``: corpora + manifests, the run's classes, cached features."""
    from .config import FeatureConfig
    from .data.cache import FeatureCache, default_cache_dir
    from .data.corpora import four_class, load_corpora
    from .data.dataset import compute_features
    from .errors import DataError

    specs = list(args.corpus or ([] if args.manifest else ["ravdess"]))
    if args.root:
        if len(specs) != 1 or ":" in specs[0]:
            raise DataError("--root goes with exactly one --corpus NAME (or write --corpus NAME:ROOT)")
        specs = [f"{specs[0]}:{args.root}"]
    specs += [f"manifest:{m}" for m in args.manifest or []]
    rows, problems = load_corpora(specs, data=args.data, mapping=mapping, classes=classes)
    _typos([r.label for r in rows], mapping, classes)
    rows = four_class(rows, classes)
    fcfg = FeatureConfig()
    cache = None if args.no_cache else FeatureCache(Path(args.cache) if args.cache else default_cache_dir(), fcfg)
    feats, bad = compute_features([r.path for r in rows], fcfg, cache=cache, workers=args.workers, progress=not args.quiet)
    _skipped(problems + bad)
    failed = {i for i, f in enumerate(feats) if f is None}
    return specs, rows, feats, failed, fcfg


def _cmd_train(args) -> int:
    import numpy as np

    from .config import TrainConfig
    from .data.manifest import write_manifest
    from .data.splits import load_folds, make_folds, row_key, save_folds
    from .errors import DataError
    from .experiment import run_split, validation_split
    from .train import fit

    mapping, classes = _label_options(args)
    specs, rows, feats, failed, fcfg = _train_rows(args, classes, mapping)
    gone = {row_key(rows[i]) for i in failed}
    keep = [i for i in range(len(rows)) if i not in failed]
    rows, feats = [rows[i] for i in keep], [feats[i] for i in keep]
    labels = [c for c in classes if any(r.label4 == c for r in rows)]
    if len(labels) < 2:
        raise DataError(f"{len(rows)} clip(s) left with {len(labels)} class(es) after {len(failed)} failed to load; need 2 classes")
    y = np.array([labels.index(r.label4) for r in rows], dtype=np.int64)
    over = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                              "crop_s": args.crop_s, "amp": args.amp}.items() if v is not None}
    tcfg = replace(TrainConfig(), seed=args.seed, class_weights=args.class_weights, device=args.device, **over)
    protocol = "split" if args.split else args.protocol
    folds = (load_folds(args.split, rows, ignore=gone) if args.split
             else make_folds(rows, args.protocol, k=args.folds, seed=args.seed, test_fraction=args.test_fraction,
                        test_speakers=args.test_speakers))
    out = Path(args.out)
    save_folds(out / "splits.json", rows, folds, protocol=protocol, seed=args.seed, folds_k=args.folds,
               classes=labels, corpora=specs)
    write_manifest(out / "manifest.csv", rows)
    fold = next((f for n, f in enumerate(folds, 1) if args.fold in (str(n), f.name)), None)
    if fold is None:
        raise DataError(f"--fold {args.fold}: no such fold; have 1..{len(folds)} ({', '.join(f.name for f in folds)})")
    print(f"{len(rows)} clips, " + ", ".join(f"{c} {int((y == k).sum())}" for k, c in enumerate(labels))
          + f"; {protocol}: fold {fold.name} of {len(folds)}; splits saved to {out / 'splits.json'}")
    if len(fold.test) == 0:
        fit_idx, val_idx = validation_split(rows, fold.train, y, speaker_independent=True,
                                            fraction=tcfg.val_fraction, seed=tcfg.seed)
        res = fit([feats[i] for i in fit_idx], y[fit_idx], [feats[i] for i in val_idx], y[val_idx], labels, out,
                  feature_config=fcfg, train_config=tcfg, resume=args.resume, progress=not args.quiet, meta={"split": "all"})
        print(f"trained on {len(fit_idx)} clips; validation UA {res.best_val_ua:.3f} on {len(val_idx)} clips "
              f"(best epoch {res.best_epoch + 1}); run dir: {out}")
        return 0
    r = run_split(fold.name, rows, feats, y, labels, fold.train, fold.test, out,
                  speaker_independent=fold.speaker_independent, feature_config=fcfg, train_config=tcfg,
                  progress=not args.quiet, resume=args.resume)
    print(r.text)
    print(f"run dir: {r.run_dir}")
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


# --------------------------------------------------------------------------- serve
def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="start the web page and REST API (FastAPI + uvicorn)")
    p.add_argument("--model", help="run directory or model.pt (default: the model bundled with this install)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload in MiB (default: 25)")
    p.add_argument("--max-duration-s", type=float, default=300.0, help="longest audio in seconds (default: 300)")
    p.add_argument("--max-concurrency", type=int, help="analyses running at once (default: CPU count, at most 4)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args) -> int:
    from .errors import CheckpointError

    try:
        import uvicorn

        from .serve import create_app
    except ImportError as e:
        raise EmospecError(f"serve needs the [serve] extra ({e.name} is missing): pip install 'emospec[serve]'") from e
    try:
        app = create_app(args.model, max_upload_mb=args.max_upload_mb, max_duration_s=args.max_duration_s,
                         max_concurrency=args.max_concurrency, device=args.device)
    except CheckpointError as e:
        if args.model is None:
            raise CheckpointError(f"{e}; pass --model RUN (a run directory or model.pt)") from e
        raise
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"emospec: warning: listening on {args.host}: the server is reachable from other machines",
              file=sys.stderr)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/"
    print(f"emospec: serving {app.state.recognizer.bundle.path} at {url} (API docs at {url}docs)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
    return 0


# --------------------------------------------------------------------------- predict
_PREDICT_EPILOG = """\
Folders contribute their audio files (by extension: .wav .flac .ogg .mp3 .opus .aiff ...; with
--recursive also those of sub-folders); files named explicitly are always tried. Results go to
stdout (a table, or JSON with --json); progress and one line per bad file (file: cause) go to
stderr. Bad files are skipped and the rest processed. Exit status: 0 when every file was
classified, 1 when any failed (or the model could not be loaded), 2 on a usage error.
"""


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify audio files and folders (or --timeline for long recordings)",
                       epilog=_PREDICT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files and/or folders")
    p.add_argument("-r", "--recursive", action="store_true", help="also take audio files in sub-folders")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of a table")
    out.add_argument("--csv", metavar="FILE", help="also write the results as CSV to FILE")
    p.add_argument("--top-k", type=int, default=1, help="how many ranked classes to show (default 1)")
    p.add_argument("--embeddings", action="store_true", help="include the 256-d embeddings in --json output")
    p.add_argument("--model", help="run directory, model.pt or model.onnx (default: the bundled model)")
    p.add_argument("--backend", choices=["torch", "onnx"], help="default: onnx for .onnx files, else torch")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per model call (default 16)")
    p.add_argument("--timeline", action="store_true", help="slide a window over each recording instead")
    p.add_argument("--window-s", type=float, default=3.0, help="timeline window in seconds (default 3)")
    p.add_argument("--hop-s", type=float, default=1.0, help="timeline hop in seconds (default 1)")
    p.add_argument("--plot", metavar="OUT.png", help="timeline plot (several files: OUT_<file>.png)")
    p.set_defaults(func=_cmd_predict)


def _audio_files(paths: List[str], recursive: bool) -> List[str]:
    from .data.ravdess import AUDIO_EXTS

    files: List[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            files += sorted(str(f) for f in found if f.suffix.lower() in AUDIO_EXTS and not f.is_dir())
        else:
            files.append(raw)
    return files


def _cmd_predict(args) -> int:
    import csv
    import io
    import json

    from tqdm.auto import tqdm

    from .config import atomic_write_bytes
    from .errors import ConfigError
    from .predict import load

    if args.plot and not args.timeline:
        raise ConfigError("--plot needs --timeline")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    files = _audio_files(args.paths, args.recursive)
    if not files:
        raise ConfigError(f"no audio files found in {', '.join(args.paths)}")
    if args.backend == "onnx" and not str(args.model or "").lower().endswith(".onnx"):
        print("exporting the model to ONNX first (run `emospec export --onnx FILE` once and pass --model FILE to skip this)",
              file=sys.stderr)
    rec = load(args.model, device=args.device, backend=args.backend)
    results: Dict[int, object] = {}
    failed: List[Dict[str, str]] = []
    bar = tqdm(total=len(files), desc="predict", unit="file", disable=args.quiet, file=sys.stderr, leave=False)
    if args.timeline:
        for i, f in enumerate(files):
            try:
                results[i] = rec.timeline(f, args.window_s, args.hop_s, batch_size=args.batch_size)
            except EmospecError as e:
                failed.append({"file": f, "error": str(e)})
                tqdm.write(f"error: {e}", file=sys.stderr)
            bar.update()
    else:
        for i, res in rec.predict_iter(files, args.batch_size):
            if isinstance(res, EmospecError):
                failed.append({"file": files[i], "error": str(res)})
                tqdm.write(f"error: {res}", file=sys.stderr)
            else:
                results[i] = res
            bar.update()
    bar.close()
    order = sorted(results)
    rows: List[List[str]] = []
    if args.timeline:
        header = ["file", "start_s", "end_s", "label", *[f"p_{c}" for c in rec.labels]]
        for i in order:
            for w in results[i].to_dict()["windows"]:
                rows.append([files[i], f"{w['start_s']:.2f}", f"{w['end_s']:.2f}", w["label"],
                             *[f"{w['scores'][c]:.4f}" for c in rec.labels]])
        if args.plot:
            for i in order:
                out = Path(args.plot)
                if len(files) > 1:
                    out = out.with_name(f"{out.stem}_{Path(files[i]).stem}{out.suffix or '.png'}")
                results[i].plot(out, title=f"{Path(files[i]).name}: emotion over time")
                print(f"plot: {out}", file=sys.stderr)
    else:
        header = ["file", "label", "score", "duration_s", "silent", *[f"p_{c}" for c in rec.labels]]
        for i in order:
            r = results[i]
            rows.append([files[i], r.label, f"{r.scores[r.label]:.4f}", f"{r.duration_s:.2f}", str(r.silent).lower(),
                         *[f"{r.scores[c]:.4f}" for c in rec.labels]])
    if args.json:
        if args.timeline:
            items = [{"source": files[i], **results[i].to_dict()} for i in order]
        else:
            items = [results[i].to_dict(args.top_k, embedding=args.embeddings) for i in order]
        print(json.dumps({"model": rec.path, "backend": rec.backend, "results": items, "failed": failed}, indent=2))
    else:
        if args.timeline:
            table = [[r[0], f"{r[1]}-{r[2]}", r[3], ", ".join(f"{c} {v}" for c, v in
                     sorted(zip(rec.labels, r[4:]), key=lambda cv: -float(cv[1]))[: args.top_k])] for r in rows]
            head = ["file", "window_s", "label", f"top-{args.top_k}"]
        else:
            table = [[files[i], results[i].label, ", ".join(f"{c} {v:.2f}" for c, v in results[i].top(args.top_k)),
                      f"{results[i].duration_s:.2f}"] for i in order]
            head = ["file", "label", f"top-{args.top_k}", "duration_s"]
        widths = [max(len(h), *(len(r[k]) for r in table)) if table else len(h) for k, h in enumerate(head)]
        for line in [head] + table:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    if args.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        atomic_write_bytes(args.csv, buf.getvalue().encode("utf-8", "surrogateescape"))  # file names as on disk
        print(f"csv: {args.csv}", file=sys.stderr)
    print(f"{len(results)} of {len(files)} file(s) done, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


# --------------------------------------------------------------------------- export
def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (dynamic batch and time axes) and check parity")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--model", help="run directory or model.pt (default: the bundled model)")
    p.add_argument("--waveform-input", action="store_true",
                   help="put the log-Mel front end in the graph: input (batch, samples) waveforms at 16 kHz")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default 18)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs torch parity check")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from .checkpoint import load_model
    from .export import export_onnx
    from .modelcard import bundled_paths

    bundle = load_model(args.model if args.model else bundled_paths()[0])
    res = export_onnx(bundle, args.onnx, input_kind="waveform" if args.waveform_input else "features",
                      opset=args.opset, check=not args.no_check)
    print(f"wrote {res['path']} ({res['bytes'] / 1e6:.1f} MB, opset {res['opset']}, {res['input_kind']} input, "
          f"dynamic batch and time axes) from {bundle.path}")
    if res["parity"]:
        par = res["parity"]
        print(f"parity onnxruntime vs torch on {par['n_clips']} clips of {', '.join(f'{d:g}' for d in par['durations_s'])} s: "
              f"max |dp| {par['max_abs_diff_probs']:.2e}, max |d embedding| {par['max_abs_diff_embedding']:.2e} "
              f"(tolerance {par['tolerance']:g})")
    return 0


# --------------------------------------------------------------------------- info
def _add_info(sub) -> None:
    p = sub.add_parser("info", help="print a model's card: data, protocol, accuracy with CIs, licence, versions")
    p.add_argument("--model", help="run directory, model.pt or model.onnx (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args) -> int:
    import json

    from .modelcard import describe, format_card

    card = describe(args.model)
    print(json.dumps(card, indent=2) if args.json else format_card(card))
    return 0


# --------------------------------------------------------------------------- main
COMMANDS: List[Callable] = [_add_demo, _add_prepare, _add_train, _add_evaluate, _add_explain, _add_predict, _add_export,
                            _add_info, _add_serve]


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
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")  # file names that are not UTF-8 print as their own bytes
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
