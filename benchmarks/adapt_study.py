"""Speaker adaptation with unbalanced clips: what ``--adapt-norm`` gains, and costs, per held-out corpus.

    python benchmarks/adapt_study.py --model runs/loco/default/held_out_nemo/train_ravdess+emovo --corpus nemo
    python benchmarks/adapt_study.py --model MODEL --corpus emovo --out runs/adapt/emovo.json

For each speaker of ``--corpus`` (a corpus the model never heard, for an
honest figure), ``--per-class`` clips of each class are classified (labels
are only used to score):

* ``none``: no adaptation clips, the training population's statistics moved
  towards each clip's own by the model's clip weight, if it has one (the
  inference default, :func:`emospec.norm.inference_model`);
* ``all``: adapted to all of the speaker's clips (balanced as the corpus is);
* ``only-X``: adapted to up to 20 clips of emotion X alone;
* ``60%-X``: adapted to up to 18 clips of X and 12 of the others.

Adaptation is :meth:`emospec.predict.Recognizer.adapt`'s
(:func:`emospec.predict.adapted_model`): the clips' statistics folded into
the model (:func:`emospec.norm.fold_into_model`);
``--bn`` also re-estimates the BatchNorm statistics on the adaptation clips
(AdaBN, Li et al., 2017: ``adapt(batchnorm=True)``, ``--adapt-bn``).
Printed: pooled UA over the corpus per condition, and the worst cost against
``none``. Clip draws are seeded (``--seed``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA  # noqa: E402
from emospec.checkpoint import load_model  # noqa: E402
from emospec.data.corpora import four_class, prepare_corpus  # noqa: E402
from emospec.data.dataset import compute_features  # noqa: E402
from emospec.data.labels import CLASSES4  # noqa: E402
from emospec.metrics import unweighted_accuracy  # noqa: E402
from emospec.model import infer  # noqa: E402
from emospec.norm import inference_model, population_stats, raw_inputs  # noqa: E402
from emospec.predict import adapted_model  # noqa: E402


def conditions(y: np.ndarray, labels, rng: np.random.Generator) -> dict:
    """Adaptation sets (indices into the speaker's clips): all, only-X, 60%-X for each class X."""
    sets = {"all": list(range(len(y)))}
    for k, c in enumerate(labels):
        own, other = np.flatnonzero(y == k), np.flatnonzero(y != k)
        if not len(own):
            continue
        sets[f"only-{c}"] = rng.choice(own, min(20, len(own)), replace=False).tolist()
        n = min(18, len(own))
        sets[f"60%-{c}"] = rng.choice(own, n, replace=False).tolist() + rng.choice(other, min(len(other), round(n * 2 / 3)),
                                                                                  replace=False).tolist()
    return sets


def study(bundle, rows, feats, *, per_class: int, seed: int, weight: float = 1.0, bn: bool = False) -> dict:
    """Pooled UA per condition over every speaker of ``rows``; adaptation ``weight`` (:func:`emospec.norm.blend_stats`),
    with ``bn`` the BatchNorm statistics re-estimated on the adaptation clips as well."""
    labels = list(bundle.labels)
    base = inference_model(bundle.model, bundle.meta)
    pop = population_stats(bundle.meta)
    rng = np.random.default_rng(seed)
    speakers = defaultdict(list)
    for i, r in enumerate(rows):
        speakers[r.speaker].append(i)
    truth, pred = defaultdict(list), defaultdict(list)
    for spk, idx in sorted(speakers.items()):
        y = np.array([labels.index(rows[i].label4) for i in idx])
        test = np.concatenate([rng.choice(np.flatnonzero(y == k), min(per_class, int((y == k).sum())), replace=False)
                               for k in range(len(labels)) if (y == k).any()])
        clips = [feats[idx[j]] for j in test]
        models = {"none": base, **{name: adapted_model(bundle.model, [feats[idx[j]] for j in subset], pop, weight, batchnorm=bn)
                                   for name, subset in conditions(y, labels, rng).items()}}
        for name, model in models.items():
            truth[name].extend(y[test].tolist())
            pred[name].extend(infer(model, raw_inputs(model, clips))[0].argmax(1).tolist())
        print(f"{spk}: done", file=sys.stderr)
    return {name: unweighted_accuracy(np.array(truth[name]), np.array(pred[name])) for name in truth}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a speaker-standardised model (run dir or model.pt)")
    ap.add_argument("--corpus", required=True, help="NAME[:ROOT] of the held-out corpus (ROOT default: $EMOSPEC_DATA/NAME)")
    ap.add_argument("--per-class", type=int, default=15, help="test clips per class and speaker")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weight", type=float, nargs="+", default=[1.0],
                    help="adaptation weights to compare (1: the clips' own statistics; default: %(default)s)")
    ap.add_argument("--bn", action="store_true", help="also re-estimate BatchNorm statistics on the adaptation clips (AdaBN)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bundle = load_model(args.model)
    name, _, root = args.corpus.partition(":")
    rows, _ = prepare_corpus(name, root or DATA / name)
    rows = four_class(rows, CLASSES4)
    feats, bad = compute_features([r.path for r in rows], bundle.feature_config, progress=False)
    keep = [i for i, f in enumerate(feats) if f is not None]
    out = {}
    for w in args.weight:
        res = out[f"{w:g}"] = study(bundle, [rows[i] for i in keep], [feats[i] for i in keep], per_class=args.per_class,
                                    seed=args.seed, weight=w, bn=args.bn)
        none = res["none"]
        worst = min((k for k in res if k not in ("none", "all")), key=res.get)
        print(f"{name}, weight {w:g}: no adaptation {none:.3f}; adapted to all clips {res['all']:.3f} ({res['all'] - none:+.3f}); "
              f"worst unbalanced {worst} {res[worst]:.3f} ({res[worst] - none:+.3f})")
        print("  " + "  ".join(f"{k} {v:.3f}" for k, v in res.items() if k not in ("none", "all")))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"model": args.model, "corpus": args.corpus, "bn": args.bn, "ua_by_weight": out,
                                              "skipped": bad}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
