"""Many ablation trainings at once: a priority queue of single folds, for a machine with a GPU.

``ablate.py`` runs a row's folds one after another, which takes hours on two
CPU cores. Here each job is *one fold* of one row (RAVDESS 6 speaker folds,
EMOVO leave-one-speaker-out, the same folds as ``ablate.py``) with one seed;
``--workers`` processes pull jobs in priority order and stop taking new ones
at ``--deadline`` seconds. The model is trained without the baseline (it
needs openSMILE, which a GPU image may lack); ``--merge`` then gathers the
fold folders under ``runs/sweep/<row>-s<seed>/<corpus>/`` and runs
``emospec.protocols.run_protocol`` over the folds present with ``resume=True``: every
trained fold is reused and the eGeMAPS + SVM baseline is fitted on the same
folds, giving the same ``metrics.json`` (pooled UA, CIs, paired Δ) as ``ablate.py``.

    python benchmarks/sweep.py --list                            # the jobs, in order
    python benchmarks/sweep.py --out /dev/shm/sweep --workers 12 --deadline 420
    python benchmarks/sweep.py --merge /dev/shm/sweep            # here: baseline, pooled metrics, table

A row's seed changes its training seed and, on RAVDESS, its speaker folds
(``emospec.protocols.make_folds`` takes the training seed), so seeds average over
both; each seed's paired Δ is on its own folds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablate import AUG, CORPORA, _cell, _corpus  # noqa: E402  (the same folds, corpus loading and table cells)

LAST = {"select": "last"}
PAPER_BUDGET = {"schedule": "onecycle", "lr": 2e-3, "amp": "bf16", "class_weights": True}
ROWS: Dict[str, Tuple[str, str, Dict[str, object]]] = {
    # name: (change, base recipe, overrides)
    "default": ("the default recipe: the best validation epoch of 100", "default", {}),
    "last": ("the last epoch of 100 kept (validation only watched)", "default", LAST),
    "last-allspk": ("the last epoch kept, no validation speakers (all training speakers fit)", "default",
                    {**LAST, "val_fraction": 0.0}),
    "paper-e100": ("paper model and features, 100 epochs one-cycle, last epoch", "paper",
                   {"epochs": 100, "patience": 100, **PAPER_BUDGET, **LAST}),
    "paper-e200": ("paper model and features, 200 epochs one-cycle, last epoch", "paper",
                   {"epochs": 200, "patience": 200, **PAPER_BUDGET, **LAST}),
    "last+mixup": ("+ mixup (alpha 0.2)", "default", {**LAST, "mixup_alpha": 0.2}),
    "last-no-bn": ("without BatchNorm", "default", {**LAST, "model.batch_norm": False}),
    "last-128mels": ("128 mel bands", "default", {**LAST, "feature.n_mels": 128}),
    "last-stride2": ("first conv stride 2", "default", {**LAST, "model.first_stride": 2}),
    "last-crop3s": ("3 s crops", "default", {**LAST, "crop_s": 3.0}),
    "last-global-norm": ("global standardisation", "default", {**LAST, "model.norm": "global"}),
    "last-utterance-norm": ("per-utterance standardisation", "default", {**LAST, "model.norm": "utterance"}),
    "last-no-floor": ("no 60 dB floor", "default", {**LAST, "feature.top_db": None}),
    "last+specaug": ("+ SpecAugment", "default", {**LAST, **AUG}),
    "last-dropout0.2": ("dropout 0.2", "default", {**LAST, "model.dropout": 0.2}),
    "last-e200": ("200 epochs, last epoch", "default", {**LAST, "epochs": 200, "patience": 200}),
    "last+other-corpus": ("+ the other corpus in every training side (corpus-balanced)", "default",
                          {**LAST, "balance": "corpus"}),
    "e200": ("200 epochs, the best validation epoch kept", "default", {"epochs": 200, "patience": 200}),
    "ema0.8": ("a moving average of the weights (decay 0.8 an epoch) validated, chosen and kept", "default", {"ema": 0.8}),
}
WITH_OTHER_CORPUS = {"last+other-corpus"}
PRIORITY: List[Tuple[str, int]] = [
    ("e200", 1), ("ema0.8", 0),  # e200's second seed; ema0.8 lost on RAVDESS (session 19), its EMOVO half is unmeasured
    ("last", 0), ("last-allspk", 0), ("default", 0), ("last", 1), ("last-allspk", 1), ("default", 1), ("paper-e100", 0),
    ("last+mixup", 0), ("last-no-bn", 0), ("last-128mels", 0), ("last-stride2", 0), ("last-crop3s", 0),
    ("last-global-norm", 0), ("last-utterance-norm", 0), ("last-no-floor", 0), ("last+specaug", 0),
    ("last-dropout0.2", 0), ("last-e200", 0), ("last", 2), ("last-allspk", 2), ("default", 2),
    ("paper-e200", 0), ("last+other-corpus", 0),
]
"""(row, seed) in the order they are wanted."""
N_FOLDS = {"emovo": 6, "ravdess": 6}


def jobs() -> List[Tuple[str, int, str, int]]:
    """(row, seed, corpus, fold) in priority order: EMOVO's folds first (the smaller corpus), then RAVDESS."""
    return [(row, seed, corpus, j) for row, seed in PRIORITY for corpus in ("emovo", "ravdess") for j in range(N_FOLDS[corpus])]


