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
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision (default auto: bf16/fp16 on CUDA, off on CPU)")
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
                              "crop_s": args.crop_s, "amp": args.amp}.items() if v is not None}
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
    p = sub.add_parser("evaluate", help="report a trained model on a corpus or manifest")
    p.add_argument("--model", required=True, help="run directory or model.pt")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="manifest CSV (path,label[,speaker])")
    src.add_argument("--corpus", help="corpus loader name, with --root")
    p.add_argument("--root", help="corpus root folder")
    p.add_argument("--json", dest="json_out", help="also write the report as JSON here")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    import json

    import numpy as np

    from .checkpoint import load_model
    from .data.corpora import prepare_corpus
    from .data.dataset import compute_features
    from .data.manifest import read_manifest
    from .errors import DataError
    from .evaluate import format_report, report
    from .model import infer

    bundle = load_model(args.model)
    if args.manifest:
        rows = read_manifest(args.manifest)
    else:
        if not args.root:
            raise DataError("--corpus needs --root")
        rows, problems = prepare_corpus(args.corpus, args.root)
        for line in problems:
            print(f"skipped: {line}", file=sys.stderr)
    rows = [r for r in rows if r.label4 in bundle.labels]
    if not rows:
        raise DataError(f"no utterances with a label the model knows ({bundle.labels})")
    feats, bad = compute_features([r.path for r in rows], bundle.feature_config, progress=not args.quiet)
    for line in bad:
        print(f"skipped: {line}", file=sys.stderr)
    keep = [i for i, f in enumerate(feats) if f is not None]
    logits, _ = infer(bundle.model, [feats[i] for i in keep])
    y_true = np.array([bundle.labels.index(rows[i].label4) for i in keep])
    rep = report(y_true, logits.argmax(1).numpy(), bundle.labels)
    print(format_report(rep, title=f"{bundle.path} on {len(keep)} clips"))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
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


# --------------------------------------------------------------------------- main
COMMANDS: List[Callable] = [_add_demo, _add_train, _add_evaluate, _add_serve]


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
