"""``emospec prepare`` and ``emospec train``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_cache_options, add_label_options, add_recipe_options, label_options, print_skipped, recipe_from_args, warn_typos

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


def add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare", help="scan a corpus, print counts, write its manifest with --out (and fill the feature cache)",
        description="Scan CORPUS at ROOT in its release layout, print counts per class and per speaker, "
                    "with --out FILE write the manifest CSV, and with --features compute every clip's features "
                    "into the cache.",
        epilog=_PREPARE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", help="ravdess, emovo, nemo, iemocap, crema-d, crema-d-votes, tess, emodb, savee, folder, manifest")
    p.add_argument("root", help="the corpus folder (iemocap: also the df_iemocap.csv table; manifest: the CSV/JSON file)")
    p.add_argument("--out", metavar="FILE", help="write the manifest CSV to FILE (default: no manifest is written)")
    add_label_options(p)
    p.add_argument("--features", action="store_true", help="compute the features of every utterance into the cache")
    p.add_argument("--recipe", default="default", help="with --features: the recipe whose features to cache (default: default)")
    add_cache_options(p)
    p.add_argument("--shard", help="with --features: compute only slice I of N (1-based), e.g. 2/4")
    p.set_defaults(func=_cmd_prepare)


def _cmd_prepare(args) -> int:
    from ..data.cache import FeatureCache, default_cache_dir
    from ..data.corpora import prepare_corpus
    from ..data.dataset import fill_cache, parse_shard, shard
    from ..data.manifest import count_table, write_manifest

    mapping, classes = label_options(args)
    part = parse_shard(args.shard) if args.shard else None
    rows, problems = prepare_corpus(args.corpus, args.root, mapping=mapping, classes=classes)
    print_skipped(problems)
    warn_typos([r.label for r in rows], mapping, classes)
    n_spk = len({r.speaker for r in rows if r.speaker})
    print(f"{args.corpus} at {args.root}: {len(rows)} utterances, {n_spk} speakers, {len(problems)} skipped")
    print(count_table(rows, classes))
    n_in = sum(r.label4 in classes for r in rows)
    print(f"{len(classes)} classes ({', '.join(classes)}): {n_in} utterances; {len(rows) - n_in} outside them")
    if args.out:
        write_manifest(args.out, rows)
        print(f"manifest: {args.out}")
    else:
        print("manifest: not written (add --out FILE to write one)")
    if args.features:
        from ..recipe import recipe_from

        cache = FeatureCache(Path(args.cache) if args.cache else default_cache_dir(), recipe_from(args.recipe).features)
        todo = shard(rows, *part, key=lambda r: (r.corpus, r.utterance_id)) if part else rows
        st = fill_cache([r.path for r in todo], cache, workers=args.workers, progress=not args.quiet)
        print_skipped(st.problems)
        where = f" (shard {part[0]}/{part[1]})" if part else ""
        print(f"features{where}: {len(todo)} clips, {st.hits} cached, {st.computed} computed, "
              f"{len(st.problems)} failed, {st.seconds:.1f} s, {args.workers} worker(s) -> {cache.folder}")
    return 0


# --------------------------------------------------------------------------- train
def add_train(sub) -> None:
    from ..data.splits import PROTOCOLS

    p = sub.add_parser("train", help="train a model on one or more corpora and report on held-out data")
    p.add_argument("--corpus", action="append", metavar="NAME[:ROOT]",
                   help="corpus to train on; repeat to train on several (ROOT default: <data>/<name>; default: ravdess)")
    p.add_argument("--manifest", action="append", metavar="FILE", help="a manifest CSV/JSON (path,label[,speaker]); repeatable")
    p.add_argument("--root", help="root of the single --corpus (same as NAME:ROOT)")
    p.add_argument("--data", help="folder holding the corpora (default: $EMOSPEC_DATA or ../shared/data)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="speaker",
                   help="speaker: k folds of whole speakers, the same as `emospec evaluate` picks for the same seed "
                        "(IEMOCAP: by session; default); loso: leave one speaker out; paper: stratified random 90/10; "
                        "all: train on everything, validation carved out")
    p.add_argument("--folds", type=int,
                   help="k for --protocol speaker (default min(6, speakers)) or paper (default 1: the single split)")
    p.add_argument("--test-speakers", type=int, help="--protocol speaker: one fold holding out this many speakers")
    p.add_argument("--fold", default="1", help="which fold to train and test: its number or name (default 1)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="test share for --protocol paper (default 0.1)")
    p.add_argument("--split", help="reuse a saved split (a run's splits.json or split.json) instead of --protocol")
    add_label_options(p)
    add_cache_options(p)
    p.add_argument("--no-cache", action="store_true", help="compute features without the cache")
    p.add_argument("--out", required=True, help="run directory to write")
    add_recipe_options(p, seed_help="seed for the split and training (default: the recipe's)")
    p.add_argument("--device", help="auto, cpu, cuda... (default: the recipe's)")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off", "bf16-round"],
                   help="mixed precision (default: the recipe's, bf16; on a CPU without native bf16 it trains in float32; "
                        "bf16-round: float32 kernels with bf16's rounding)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.set_defaults(func=_cmd_train)


def _train_rows(args, classes, mapping, recipe):
    """Rows, features and problems for ``train``: corpora + manifests, the run's classes, cached features."""
    from ..data.cache import FeatureCache, default_cache_dir
    from ..data.corpora import four_class, load_corpora
    from ..data.dataset import compute_features
    from ..errors import DataError

    specs = list(args.corpus or ([] if args.manifest else ["ravdess"]))
    if args.root:
        if len(specs) != 1 or ":" in specs[0]:
            raise DataError("--root goes with exactly one --corpus NAME (or write --corpus NAME:ROOT)")
        specs = [f"{specs[0]}:{args.root}"]
    specs += [f"manifest:{m}" for m in args.manifest or []]
    rows, problems = load_corpora(specs, data=args.data, mapping=mapping, classes=classes)
    warn_typos([r.label for r in rows], mapping, classes)
    rows = four_class(rows, classes)
    fcfg = recipe.features
    cache = None if args.no_cache else FeatureCache(Path(args.cache) if args.cache else default_cache_dir(), fcfg)
    feats, bad = compute_features([r.path for r in rows], fcfg, cache=cache, workers=args.workers, progress=not args.quiet)
    print_skipped(problems + bad)
    failed = {i for i, f in enumerate(feats) if f is None}
    return specs, rows, feats, failed, fcfg


