"""The CUDA paths on a lent GPU: mixed-precision training (bf16, fp16 with loss scaling, fp32) and GPU/CPU parity.

Trains the default recipe for a few epochs on RAVDESS (the training side of
speaker fold 1) with each ``TrainConfig.amp`` and reports seconds per epoch
(the first epoch, with its compile and warm-up, left out), the last training
loss (finite, and close across precisions), and the largest score difference
between the bundled model run on CUDA and on the CPU for 32 real clips.

    python benchmarks/gpu_check.py --data ../shared/data --out gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main(argv=None) -> int:
    import numpy as np
    import torch

    import emospec
    from emospec.data.paths import find_data_root
    from emospec.data.splits import make_folds
    from emospec.protocols import load_corpus
    from emospec.recipe import recipe_from
    from emospec.train import fit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of this script (bf16 and off only)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device")
        return 1
    rec = recipe_from("default", {"model.norm": "global"})
    root = find_data_root(args.data, corpus="ravdess") / "ravdess"
    data = load_corpus("ravdess", root, feature_config=rec.features, baseline=False, progress=False)
    fold = make_folds("speaker", data.rows)[0]
    labels = ["neutral", "happy", "angry", "sad"]
    y = np.array([labels.index(r.label4) for r in data.rows])
    tr = fold.train
    out = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu", "torch": torch.__version__,
           "n_train": int(len(tr)), "amp": {}}
    for amp in ("off", "bf16", "fp16") if args.device == "cuda" else ("off", "bf16"):
        tcfg = replace(rec.train, amp=amp, epochs=args.epochs, patience=args.epochs, device=args.device)
        with tempfile.TemporaryDirectory() as tmp:
            t = [time.perf_counter()]
            res = fit([data.feats[i] for i in tr], y[tr], [], [], labels, tmp, feature_config=rec.features,
                      model_config=replace(rec.model, n_classes=4, n_mels=rec.features.n_mels), train_config=tcfg, progress=False)
            total = time.perf_counter() - t[0]
        losses = [h["train_loss"] for h in res.history]
        out["amp"][amp] = {"losses": losses, "wall_s": total, "finite": bool(np.isfinite(losses).all())}
        print(f"amp {amp:4s}: losses {' '.join(f'{v:.3f}' for v in losses)}  {total:.1f} s for {args.epochs} epochs "
              f"(with start-up and the full-clip check)", flush=True)
    clips = [r.path for r in data.rows[:32]]
    cpu = emospec.load(device="cpu").predict_batch(clips)
    gpu = emospec.load(device=args.device).predict_batch(clips)
    diff = max(abs(a.scores[c] - b.scores[c]) for a, b in zip(cpu, gpu) for c in a.scores)
    out["bundled_cuda_vs_cpu_max_score_diff"] = diff
    out["same_labels"] = sum(a.label == b.label for a, b in zip(cpu, gpu))
    print(f"bundled model on CUDA vs CPU: max score difference {diff:.2e}, same label {out['same_labels']}/32")
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
