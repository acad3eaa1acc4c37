"""Test-time window averaging: a saved model on whole clips vs the mean of its answers on crop-length windows.

    python benchmarks/window_average.py RUN_DIR [RUN_DIR ...] [--hop-s 0.5] [--out FILE.json]

The network is trained on ``crop_s``-second crops (2 s by default) and run on
whole clips, whose length its adaptive 6 x 6 pooling absorbs: a 3.6 s RAVDESS
clip puts about twice a crop's duration under each pooled column. Issue #14
asks whether averaging over windows of the training crop's length does
better. Each argument is a finished training folder (``model.pt`` and the
``predictions.csv`` of its test clips: an ``emospec evaluate`` fold, or the
``train_*`` folder of a cross-corpus run). Its clips are classified twice,

* as a user runs the model with no adaptation clips
  (:func:`emospec.norm.inference_model`), and, for per-speaker models,
* with each test speaker's own statistics folded in (as ``emospec evaluate``
  scores them; the whole-clip answers must equal the run's ``pred`` column),

once on the whole clip and once as the mean of the class probabilities over
windows of ``crop_s`` every ``--hop-s`` (the last window ends at the clip's
end; a clip no longer than a window is one window). Windows are cut from the
clip's model input after its standardisation (the clip's own statistics blended
in, for models with a clip weight), so the two answers differ only in what the
network pools over. Printed per run and
standardisation: UA on whole clips, UA of the window average, the paired
bootstrap Δ (windows − whole), and the recall per class; with several runs
(e.g. the folds of one evaluation), the same over all their clips pooled.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from emospec.bootstrap import paired_bootstrap
from emospec.checkpoint import load_model
from emospec.data.dataset import compute_features
from emospec.files import save_json
from emospec.metrics import unweighted_accuracy
from emospec.model import infer
from emospec.norm import fold_into_model, group_stats, inference_model, raw_inputs


def window_starts(frames: int, window: int, hop: int) -> List[int]:
    """First frames of the ``window``-frame windows every ``hop`` frames; the last one ends at ``frames``.

    ``[0]`` when the clip is no longer than one window.
    """
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window + 1, hop))
    return starts if starts[-1] == frames - window else [*starts, frames - window]


def whole_and_windows(model, inputs: List[torch.Tensor], window: int, hop: int) -> Tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(n, K)`` of ``model`` on each whole input ``(3, n_mels, frames_i)`` and averaged over its windows."""
    whole = model.probabilities(infer(model, inputs)[0]).numpy()
    pieces, owner = [], []
    for i, x in enumerate(inputs):
        for s in window_starts(int(x.shape[-1]), window, hop):
            pieces.append(x[..., s : s + window])
            owner.append(i)
    probs = model.probabilities(infer(model, pieces, batch_size=64)[0]).numpy()
    owner_arr = np.asarray(owner)
    return whole, np.stack([probs[owner_arr == i].mean(0) for i in range(len(inputs))])


def figures(y: np.ndarray, pw: np.ndarray, pa: np.ndarray, labels: List[str], resamples: int) -> Dict:
    """UA of whole-clip answers ``pw`` and window-average answers ``pa`` (class indices, ``(n,)``), paired Δ, recalls."""
    d = paired_bootstrap(y, pa, pw, labels, n_resamples=resamples)
    return {"n": int(y.size), "whole_ua": unweighted_accuracy(y, pw), "windows_ua": unweighted_accuracy(y, pa),
            "diff": d["difference"], "diff_ci95": [d["low"], d["high"]],
            "recall_whole": {c: float((pw[y == k] == k).mean()) for k, c in enumerate(labels) if (y == k).any()},
            "recall_windows": {c: float((pa[y == k] == k).mean()) for k, c in enumerate(labels) if (y == k).any()}}


def score(run: Path, hop_s: float, resamples: int) -> Dict[str, Dict]:
    """The figures of one training folder (see the module docstring), with the answers (``y``, ``whole``, ``windows``)."""
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    bundle = load_model(run)
    labels = list(bundle.labels)
    crop_s = float(json.loads((run / "config.json").read_text())["train"]["crop_s"])
    window = int(round(crop_s * 1000 / bundle.feature_config.hop_ms))
    hop = max(1, int(round(hop_s * 1000 / bundle.feature_config.hop_ms)))
    feats, bad = compute_features([r["path"] for r in rows], bundle.feature_config, progress=False)
    if bad:
        raise SystemExit("\n".join(bad))
    y = np.array([labels.index(r["true"]) for r in rows])
    model = inference_model(bundle.model, bundle.meta)
    results = {"unadapted": whole_and_windows(model, raw_inputs(model, feats), window, hop)}
    if bundle.model.config.norm == "speaker":
        speakers = np.array([r["speaker"] for r in rows])
        whole, avg = np.zeros((len(rows), len(labels))), np.zeros((len(rows), len(labels)))
        for s in np.unique(speakers):
            idx = np.flatnonzero(speakers == s)
            own = fold_into_model(bundle.model, group_stats([feats[i] for i in idx]))
            whole[idx], avg[idx] = whole_and_windows(own, [feats[i] for i in idx], window, hop)
        results["speaker"] = (whole, avg)
    out: Dict[str, Dict] = {}
    for mode, (whole, avg) in results.items():
        pw, pa = whole.argmax(1), avg.argmax(1)
        out[mode] = {**figures(y, pw, pa, labels, resamples), "labels": labels,
                     "answers": {"y": y.tolist(), "whole": pw.tolist(), "windows": pa.tolist()}}
        if mode == "speaker":
            out[mode]["agrees_with_run"] = float(np.mean([labels[k] == r["pred"] for k, r in zip(pw, rows)]))
    return out


def _print(name: str, res: Dict[str, Dict]) -> None:
    for mode, r in sorted(res.items()):
        lo, hi = r["diff_ci95"]
        print(f"{name} [{mode}, {r['n']} clips]: whole clips {r['whole_ua']:.3f}, window average {r['windows_ua']:.3f}, "
              f"Δ {r['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]; recall whole "
              + " ".join(f"{c} {v:.2f}" for c, v in r["recall_whole"].items())
              + " / windows " + " ".join(f"{c} {v:.2f}" for c, v in r["recall_windows"].items()), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="training folders with model.pt and predictions.csv")
    ap.add_argument("--hop-s", type=float, default=0.5, help="seconds between window starts (default 0.5)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    out: Dict[str, Dict] = {}
    for run in args.runs:
        out[str(run)] = score(run, args.hop_s, args.resamples)
        _print(str(run), out[str(run)])
    if len(args.runs) > 1:
        pooled = {}
        for mode in set.intersection(*(set(r) for r in out.values())):
            parts = [r[mode] for r in out.values()]
            y, pw, pa = (np.concatenate([p["answers"][k] for p in parts]) for k in ("y", "whole", "windows"))
            pooled[mode] = figures(y, pw, pa, parts[0]["labels"], args.resamples)
        out["pooled"] = pooled
        _print(f"all {len(args.runs)} runs pooled", pooled)
    if args.out:
        save_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
