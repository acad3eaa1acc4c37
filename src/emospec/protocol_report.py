"""The text and the figures of an evaluation run (:mod:`emospec.protocols`).

``protocol_text`` / ``cross_corpus_text`` turn a run's ``metrics.json``
summary into the printed report (model and baseline side by side with CIs,
chance line, mean ± std over folds, paired bootstrap, per-fold table, Table 1
for both); ``protocol_figures`` / ``cross_corpus_figures`` draw its PNGs with
:mod:`emospec.plots` into the run directory and return their paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Sequence

from .baseline import FUSION_WEIGHT
from .metrics import format_comparison, format_report, side_by_side

__all__ = ["SYSTEM_NAMES", "protocol_text", "cross_corpus_text", "protocol_figures", "cross_corpus_figures"]

SYSTEM_NAMES = {"model": "model (AlexNet)", "baseline": "baseline (eGeMAPS+SVM)", "fusion": "fusion (model+baseline)"}
SYSTEMS = tuple(SYSTEM_NAMES)
"""The systems every report shows side by side, where they ran."""


def _training(speaker_independent: bool) -> str:
    held = "speakers held out of" if speaker_independent else "a stratified random part of"
    return f"model: early stopping on {held} the training side; baseline: the whole training side, C by speaker-grouped inner CV"


def _describe(summary: Mapping) -> str:
    k, p = summary["n_folds"], summary["protocol"]
    if p == "speaker":
        return f"speaker-independent: {k} folds of whole speakers (gender-balanced)"
    if p == "loso":
        return f"leave-one-speaker-out: {k} folds"
    if k == 1:
        return "paper: one stratified random 90/10 split, speakers on both sides"
    return f"paper-style: stratified {k}-fold of random {100 - 100 / k:.0f}/{100 / k:.0f} splits, speakers on both sides"


def _block(part: Mapping, folds: Mapping | None = None) -> List[str]:
    """Comparison table plus Table 1 of each system, for one pooled evaluation."""
    systems = {SYSTEM_NAMES[k]: part[k] for k in SYSTEMS if k in part}
    lines = [format_comparison(systems, chance=part["chance"], paired=part.get("paired_ua"),
                               folds={SYSTEM_NAMES[k]: v for k, v in folds.items()} if folds else None)]
    lines += fusion_lines(part)
    if "unadapted" in part:
        lines += ["", _unadapted_line(part)]
    lines += ["", side_by_side({name: format_report(rep, digits=3) for name, rep in systems.items()})]
    return lines


def _unadapted_line(part: Mapping) -> str:
    """The model as users run it without adaptation clips (training population's statistics)."""
    u, p = part["unadapted"], part.get("paired_ua_unadapted")
    diff = f"; vs baseline {_diff(p)}" if p else ""
    w = u.get("clip_weight") or 0
    how = f", each clip moved {w:g} of the way towards its own statistics" if w else ""
    return (f"model without the test speakers' statistics (the inference default, no adaptation clips{how}): "
            f"UA {u['ua']:.3f} [{u['ci']['ua']['low']:.3f}, {u['ci']['ua']['high']:.3f}]{diff}")


def _diff(p: Mapping) -> str:
    return f"{p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]"


def fusion_lines(part: Mapping) -> List[str]:
    """The fusion's paired differences (:data:`emospec.protocols.PAIRED`): against the model and the baseline, as
    evaluated and without adaptation clips; none where the baseline did not run."""
    if "fusion" not in part:
        return []
    lines = ["", f"fusion: the mean of the model's calibrated probabilities and the SVM's (Platt, fitted on its training "
                 f"speakers), SVM weight {FUSION_WEIGHT:g} fixed in advance"]
    for tag, fused, model in (("as evaluated", "fusion", "model"),
                              ("without adaptation clips", "fusion_unadapted", "model without adaptation")):
        if fused in part and f"paired_ua_{fused}" in part:
            f = part[fused]["ci"]["ua"]
            vs_model = part.get("paired_fusion_model" if fused == "fusion" else "paired_fusion_unadapted_model")
            lines.append(f"  {tag}: UA {f['estimate']:.3f} [{f['low']:.3f}, {f['high']:.3f}]; - {model} "
                         f"{_diff(vs_model) if vs_model else '-'}; - baseline {_diff(part[f'paired_ua_{fused}'])}")
    return lines


def calibration_line(cal: Mapping | None) -> List[str]:
    """One line on the model's probabilities (:func:`emospec.protocols.pooled_calibration`); none without figures."""
    if not cal:
        return []
    t = cal["temperatures"]
    temps = f"T {t[0]:.2f}" if len(t) == 1 else f"T {min(t):.2f}-{max(t):.2f}"
    lines = ["", f"probabilities, uncalibrated -> with the temperature fitted on the validation speakers ({temps}):"]
    for name, raw, cal_key in (("as evaluated above", "uncalibrated", "calibrated"),
                               ("no adaptation clips (the inference default)", "unadapted_uncalibrated", "unadapted")):
        if cal_key in cal:
            b, a = cal[raw], cal[cal_key]
            lines.append(f"  {name}: ECE {b['ece']:.3f} -> {a['ece']:.3f}, NLL {b['nll']:.3f} -> {a['nll']:.3f}, mean top "
                         f"probability {b['mean_confidence']:.3f} -> {a['mean_confidence']:.3f} at accuracy {a['accuracy']:.3f}")
    return lines


def protocol_text(summary: Mapping) -> str:
    """The printed report of :func:`emospec.protocols.run_protocol`."""
    counts = ", ".join(f"{c} {summary['counts'].get(c, 0)}" for c in summary["labels"])
    lines = [
        f"{summary['corpus']}, {len(summary['labels'])} classes: {summary['n_clips']} clips, "
        f"{summary['n_speakers']} speakers ({counts})",
        f"protocol: {_describe(summary)}; " + (f"pooled out-of-fold predictions on {summary['n_tested']} clips"
                                                if summary["n_folds"] > 1 else f"{summary['n_tested']} test clips"),
        _training(summary["protocol"] != "paper"),
        "",
    ]
    lines += _block(summary, summary.get("fold_summary") if summary["n_folds"] > 1 else None)
    lines += calibration_line(summary.get("calibration"))
    lines += ["", "per fold (epoch: best validation epoch of the budget; train UA: the kept model on full training clips)",
              f"{'fold':<22}{'test speakers':<40}{'n':>5}{'epoch':>9}{'train UA':>10}{'model UA':>10}{'baseline UA':>13}{'C':>8}"
              f"{'fusion UA':>11}"]
    for f in summary["folds"]:
        spk = ", ".join(s.split("_", 1)[-1] for s in f["test_speakers"])
        spk = spk if len(spk) <= 38 else spk[:35] + "..."
        base = f"{f['baseline']['ua']:>13.3f}{f['baseline']['c']:>8g}" if "baseline" in f else ""
        base += f"{f['fusion']['ua']:>11.3f}" if "fusion" in f else ""
        conv = f.get("convergence") or {}
        epoch = f"{f['best_epoch'] + 1}/{conv['epochs_run']}" if "epochs_run" in conv else f"{f['best_epoch'] + 1}"
        train_ua = f"{conv['train_ua_full']:>10.3f}" if "train_ua_full" in conv else f"{'-':>10}"
        lines.append(f"{f['name']:<22}{spk:<40}{f['n_test']:>5}{epoch:>9}{train_ua}{f['model']['ua']:>10.3f}{base}")
    warned = [(f["name"], w) for f in summary["folds"] for w in (f.get("convergence") or {}).get("warnings", [])]
    if warned:
        lines += ["", f"convergence warnings ({len({n for n, _ in warned})} of {len(summary['folds'])} folds):"]
        lines += [f"  {n}: {w}" for n, w in warned]
    return "\n".join(lines)


def cross_corpus_text(summary: Mapping) -> str:
    """The printed report of :func:`emospec.crosscorpus.run_cross_corpus`."""
    n_val = summary.get("n_val")
    held = f", {n_val} of them from held-out speakers for early stopping" if n_val is not None else ""
    lines = [f"cross-corpus: train on {summary['train']} ({summary['n_train']} clips{held}), "
             f"classes {', '.join(summary['labels'])}; model kept from epoch {summary['best_epoch'] + 1}", _training(True)]
    if summary.get("baseline_fit"):
        lines.append(f"baseline: C = {summary['baseline_fit']['c']:g} (inner speaker-grouped CV UA "
                     f"{summary['baseline_fit']['inner_ua']:.3f})")
    for name, part in summary["tests"].items():
        lines += ["", f"=== test on {name}: {part['n']} clips, {part['n_speakers']} speakers ===", ""]
        lines += _block(part)
        lines += calibration_line(part.get("calibration"))
    return "\n".join(lines)


def _clip_panels(rows: Sequence, feats: Sequence, labels: Sequence[str], feature_config, path: Path, title: str) -> Path:
    from .audio import load
    from .plots import feature_panels

    clips = []
    for c in labels:
        i = next(i for i, r in enumerate(rows) if r.label4 == c)
        clips.append({"label": c, "name": Path(rows[i].path).name, "features": feats[i].numpy(),
                      "waveform": load(rows[i].path, sr=feature_config.sample_rate_hz)})
    return feature_panels(clips, path, sample_rate_hz=feature_config.sample_rate_hz, hop_ms=feature_config.hop_ms,
                          fmax_hz=feature_config.fmax_hz, title=title)


def _system_figures(part: Mapping, labels: Sequence[str], out: Path, tag: str, where: str) -> List[Path]:
    from .plots import confusion, per_class_f1

    made = []
    for key in SYSTEMS:
        if key in part:
            rep = part[key]
            made.append(confusion(rep["confusion"], labels, out / f"confusion_{key}{tag}.png",
                                  title=f"{SYSTEM_NAMES[key]}, {where} (UA {rep['ua']:.3f}, n={rep['n']})"))
    made.append(per_class_f1({SYSTEM_NAMES[k]: part[k]["ci"]["f1"] for k in SYSTEMS if k in part},
                             out / f"per_class_f1{tag}.png", title=f"Per-class F1 with 95% bootstrap CI, {where}"))
    return made


def protocol_figures(summary: Mapping, data, records: Sequence[Dict], out: Path) -> List[Path]:
    """Class distribution, one clip per class (Figure 3), confusions, training curves per fold, per-class F1."""
    from .plots import class_distribution, fold_curves
    from .saved_config import saved_feature_config

    fcfg = saved_feature_config(summary["feature_config"])
    labels = summary["labels"]
    where = f"{summary['corpus']} {summary['protocol']} protocol"
    made = [class_distribution({c: summary["counts"].get(c, 0) for c in labels}, out / "class_distribution.png",
                               title=f"{summary['corpus']}: utterances per class"),
            _clip_panels(data.rows, data.feats, labels, fcfg, out / "clips_per_class.png",
                         title=f"{summary['corpus']}: one clip per class, waveform and 3D log-Mel channels")]
    made += _system_figures(summary, labels, out, "", where)
    made.append(fold_curves({r["name"]: r["history"] for r in records}, out / "training_curves.png",
                            title=f"Training per fold, {where}"))
    return made


def cross_corpus_figures(summary: Mapping, records: Sequence[Dict], out: Path) -> List[Path]:
    """Per test corpus: confusions and per-class F1; the training curve."""
    from .plots import fold_curves

    made = []
    for name, part in summary["tests"].items():
        made += _system_figures(part, summary["labels"], out, f"_{name}", f"{summary['train']} -> {name}")
    made.append(fold_curves({r["name"]: r["history"] for r in records}, out / "training_curves.png",
                            title=f"Training on {summary['train']}"))
    return made


TEST_NORM = {
    "speaker": "each test speaker standardised with their own unlabelled clips",
    "corpus": "each test corpus standardised with its own unlabelled clips",
    "utterance": "each clip standardised with its own statistics alone",
    "global": "every clip standardised with the training set's statistics",
}
"""How :func:`loco_text` says test clips were standardised, per :attr:`emospec.config.ModelConfig.norm`."""


def loco_text(summary: Mapping) -> str:
    """The leave-one-corpus-out table: per held-out corpus, model and baseline UA with CIs and the paired Δ."""
    lines = [f"Leave one corpus out: {', '.join(summary['corpora'])} ({len(summary['labels'])} classes: "
             f"{', '.join(summary['labels'])}); each corpus is tested by a model trained on all the others.", ""]
    head = (f"{'held out':<12} {'clips':>6} {'model UA [95% CI]':<24} {'baseline UA [95% CI]':<24} {'paired diff [95% CI]':<26} "
            f"{'no adaptation UA':<24} {'fusion, no adaptation':<24} recall per class")
    lines += [head, "-" * len(head)]
    for name, h in summary["held_out"].items():
        m = h["model"]
        cell = lambda r: f"{r['ua']:.3f} [{r['ci']['ua']['low']:.3f}, {r['ci']['ua']['high']:.3f}]"  # noqa: E731
        base = cell(h["baseline"]) if "baseline" in h else "-"
        plain = cell(h["unadapted"]) if "unadapted" in h else "-"
        fused = cell(h["fusion_unadapted"]) if "fusion_unadapted" in h else "-"
        p = h.get("paired_ua")
        diff = _diff(p) if p else "-"
        rec = " ".join(f"{c} {m['per_class'][c]['recall']:.2f}" for c in summary["labels"])
        lines.append(f"{name:<12} {h['n']:>6} {cell(m):<24} {base:<24} {diff:<26} {plain:<24} {fused:<24} {rec}")
    norm = (summary.get("model_config") or {}).get("norm", "speaker")
    weights = {c: h["unadapted"].get("clip_weight") or 0 for c, h in summary["held_out"].items() if "unadapted" in h}
    moved = ("; each clip moved towards its own statistics by the weight chosen on the validation speakers ("
             + ", ".join(f"{c} {w:g}" for c, w in weights.items()) + ")") if any(weights.values()) else ""
    lines += ["", f"model: {TEST_NORM.get(norm, norm)}" + ("; no adaptation: with the training population's statistics (what "
              f"the model does when given no adaptation clips){moved}" if weights else "")]
    mean = summary["mean_ua"]
    lines += ["", "mean UA over held-out corpora: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items())]
    lines += _loco_calibration(summary["held_out"])
    return "\n".join(lines)


def _loco_calibration(held: Mapping[str, Mapping]) -> List[str]:
    """Per held-out corpus, the model's temperature and its ECE / mean top probability before -> after, without
    adaptation clips where run (:func:`emospec.protocols.pooled_calibration`); none where no fold has them."""
    rows = []
    for name, h in held.items():
        cal = h.get("calibration")
        if not cal:
            continue
        raw, after = ("unadapted_uncalibrated", "unadapted") if "unadapted" in cal else ("uncalibrated", "calibrated")
        b, a = cal[raw], cal[after]
        rows.append(f"  {name:<12} T {cal['temperatures'][0]:.2f}: ECE {b['ece']:.3f} -> {a['ece']:.3f}, mean top probability "
                    f"{b['mean_confidence']:.3f} -> {a['mean_confidence']:.3f} at accuracy {a['accuracy']:.3f}"
                    + ("" if after == "unadapted" else " (as evaluated)"))
    if not rows:
        return []
    return ["", "calibration on the held-out corpus, without adaptation clips (the temperature fitted on the training "
                "side's validation speakers):", *rows]


def loco_figures(summary: Mapping, out: Path) -> List[Path]:
    """UA per held-out corpus, model beside baseline with 95 % CIs (``loco_ua.png``); the confusion
    matrices are in each ``held_out_<name>/`` folder."""
    from .plots import corpus_bars

    bars = {name: {k: (h[k]["ua"], h[k]["ci"]["ua"]["low"], h[k]["ci"]["ua"]["high"])
                   for k in ("model", "unadapted", "baseline", "fusion_unadapted") if k in h}
            for name, h in summary["held_out"].items()}
    return [corpus_bars(bars, out / "loco_ua.png", title="Leave one corpus out: UA on the held-out corpus")]
