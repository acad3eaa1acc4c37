"""How far each emotion sits from the same speaker's neutral clips, corpus by corpus (eGeMAPS, openSMILE).

    python benchmarks/corpus_contrasts.py --corpus ravdess --corpus emovo --corpus nemo

A model trained on some corpora and run on another leans on the cues that
separated the emotions in its training corpora. This prints, per corpus and
emotion, the median clip peak and RMS level (dBFS: did the corpus keep the
recording level, or normalise every clip?) and, per speaker, the emotion's
mean minus that speaker's neutral mean of five eGeMAPS functionals —
loudness (sone), F0 (semitones), alpha ratio and Hammarberg index of voiced
frames (dB: spectral balance, a cue of vocal effort) and loudness peaks per
second (a rate cue) — averaged over the corpus's speakers. Loudness is
absolute, so a corpus recorded at one level per clip shows no loudness
contrast even where its actors shouted. The eGeMAPS functionals are the
baseline's (:func:`emospec.baseline.egemaps_functionals`), cached in
``--cache`` (a leave-one-corpus-out run's ``egemaps_cache.npz`` has them all).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA  # noqa: E402
from emospec.audio import load  # noqa: E402
from emospec.baseline import egemaps_functionals  # noqa: E402
from emospec.data.corpora import load_corpora  # noqa: E402

CUES = {"loudness (sone)": "loudness_sma3_amean", "F0 (st)": "F0semitoneFrom27.5Hz_sma3nz_amean",
        "alpha ratio (dB)": "alphaRatioV_sma3nz_amean", "Hammarberg (dB)": "hammarbergIndexV_sma3nz_amean",
        "loudness peaks/s": "loudnessPeaksPerSec"}
"""The eGeMAPS functionals compared: a printed name -> the openSMILE column."""


def levels_dbfs(wave: np.ndarray) -> tuple[float, float]:
    """``(peak, rms)`` of a waveform in [-1, 1], in dBFS (silence: -200)."""
    w = np.asarray(wave, dtype=np.float64)
    peak, power = float(np.max(np.abs(w))) if w.size else 0.0, float(np.mean(w ** 2)) if w.size else 0.0
    return 20 * np.log10(max(peak, 1e-10)), 10 * np.log10(max(power, 1e-20))


def contrasts(values: np.ndarray, speakers: Sequence[str], labels: Sequence[str], reference: str = "neutral") -> Dict[str, Dict]:
    """Per label: the mean over speakers of (the speaker's mean of ``values`` on that label minus on ``reference``).

    ``values`` is ``(n_clips, n_cues)``; rows with NaN are left out. Only
    speakers with clips of both the label and ``reference`` count. Returns
    ``{label: {"delta": [n_cues floats], "speakers": n}}`` for every label
    other than ``reference``.
    """
    x, spk, lab = np.asarray(values, dtype=np.float64), np.asarray(speakers), np.asarray(labels)
    ok = np.isfinite(x).all(axis=1)
    out: Dict[str, Dict] = {}
    for label in sorted(set(lab.tolist()) - {reference}):
        deltas = []
        for s in sorted(set(spk.tolist())):
            mine, ref = ok & (spk == s) & (lab == label), ok & (spk == s) & (lab == reference)
            if mine.any() and ref.any():
                deltas.append(x[mine].mean(axis=0) - x[ref].mean(axis=0))
        out[label] = {"delta": np.mean(deltas, axis=0).tolist() if deltas else [float("nan")] * x.shape[1],
                      "speakers": len(deltas)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", required=True, help="NAME[:ROOT], repeatable")
    ap.add_argument("--cache", default="runs/corpus_contrasts/egemaps_cache.npz", help="eGeMAPS cache (.npz)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    result = {}
    for spec in args.corpus:
        rows, _ = load_corpora([spec], data=DATA)
        rows = [r for r in rows if r.label4]
        Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
        func = egemaps_functionals([r.path for r in rows], cache=args.cache, progress=False)
        cols = [func.names.index(c) for c in CUES.values()]
        labels = [r.label4 for r in rows]
        lv = np.array([levels_dbfs(load(r.path)) for r in rows])
        name = rows[0].corpus if rows else spec
        result[name] = {"levels_dbfs": {c: {"peak": float(np.median(lv[np.array(labels) == c, 0])),
                                            "rms": float(np.median(lv[np.array(labels) == c, 1]))} for c in sorted(set(labels))},
                        "vs_neutral": contrasts(func.values[:, cols], [r.speaker for r in rows], labels)}
        print(f"{name} ({len(rows)} clips): median peak / RMS dBFS  "
              + "  ".join(f"{c} {v['peak']:.1f} / {v['rms']:.1f}" for c, v in result[name]["levels_dbfs"].items()))
        for label, d in result[name]["vs_neutral"].items():
            print(f"  {label} - neutral ({d['speakers']} speakers): "
                  + ", ".join(f"{cue} {v:+.2f}" for cue, v in zip(CUES, d["delta"])))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"cues": CUES, "corpora": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