def _recipe(row: str, seed: int, extra: Dict[str, object]):
    """The row's recipe with its seed, plus ``--set`` overrides given to every row (a quick smoke run)."""
    from emospec.recipe import recipe_from

    _, base, over = ROWS[row]
    return recipe_from(base, {**over, "seed": seed, **extra})


def _job_dir(out: Path, row: str, seed: int, corpus: str, j: int) -> Path:
    return out / "jobs" / f"{row}-s{seed}" / corpus / f"job{j}"


_MEMO: Dict = {}


def _run_job(args) -> Tuple[str, float, str]:
    """One fold, no baseline; checkpoints deleted afterwards (only JSON is kept)."""
    out, data_root, extra_set, (row, seed, corpus, j) = args
    from emospec.protocols import run_protocol

    t0 = time.time()
    d = _job_dir(Path(out), row, seed, corpus, j)
    try:
        rec = _recipe(row, seed, extra_set)
        data = _corpus_nobase(corpus, rec.features, data_root)
        extra = [_corpus_nobase(c, rec.features, data_root) for c in CORPORA if c != corpus] if row in WITH_OTHER_CORPUS else []
        run_protocol(data, CORPORA[corpus][0], d, feature_config=rec.features, train_config=rec.train, model_config=rec.model,
                     baseline=None, progress=False, resume=True, plots=False, fold_subset=[j], extra=extra)
        for pt in d.rglob("*.pt"):
            pt.unlink()
        status = "ok"
    except Exception as e:  # one bad job must not stop the queue
        status = f"{type(e).__name__}: {e}"
    return f"{row}-s{seed}/{corpus}/fold{j}", time.time() - t0, status


def _corpus_nobase(name: str, features, data_root):
    from emospec.data.paths import find_data_root
    from emospec.protocols import load_corpus

    key = (name, features)
    if key not in _MEMO:
        _MEMO[key] = load_corpus(name, find_data_root(data_root, corpus=name) / name, feature_config=features,
                                 baseline=False, progress=False)
    return _MEMO[key]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run(out: Path, workers: int, deadline: float, data_root=None, extra: Optional[Dict[str, object]] = None, only=None) -> None:
    """Run the queue (or the ``only`` rows, "ROW-sSEED") until it is empty or ``deadline`` seconds have passed
    (jobs running then are finished)."""
    extra = {} if extra is None else extra
    t0 = time.time()
    todo = [j for j in jobs() if only is None or f"{j[0]}-s{j[1]}" in only]
    log = open(out / "sweep_log.txt", "a")
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, maxtasksperchild=None) as pool:
        pending = []
        i = 0
        while i < len(todo) or pending:
            while i < len(todo) and len(pending) < workers and time.time() - t0 < deadline:
                pending.append(pool.apply_async(_run_job, ((str(out), data_root, extra, todo[i]),)))
                i += 1
            if time.time() - t0 >= deadline and i < len(todo):
                todo = todo[:i]  # no new jobs after the deadline
            done = [p for p in pending if p.ready()]
            for p in done:
                name, sec, status = p.get()
                line = f"{time.time() - t0:7.1f} s  {name}  {sec:6.1f} s  {status}"
                print(line, flush=True)
                log.write(line + "\n")
                log.flush()
                pending.remove(p)
            time.sleep(0.5)
    print(f"sweep: {i} jobs started, {time.time() - t0:.0f} s", flush=True)


