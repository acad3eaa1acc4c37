"""Precise BatchNorm statistics after the fact: the same weights, their BatchNorm statistics re-estimated.

    python benchmarks/precise_bn.py runs/budget/e100/ravdess --corpus ravdess
    python benchmarks/precise_bn.py runs/ablate/default/emovo --corpus emovo

For every fold of a cross-validation run (``fold_*/model.pt`` + ``split.json``)
it re-estimates the model's BatchNorm statistics in float32 on 320 random 2 s
crops of that fold's training clips (:func:`emospec.model.recalibrate_batchnorm`,
what ``TrainConfig.precise_bn`` does after every epoch) and scores both models
on the fold's test clips and on 200 of its training clips. Printed: per fold
UA and *sad* recall before -> after, then the pooled paired bootstrap.
Only the BatchNorm buffers differ, so the difference is the statistics' alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA  # noqa: E402
from emospec.bootstrap import paired_bootstrap  # noqa: E402
from emospec.checkpoint import load_model  # noqa: E402
from emospec.cv import load_corpus  # noqa: E402
from emospec.data.dataset import CropDataset  # noqa: E402
from emospec.data.labels import CLASSES4  # noqa: E402
from emospec.metrics import unweighted_accuracy  # noqa: E402
from emospec.model import infer, recalibrate_batchnorm  # noqa: E402
from emospec.norm import normalize_for  # noqa: E402
from emospec.recipe import RECIPES  # noqa: E402


def _crops(model, feats, idx, rng, n=320, frames=200):
    """``n`` random 2 s crops of ``feats[idx]`` as training draws them (:class:`CropDataset`), in batches of 32."""
    pick = rng.permutation(idx)[:n]
    ds = CropDataset([feats[i] for i in pick], np.zeros(len(pick), np.int64), frames, model.input_mean,
                     seed=int(rng.integers(2**31)))
    crops = [ds[k][0] for k in range(len(ds))]
    return [torch.stack(crops[k:k + 32]) for k in range(0, len(crops), 32)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a cross-validation run directory (fold_*/model.pt, split.json)")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    data = load_corpus(args.corpus, Path(args.data) / args.corpus, feature_config=RECIPES["default"].features,
                       baseline=False, progress=False)
    rows, labels = data.rows, list(CLASSES4)
    ids = {r.utterance_id: i for i, r in enumerate(rows)}
    y = np.array([labels.index(r.label4) if r.label4 in labels else -1 for r in rows])
    sad = labels.index("sad")
    truth, stale, precise = [], [], []
    for fold in sorted(p.parent for p in Path(args.run).glob("*/model.pt")):
        model = load_model(fold / "model.pt").model.float().eval()
        feats = normalize_for(rows, data.feats, model.config.norm)
        split = json.loads((fold / "split.json").read_text())
        train, test = [ids[u] for u in split["train"]], [ids[u] for u in split["test"]]
        rng = np.random.default_rng(args.seed)
        again = copy.deepcopy(model)
        recalibrate_batchnorm(again, _crops(model, feats, train, rng))
        check = rng.permutation(train)[:200]
        line = [fold.name + ":"]
        for what, idx in (("test", test), ("train", check)):
            a = infer(model, [feats[i] for i in idx])[0].argmax(1).numpy()
            b = infer(again, [feats[i] for i in idx])[0].argmax(1).numpy()
            t = y[idx]
            line.append(f"{what} UA {unweighted_accuracy(t, a):.3f} -> {unweighted_accuracy(t, b):.3f} "
                        f"(sad {np.mean(a[t == sad] == sad):.2f} -> {np.mean(b[t == sad] == sad):.2f})")
            if what == "test":
                truth += [labels[k] for k in t]
                stale += [labels[k] for k in a]
                precise += [labels[k] for k in b]
        print(" ".join(line), flush=True)
    p = paired_bootstrap(truth, precise, stale, labels, metric="ua", seed=args.seed)
    print(f"pooled test UA: running averages {p['b']:.3f} -> precise {p['a']:.3f}, "
          f"paired diff {p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] ({len(truth)} clips)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
