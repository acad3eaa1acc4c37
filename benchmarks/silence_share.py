"""How much of each corpus's clips is silence around the words (the probe behind ``FeatureConfig.trim_db``).

    python benchmarks/silence_share.py --corpus ravdess --corpus emovo --corpus nemo --clips 120

Per corpus and emotion, over ``--clips`` random clips: the share of frames whose loudest mel band lies more than
``--db`` dB below the clip's loudest (the default features: silence, breath, room tone), and the share that trimming
at ``trim_db = --db`` keeps (:func:`emospec.features.sound_frames`: leading and trailing quiet frames go, pauses
inside stay). Per-speaker standardisation averages over every frame, so a corpus whose clips are half silence
standardises its speech to other numbers than one without.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA  # noqa: E402
from emospec.audio import load  # noqa: E402
from emospec.config import FeatureConfig  # noqa: E402
from emospec.data.corpora import load_corpora  # noqa: E402
from emospec.features import extract, sound_frames  # noqa: E402


def silence_shares(wave: np.ndarray, cfg: FeatureConfig, db: float) -> Tuple[float, float]:
    """``(quiet, kept)`` for one ``(samples,)`` clip: the share of its frames whose loudest band is more than ``db``
    below the clip's loudest band, and the share that ``trim_db=db`` keeps."""
    static = extract(wave, dataclasses.replace(cfg, trim_db=None))[0].numpy()
    loudest = static.max(axis=0)  # (frames,) dB
    start, stop = sound_frames(wave, dataclasses.replace(cfg, trim_db=db))
    return float(np.mean(loudest < loudest.max() - db)), (stop - start) / static.shape[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", default=None, help="a corpus (repeatable; default ravdess, emovo, nemo)")
    ap.add_argument("--clips", type=int, default=120, help="random four-class clips per corpus")
    ap.add_argument("--db", type=float, default=40.0, help="dB below the clip's loudest that counts as quiet")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = FeatureConfig()
    rng = np.random.default_rng(args.seed)
    print(f"| corpus | class | clips | quiet share (> {args.db:g} dB below the loudest) | share kept by trim_db={args.db:g} |")
    print("|---|---|---|---|---|")
    for corpus in args.corpus or ["ravdess", "emovo", "nemo"]:
        rows, _ = load_corpora([corpus], data=DATA)
        rows = [r for r in rows if r.label4]
        by: Dict[str, List[Tuple[float, float]]] = {}
        for i in rng.choice(len(rows), min(args.clips, len(rows)), replace=False):
            by.setdefault(rows[i].label4, []).append(silence_shares(load(rows[i].path, sr=cfg.sample_rate_hz), cfg, args.db))
        every = [v for vals in by.values() for v in vals]
        for label, vals in sorted(by.items()) + [("all", every)]:
            a = np.asarray(vals)
            print(f"| {corpus} | {label} | {len(a)} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
