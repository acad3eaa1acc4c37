"""Helpers shared by the command-line sections (:mod:`emospec.cli` and its ``cli_*`` modules)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List


def err(msg: str) -> None:
    print(f"emospec: error: {msg}", file=sys.stderr)


def add_recipe_options(p, *, default: str = "default", seed_help: str = "seed (default: the recipe's)") -> None:
    """``--recipe``, ``--set`` and the plain training flags that override the recipe (see :func:`recipe_from_args`)."""
    p.add_argument("--recipe", default=default,
                   help=f"recipe: default, paper, demo, or a JSON file (a recipe or a run's config.json; default {default})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field: model.batch_norm=true, feature.n_mels=64, train.lr=0.01 or lr=0.01 (repeatable)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--crop-s", type=float)
    p.add_argument("--seed", type=int, help=seed_help)
    p.add_argument("--class-weights", choices=["on", "off"], help="class-weighted loss (default: the recipe's)")


def recipe_from_args(args, **extra):
    """The run's :class:`~emospec.recipe.Recipe`: ``--recipe``, then ``--set``, then the plain flags."""
    from ..recipe import parse_overrides, recipe_from

    over = parse_overrides(getattr(args, "overrides", []))
    flags = {"epochs": args.epochs, "batch_size": getattr(args, "batch_size", None), "lr": getattr(args, "lr", None),
             "crop_s": getattr(args, "crop_s", None), "seed": args.seed, "device": getattr(args, "device", None),
             "amp": extra.get("amp"),
             "class_weights": None if getattr(args, "class_weights", None) is None else args.class_weights == "on"}
    over.update({f"train.{k}": v for k, v in flags.items() if v is not None})
    if extra.get("model_norm"):
        over["model.norm"] = extra["model_norm"]
    return recipe_from(getattr(args, "recipe", "demo"), over)


# --------------------------------------------------------------------------- data options (prepare, train)
def add_label_options(p) -> None:
    p.add_argument("--map", help="label mapping overrides, e.g. 'Angry=angry,calm=neutral' (empty value drops a label)")
    p.add_argument("--classes", help="the run's classes in order (default: neutral,happy,angry,sad)")


def add_cache_options(p) -> None:
    p.add_argument("--cache", help="feature cache folder (default: $EMOSPEC_CACHE or ~/.cache/emospec/features)")
    p.add_argument("--workers", type=int, default=1, help="feature worker processes (default: 1)")


def label_options(args):
    from ..data.labels import CLASSES4, parse_classes, parse_map

    return (parse_map(args.map) if args.map else None), (parse_classes(args.classes) if args.classes else CLASSES4)


def print_skipped(lines: List[str]) -> None:
    for line in lines:
        print(f"skipped: {line}", file=sys.stderr)
    if lines:
        print(f"skipped {len(lines)} item(s) in all", file=sys.stderr)


def warn_typos(labels: List[str], mapping, classes) -> None:
    from ..data.labels import likely_typos

    for line in likely_typos(labels, mapping, classes):
        print(f"warning: {line}", file=sys.stderr)


def audio_files(paths: List[str], recursive: bool) -> List[str]:
    from ..data.ravdess import AUDIO_EXTS

    files: List[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            files += sorted(str(f) for f in found if f.suffix.lower() in AUDIO_EXTS and not f.is_dir())
        else:
            files.append(raw)
    return files
