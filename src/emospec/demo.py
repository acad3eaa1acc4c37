"""``emospec demo``: RAVDESS four classes, the paper's random 90/10 split beside a
speaker-independent split, trained and reported from scratch in minutes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from .config import to_dict
from .data.corpora import four_class, prepare_corpus
from .data.dataset import compute_features
from .data.labels import CLASSES4
from .data.paths import find_data_root
from .data.splits import check_disjoint, paper_split, speaker_holdout
from .errors import DataError
from .experiment import SplitResult, run_split
from .files import save_json
from .parallel import parallel_workers, run_jobs
from .recipe import RECIPES, Recipe
from .versions import environment

__all__ = ["DemoResult", "DEMO_TRAIN", "run_demo"]

log = logging.getLogger(__name__)

DEMO_TRAIN = RECIPES["demo"].train
"""The demo recipe's training part (the recipe is ``emospec.recipe.RECIPES["demo"]``)."""


@dataclass
class DemoResult:
    out_dir: Path
    n_clips: int
    counts: Dict[str, int]
    splits: List[SplitResult]
    problems: List[str]
    plots: List[Path]
    seconds: float


def run_demo(
    data: Optional[str] = None,
    out_dir: str | Path = "runs/demo",
    *,
    recipe: Recipe = RECIPES["demo"],
    test_speakers: int = 4,
    include_calm: bool = False,
    progress: bool = True,
    parallel: bool = True,
) -> DemoResult:
    """Train and test on RAVDESS four classes under two splits with ``recipe``; write runs and plots.

    ``out_dir/paper`` holds the stratified random 90/10 run (speakers shared),
    ``out_dir/speaker`` the held-out-actors run; ``out_dir/summary.json`` both.
    With ``parallel`` on a CPU of two or more cores the two splits train at
    once, in two processes of half the cores each
    (:func:`emospec.parallel.parallel_workers`).
    """
    from . import plots

    t0 = time.perf_counter()
    train_config, feature_config = recipe.train, recipe.features
    root = find_data_root(data, corpus="ravdess")
    mapping = {"calm": "neutral"} if include_calm else None
    rows, problems = prepare_corpus("ravdess", root / "ravdess", mapping=mapping)
    rows = four_class(rows, CLASSES4)
    feats, bad = compute_features([r.path for r in rows], feature_config, progress=progress, desc="3D log-Mel")
    problems += bad
    keep = [i for i, f in enumerate(feats) if f is not None]
    rows = [rows[i] for i in keep]
    clips = [f for f in feats if f is not None]  # the same clips as keep, typed as present
    if not rows:
        raise DataError(f"{root / 'ravdess'}: no readable RAVDESS clips")
    labels = [c for c in CLASSES4 if any(r.label4 == c for r in rows)]
    y = np.array([labels.index(r.label4) for r in rows], dtype=np.int64)
    counts = dict(Counter(r.label4 for r in rows))
    counts = {c: counts.get(c, 0) for c in labels}

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    speakers = [r.speaker for r in rows]
    tr_p, te_p = paper_split([r.label4 for r in rows], test_fraction=0.1, seed=train_config.seed)
    tr_s, te_s = speaker_holdout(speakers, n_test=test_speakers, genders=[r.gender for r in rows], seed=train_config.seed)
    check_disjoint(speakers, (tr_s, te_s))

    jobs: List[Dict[str, Any]] = []
    for name, (tr, te), indep in (("paper", (tr_p, te_p), False), ("speaker", (tr_s, te_s), True)):
        log.info("demo: split %s: %d train, %d test", name, len(tr), len(te))
        jobs.append(dict(name=name, rows=rows, feats=clips, y=y, labels=labels, train_idx=tr, test_idx=te,
                         run_dir=out / name, speaker_independent=indep, feature_config=feature_config,
                         model_config=recipe.model_for(len(labels)), train_config=train_config))
    workers = parallel_workers(len(jobs), train_config.device) if parallel else 1
    if workers > 1:
        results = run_jobs(run_split, [{**job, "progress": False} for job in jobs], workers, names=[j["name"] for j in jobs],
                           run_dirs=[j["run_dir"] for j in jobs], epochs=train_config.epochs, progress=progress)
    else:
        results = [run_split(**job, progress=progress) for job in jobs]

    made = [plots.class_distribution(counts, out / "class_distribution.png", title="RAVDESS, four classes")]
    for r in results:
        made.append(plots.confusion(r.report["confusion"], labels, out / f"confusion_{r.name}.png",
                                    title=f"Confusion matrix, {r.name} split (UA {r.report['ua']:.2f})"))
        made.append(plots.training_curves(r.fit.history, out / f"training_{r.name}.png", title=f"Training, {r.name} split"))
    seconds = time.perf_counter() - t0
    save_json(out / "summary.json", {
        "data": str(root / "ravdess"), "n_clips": len(rows), "counts": counts, "seconds": seconds,
        "splits_at_once": workers,
        "recipe": {**recipe.to_dict(), "model": to_dict(recipe.model_for(len(labels)))}, "versions": environment(),
        "splits": {r.name: {"ua": r.report["ua"], "wa": r.report["wa"], "macro_f1": r.report["macro_f1"],
                            **r.report["split"]} for r in results},
        "plots": [str(p) for p in made], "problems": problems,
    })
    return DemoResult(out, len(rows), counts, results, problems, made, seconds)