def _cmd_train(args) -> int:
    import numpy as np

    from ..calibration import format_calibration
    from ..convergence import format_convergence
    from ..data.manifest import write_manifest
    from ..data.splits import load_folds, make_folds, row_key, save_folds
    from ..errors import DataError
    from ..experiment import run_split, train_on

    mapping, classes = label_options(args)
    recipe = recipe_from_args(args, amp=args.amp)
    specs, rows, feats, failed, fcfg = _train_rows(args, classes, mapping, recipe)
    gone = {row_key(rows[i]) for i in failed}
    keep = [i for i in range(len(rows)) if i not in failed]
    rows, feats = [rows[i] for i in keep], [feats[i] for i in keep]
    labels = [c for c in classes if any(r.label4 == c for r in rows)]
    if len(labels) < 2:
        raise DataError(f"{len(rows)} clip(s) left with {len(labels)} class(es) after {len(failed)} failed to load; need 2 classes")
    y = np.array([labels.index(r.label4) for r in rows], dtype=np.int64)
    tcfg, mcfg = recipe.train, recipe.model_for(len(labels))
    protocol = "split" if args.split else args.protocol
    k = 1 if args.protocol == "paper" and args.folds is None else args.folds  # train's paper default: one split
    folds = (load_folds(args.split, rows, ignore=gone) if args.split
             else make_folds(args.protocol, rows, folds=k, seed=tcfg.seed, test_fraction=args.test_fraction,
                             test_speakers=args.test_speakers))
    out = Path(args.out)
    save_folds(out / "splits.json", rows, folds, protocol=protocol, seed=tcfg.seed, folds_k=len(folds),
               classes=labels, corpora=specs)
    write_manifest(out / "manifest.csv", rows)
    fold = next((f for n, f in enumerate(folds, 1) if args.fold in (str(n), f.name)), None)
    if fold is None:
        raise DataError(f"--fold {args.fold}: no such fold; have 1..{len(folds)} ({', '.join(f.name for f in folds)})")
    print(f"{len(rows)} clips, " + ", ".join(f"{c} {int((y == k).sum())}" for k, c in enumerate(labels))
          + f"; {protocol}: fold {fold.name} of {len(folds)}; splits saved to {out / 'splits.json'}")
    if len(fold.test) == 0:
        t = train_on(rows, feats, y, labels, fold.train, out, name="all", speaker_independent=True, feature_config=fcfg,
                     model_config=mcfg, train_config=tcfg, progress=not args.quiet, resume=args.resume)
        print(f"trained on {len(t.fit_idx)} clips; validation UA {t.fit.best_val_ua:.3f} on {len(t.val_idx)} clips "
              f"(best epoch {t.fit.best_epoch + 1}); run dir: {out}")
        print(f"training: {format_convergence(t.fit.convergence)}")
        print(format_calibration(t.fit.calibration))
        return 0
    r = run_split(fold.name, rows, feats, y, labels, fold.train, fold.test, out,
                  speaker_independent=fold.speaker_independent, feature_config=fcfg, model_config=mcfg, train_config=tcfg,
                  progress=not args.quiet, resume=args.resume)
    print(r.text)
    print(f"training: {format_convergence(r.fit.convergence)}")
    print(format_calibration(r.fit.calibration, r.report["calibration"]["test"], r.report["calibration"]["test_uncalibrated"]))
    print(f"run dir: {r.run_dir}")
    return 0
