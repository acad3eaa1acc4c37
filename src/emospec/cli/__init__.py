"""The ``emospec`` command line: the only module that prints results.

Results go to stdout; progress bars, warnings and per-file errors to stderr.
Exit status: 0 success, 1 an emospec error (message on one line), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, List, Optional

from ..errors import EmospecError
from ..versions import __version__
from .common import err, recipe_from_args
from .data import add_prepare, add_train
from .evaluate import add_evaluate, add_explain
from .predict import add_export, add_predict

__all__ = ["main", "build_parser"]

log = logging.getLogger("emospec")

# --------------------------------------------------------------------------- demo
def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train on RAVDESS four classes and print reports for two splits")
    p.add_argument("--data", help="folder holding ravdess/ (default: $EMOSPEC_DATA or ../shared/data)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--epochs", type=int, help="epochs per split (default: the demo recipe's)")
    p.add_argument("--seed", type=int, help="seed for splits and training (default: the recipe's, 0)")
    p.add_argument("--recipe", default="demo", help="recipe: demo (default), default, paper, or a JSON file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. model.norm=global (repeatable)")
    p.add_argument("--include-calm", action="store_true", help="map RAVDESS calm into neutral")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from ..calibration import format_calibration
    from ..convergence import format_convergence
    from ..demo import run_demo
    from ..metrics import side_by_side

    res = run_demo(args.data, args.out, recipe=recipe_from_args(args), include_calm=args.include_calm, progress=not args.quiet)
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
        recall = ", ".join(f"{c} {v['recall']:.2f}" for c, v in r.report["per_class"].items())
        print(f"{r.name:>8}: UA {r.report['ua']:.3f}  WA {r.report['wa']:.3f}  macro-F1 {r.report['macro_f1']:.3f}"
              f"  recall {recall}  (run dir {r.run_dir})")
        print(f"{'':>8}  training: {format_convergence(r.fit.convergence)}")
        cal = r.report["calibration"]
        print(f"{'':>8}  {format_calibration(r.fit.calibration, cal['test'], cal['test_uncalibrated'])}")
    print("plots: " + ", ".join(str(p) for p in res.plots))
    print(f"wall time {res.seconds:.0f} s; summary in {res.out_dir / 'summary.json'}")
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
    from ..errors import CheckpointError

    try:
        import uvicorn

        from ..serve import create_app
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


# --------------------------------------------------------------------------- info
def _add_info(sub) -> None:
    p = sub.add_parser("info", help="print a model's card: data, protocol, accuracy with CIs, licence, versions")
    p.add_argument("--model", help="run directory, model.pt or model.onnx (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args) -> int:
    import json

    from ..modelcard import describe, format_card

    card = describe(args.model)
    print(json.dumps(card, indent=2) if args.json else format_card(card))
    return 0


# --------------------------------------------------------------------------- main
COMMANDS: List[Callable] = [_add_demo, add_prepare, add_train, add_evaluate, add_explain, add_predict, add_export,
                            _add_info, _add_serve]


TRAINING_COMMANDS = ("train", "evaluate", "demo")
"""Commands that train, and so first say whether other work already keeps the CPU busy (:func:`emospec.device.warn_if_cpu_busy`)."""


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
    if args.command in TRAINING_COMMANDS:
        from ..device import warn_if_cpu_busy

        warn_if_cpu_busy()  # before any work of its own
    try:
        return int(args.func(args) or 0)
    except EmospecError as e:
        err(str(e))
        return 1
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:  # `emospec ... | head`: the reader left; stop quietly, as Unix tools do
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not raise again
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
