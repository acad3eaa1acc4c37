"""Replay one training epoch's batches with a run's last weights: why an epoch's training loss can jump.

    python benchmarks/epoch_replay.py runs/budget/e100/ravdess/fold_01 --corpus ravdess
    python benchmarks/epoch_replay.py runs/budget/e100/ravdess/fold_01 --corpus ravdess --epoch 98

A run's ``history.json`` records each epoch's training loss as the mean of its
batches' losses, measured while training: BatchNorm in training mode
normalises every batch with that batch's own statistics, so a batch that drew
few clips of one class is scored differently from the same clips in other
company. This script rebuilds a fold's training clips exactly as
:func:`emospec.experiment.train_on` handed them to ``fit`` (``split.json``'s
``train`` order, the model's standardisation), the crops of ``--epoch``
(0-based, default the last one run) and the sampler's batch order for that
epoch (:func:`emospec.epoch.train_sampler`, seed + epoch), loads the weights of
``checkpoint.pt`` (the last epoch's) and scores the same crops three ways:

* ``as trained``: the epoch's own batches, BatchNorm in training mode (dropout off);
* ``index order``: the same crops in batches of consecutive clips, BatchNorm in training mode;
* ``eval mode``: the same crops with the BatchNorm statistics the model keeps.

Printed: the three mean losses, the loss ``history.json`` recorded for that
epoch, and the worst batches of the epoch's order with their class counts.
Dropout is off in all three, so the differences are BatchNorm's batch
statistics alone (weights, crops and labels are the same).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA  # noqa: E402
from emospec.checkpoint import load_state  # noqa: E402
from emospec.config import TrainConfig, from_dict  # noqa: E402
from emospec.cv import load_corpus  # noqa: E402
from emospec.data.dataset import CropDataset  # noqa: E402
from emospec.epoch import train_sampler  # noqa: E402
from emospec.model import EmoAlexNet  # noqa: E402
from emospec.norm import normalize_for  # noqa: E402
from emospec.saved_config import saved_feature_config, saved_model_config  # noqa: E402


def _losses(model: EmoAlexNet, crops: torch.Tensor, y: torch.Tensor, batches, train_bn: bool) -> np.ndarray:
    """Per-batch mean cross-entropy of ``crops[b]`` for each index list ``b`` (no gradient, dropout off)."""
    model.eval()
    if train_bn:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.train()
    out = []
    with torch.no_grad():
        for b in batches:
            emb = model.forward_head(model.features(model.normalize(crops[b])), pre_logits=True)  # as epoch._Logits
            out.append(float(F.cross_entropy(model.classify(emb).float(), y[b])))
    return np.array(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fold", help="a fold's run directory (checkpoint.pt, split.json, config.json, history.json)")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--epoch", type=int, help="0-based epoch to replay (default: the last one run)")
    ap.add_argument("--worst", type=int, default=5, help="how many of the worst batches to list")
    args = ap.parse_args(argv)
    fold = Path(args.fold)
    missing = [n for n in ("config.json", "history.json", "labels.json", "split.json", "checkpoint.pt") if not (fold / n).is_file()]
    if missing:
        ap.error(f"{fold}: not a finished fold's run directory (missing {', '.join(missing)})")
    cfg = json.loads((fold / "config.json").read_text())
    fcfg, mcfg = saved_feature_config(cfg["feature"]), saved_model_config(cfg["model"])
    tcfg = from_dict(TrainConfig, cfg["train"])
    history = json.loads((fold / "history.json").read_text())
    epoch = len(history) - 1 if args.epoch is None else args.epoch
    labels = json.loads((fold / "labels.json").read_text())

    data = load_corpus(args.corpus, Path(args.data) / args.corpus, feature_config=fcfg, baseline=False, progress=False)
    ids = {r.utterance_id: i for i, r in enumerate(data.rows)}
    normed = normalize_for(data.rows, data.feats, mcfg.norm)
    train = [ids[u] for u in json.loads((fold / "split.json").read_text())["train"]]
    y = torch.tensor([labels.index(data.rows[i].label4) for i in train])

    model = EmoAlexNet(config=mcfg)
    model.load_state_dict(load_state(fold / "checkpoint.pt")["model"])
    frames = max(1, int(round(tcfg.crop_s * 1000.0 / fcfg.hop_ms)))
    ds = CropDataset([normed[i] for i in train], y.numpy(), frames, model.input_mean, seed=tcfg.seed)
    ds.set_epoch(epoch)
    crops = torch.stack([ds[k][0] for k in range(len(ds))])
    sampler = train_sampler(tcfg, ds, y.numpy(), None)
    sampler.set_epoch(epoch)
    order = list(sampler)
    bs = tcfg.batch_size
    n = len(order) - len(order) % bs if len(order) > bs else len(order)
    as_trained = [order[k:k + bs] for k in range(0, n, bs)]
    by_index = [sorted(order[:n])[k:k + bs] for k in range(0, n, bs)]

    trained = _losses(model, crops, y, as_trained, train_bn=True)
    indexed = _losses(model, crops, y, by_index, train_bn=True)
    kept = _losses(model, crops, y, as_trained, train_bn=False)
    print(f"{fold} epoch {epoch + 1} of {len(history)}: {len(as_trained)} batches of {bs}, "
          f"history.json train_loss {history[epoch]['train_loss']:.3f}")
    print(f"  as trained (batch statistics)  {trained.mean():.3f}")
    print(f"  index order (batch statistics) {indexed.mean():.3f}")
    print(f"  eval mode (kept statistics)    {kept.mean():.3f}")
    print(f"  worst batches as trained ({'/'.join(c[0] for c in labels)} counts):")
    for b in np.argsort(-trained)[:args.worst]:
        counts = np.bincount(y[as_trained[b]].numpy(), minlength=len(labels))
        print(f"    batch {b:2d}: loss {trained[b]:.3f} (eval mode {kept[b]:.3f}), classes {'/'.join(map(str, counts))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