def merge(src: Path, out: Path, data_root=None, extra: Optional[Dict[str, object]] = None) -> str:
    """Gather finished folds into ``out/<row>-s<seed>/<corpus>/``, add the baseline, write metrics and the table."""
    extra = {} if extra is None else extra
    from emospec.files import save_json
    from emospec.protocols import run_protocol

    memo: Dict = {}
    lines = ["| row | change | seed | corpus | folds | UA [95% CI] | sad recall | Δ vs baseline [95% CI] | baseline UA | train UA (full) "
             "| kept / best val epoch |",
             "|" + "---|" * 11]
    records = []
    for row, seed in dict.fromkeys(PRIORITY):
        for corpus in ("emovo", "ravdess"):
            have = [j for j in range(N_FOLDS[corpus]) if list(_job_dir(src, row, seed, corpus, j).glob("*/oof.json"))]
            if not have:
                continue
            d = out / f"{row}-s{seed}" / corpus
            for j in have:
                for fold in _job_dir(src, row, seed, corpus, j).glob("*/oof.json"):
                    (d / fold.parent.name).mkdir(parents=True, exist_ok=True)
                    for f in fold.parent.iterdir():
                        shutil.copy2(f, d / fold.parent.name / f.name)
            rec = _recipe(row, seed, extra)
            data = _corpus(corpus, rec.features, data_root, out, memo)
            more = [_corpus(c, rec.features, data_root, out, memo) for c in CORPORA if c != corpus] if row in WITH_OTHER_CORPUS else []
            res = run_protocol(data, CORPORA[corpus][0], d, feature_config=rec.features, train_config=rec.train,
                               model_config=rec.model, progress=False, resume=True, plots=False, fold_subset=have, extra=more)
            s = dict(res.summary, sweep_row=[row, seed, ROWS[row]], fold_subset=have)
            save_json(d / "metrics.json", s)
            p, conv = s["paired_ua"], [f.get("convergence") or {} for f in s["folds"]]
            tr = [c.get("train_ua_full") for c in conv if c.get("train_ua_full") is not None]
            ep = " ".join(f"{c.get('kept_epoch', c.get('best_epoch'))}/{c.get('best_epoch')}" for c in conv)
            sad = s["model"]["per_class"]["sad"]["recall"]
            lines.append(f"| {row} | {ROWS[row][0]} | {seed} | {corpus} | {len(have)} | {_cell(s)} | {sad:.2f} | "
                         f"{p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] | {s['baseline']['ua']:.3f} | "
                         f"{sum(tr) / max(1, len(tr)):.2f} | {ep} |")
            records.append({"row": row, "seed": seed, "corpus": corpus, "folds": have, "ua": s["model"]["ua"],
                            "ci": [s["model"]["ci"]["ua"]["low"], s["model"]["ci"]["ua"]["high"]], "sad_recall": sad,
                            "recall": {c: s["model"]["per_class"][c]["recall"] for c in s["labels"]},
                            "diff": p["difference"], "diff_ci": [p["low"], p["high"]], "baseline_ua": s["baseline"]["ua"],
                            "train_ua_full": tr, "val_ua": [f.get("best_val_ua") for f in s["folds"]]})
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    (out / "table.json").write_text(json.dumps(records, indent=1))
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/sweep-jobs", help="where the jobs write (a RAM disk on a GPU box)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--deadline", type=float, default=float("inf"), help="seconds after which no new job starts")
    ap.add_argument("--data", help="folder holding the corpora (default: $EMOSPEC_DATA or ../shared/data)")
    ap.add_argument("--list", action="store_true", help="print the jobs in order and stop")
    ap.add_argument("--merge", metavar="JOBS", help="instead: merge the finished jobs of this folder into runs/sweep")
    ap.add_argument("--merged", default="runs/sweep")
    ap.add_argument("--only", help="comma-separated ROW-sSEED names (e.g. last-crop3s-s0): only their jobs")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override every row (smoke runs)")
    args = ap.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.set)
    if args.list:
        for k, job in enumerate(jobs()):
            print(k, *job)
        return 0
    if args.merge:
        print(merge(Path(args.merge), Path(args.merged), args.data, extra))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run(out, args.workers, args.deadline, args.data, extra, args.only.split(",") if args.only else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
