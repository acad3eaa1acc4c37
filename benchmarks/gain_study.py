"""Recording gain: does a model's answer change when the same clips are recorded louder or quieter?

    python benchmarks/gain_study.py --corpus nemo                                  # the bundled model
    python benchmarks/gain_study.py --model runs/loco/robust/held_out_nemo/train_ravdess+emovo --corpus nemo

Microphones, distances and recorders differ by tens of dB, and corpora do
too (median clip peak here: RAVDESS -18.5, EMOVO -12.9, nEMO -6.4 dBFS).
``--per-class`` seeded clips of each class of ``--corpus`` are scaled by each
of ``--gains`` dB (clipped to [-1, 1], as a recorder would) and classified
as a user runs the model, with no adaptation clips
(:meth:`emospec.predict.Recognizer.predict_batch`). Printed per gain: UA,
recall per class, how many clips each class receives, and the share of
clips whose label differs from the one at 0 dB (among the clips labelled at both
gains), and the share that fell below the silence threshold and got no label. A model whose features are
relative to each clip's peak (``--set features.relative_to_peak=true``)
should give the same answers at every gain that does not clip.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import emospec  # noqa: E402
from _common import DATA  # noqa: E402
from emospec.audio import load  # noqa: E402
from emospec.data.corpora import four_class, prepare_corpus  # noqa: E402
from emospec.data.labels import CLASSES4  # noqa: E402
from emospec.metrics import unweighted_accuracy  # noqa: E402


def gain_table(rec, waves, y: np.ndarray, gains_db) -> dict:
    """UA, recall, predicted-class counts and label changes against 0 dB, per gain (dB) in ``gains_db``.

    A clip that falls below the silence threshold (:data:`emospec.predict.SILENCE_DBFS`) gets no label by design:
    such clips are counted in ``silent`` (share of clips), and ``changed_vs_0db`` is the share of the clips labelled
    at both gains whose label differs (the model's own answer), ``nan`` when none is."""
    labels = list(rec.labels)
    preds = {}
    for g in gains_db:
        scaled = [np.clip(w * 10 ** (g / 20), -1.0, 1.0).astype(np.float32) for w in waves]
        preds[g] = np.array([labels.index(p.label) if p.label else -1 for p in rec.predict_batch(scaled, sr=rec.sample_rate_hz)])
    ref = preds[0.0] if 0.0 in preds else preds[gains_db[0]]
    return {f"{g:+g}": {"ua": unweighted_accuracy(y, p),
                        "recall": {c: float(((p == k) & (y == k)).sum() / max(1, (y == k).sum())) for k, c in enumerate(labels)},
                        "predicted": {c: int((p == k).sum()) for k, c in enumerate(labels)},
                        "changed_vs_0db": float((p != ref)[(p >= 0) & (ref >= 0)].mean()) if ((p >= 0) & (ref >= 0)).any()
                        else float("nan"),
                        "silent": float((p < 0).mean())}
            for g, p in preds.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="run dir, model.pt or .onnx (default: the bundled model)")
    ap.add_argument("--corpus", required=True, help="NAME[:ROOT] (ROOT default: $EMOSPEC_DATA/NAME)")
    ap.add_argument("--per-class", type=int, default=100, help="clips per class (seeded draw; default %(default)s)")
    ap.add_argument("--gains", type=float, nargs="+", default=[-18.0, -12.0, -6.0, 0.0, 6.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    rec = emospec.load(args.model, device="cpu")
    name, _, root = args.corpus.partition(":")
    rows = four_class(prepare_corpus(name, root or DATA / name)[0], CLASSES4)
    rng = np.random.default_rng(args.seed)
    picked = []
    for c in rec.labels:
        own = [r for r in rows if r.label4 == c]
        picked += [own[i] for i in sorted(rng.choice(len(own), min(args.per_class, len(own)), replace=False))]
    waves = [load(r.path, rec.sample_rate_hz) for r in picked]
    y = np.array([list(rec.labels).index(r.label4) for r in picked])
    res = gain_table(rec, waves, y, sorted(args.gains))
    feats = rec.feature_config
    print(f"{name}: {len(picked)} clips, model {rec.path} (features relative to peak: {feats.relative_to_peak})")
    for g, r in res.items():
        print(f"  {g:>4} dB  UA {r['ua']:.3f}  changed {r['changed_vs_0db']:.2f}  silent {r['silent']:.2f}  recall "
              + " ".join(f"{c} {v:.2f}" for c, v in r["recall"].items())
              + "  predicted " + " ".join(f"{c} {v}" for c, v in r["predicted"].items()))
    uas = [r["ua"] for r in res.values()]
    print(f"  UA range over gains: {min(uas):.3f}-{max(uas):.3f} ({max(uas) - min(uas):.3f})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"model": rec.path, "corpus": args.corpus, "clips": len(picked),
                                              "relative_to_peak": feats.relative_to_peak, "by_gain_db": res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
