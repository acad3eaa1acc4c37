"""Model cards: what a shipped model was trained on, how well it does, and under which terms.

A card is a JSON-able dict. The bundled model's card is
``emospec/assets/model_card.json`` (written by ``scripts/train_bundled.py``,
also stored in the model file's ``meta["model_card"]``); for any other model
:func:`card_for` builds a smaller one from what the checkpoint and its run
directory describe. :func:`format_card` renders a card as text for
``emospec info``.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .checkpoint import ModelBundle
from .config import to_dict
from .files import load_json

__all__ = ["CORPUS_TERMS", "INFERENCE_NORM", "bundled_paths", "card_for", "describe", "format_card", "licence_for", "sha256_of"]

CORPUS_TERMS: Dict[str, Dict[str, str]] = {
    "ravdess": {
        "name": "RAVDESS (speech)",
        "language": "English (North American), 24 actors",
        "licence": "CC BY-NC-SA 4.0",
        "terms": "non-commercial use only; share-alike: derivatives (this model) under the same licence; attribution",
        "citation": "Livingstone S.R., Russo F.A. (2018). The Ryerson Audio-Visual Database of Emotional Speech "
                    "and Song (RAVDESS). PLoS ONE 13(5): e0196391.",
    },
    "emovo": {
        "name": "EMOVO",
        "language": "Italian, 6 actors",
        "licence": "research use (Fondazione Ugo Bordoni)",
        "terms": "research use only",
        "citation": "Costantini G., Iaderola I., Paoloni A., Todisco M. (2014). EMOVO Corpus: an Italian Emotional "
                    "Speech Database. LREC 2014.",
    },
    "nemo": {
        "name": "nEMO",
        "language": "Polish, 9 actors",
        "licence": "CC BY-NC-SA 4.0",
        "terms": "non-commercial use only; share-alike: derivatives (this model) under the same licence; attribution",
        "citation": "Christop I. (2024). nEMO: Dataset of Emotional Speech in Polish. LREC-COLING 2024.",
    },
}
"""Licence facts of the corpora a model can inherit terms from (lower-case corpus key)."""


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundled_paths() -> tuple[Path, Path]:
    """``(model.pt, model_card.json)`` of the bundled model inside the installed package."""
    assets = resources.files("emospec") / "assets"
    return Path(str(assets / "model.pt")), Path(str(assets / "model_card.json"))


def licence_for(corpora: List[str]) -> Dict[str, Any]:
    """The terms a model trained on ``corpora`` inherits (the strictest wins, all are listed)."""
    known = [c.lower() for c in corpora if c.lower() in CORPUS_TERMS]
    parts = [f"{CORPUS_TERMS[c]['name']}: {CORPUS_TERMS[c]['licence']} ({CORPUS_TERMS[c]['terms']})" for c in known]
    summary = "unknown: the training data's terms apply"
    sa = [CORPUS_TERMS[c]["name"].split(" (")[0] for c in known if CORPUS_TERMS[c]["licence"] == "CC BY-NC-SA 4.0"]
    if sa:
        summary = (f"CC BY-NC-SA 4.0, inherited from {' and '.join(sa)}: non-commercial use only, share-alike"
                   + ("; EMOVO: research use only" if "emovo" in known else ""))
    elif "emovo" in known:
        summary = "research use only, inherited from EMOVO"
    return {"summary": summary, "inherited_from": parts}


def card_for(bundle: ModelBundle) -> Dict[str, Any]:
    """The card of a loaded model.

    The bundled model (or any file carrying ``meta["model_card"]``) returns its
    stored card; otherwise the card lists what the checkpoint and its run
    directory hold: labels, feature config, training config, versions, and
    ``metrics.json`` (held-out UA/WA) when the run directory has one.
    """
    stored = bundle.meta.get("model_card")
    if isinstance(stored, Mapping):
        return dict(stored)
    path = Path(bundle.path)
    card: Dict[str, Any] = {
        "name": path.parent.name or path.name,
        "model_file": str(path),
        "labels": list(bundle.labels),
        "feature_config": to_dict(bundle.feature_config),
        "model_config": to_dict(bundle.model.config),
        "parameters": int(sum(p.numel() for p in bundle.model.parameters())),
        "training": {k: v for k, v in bundle.meta.items() if k in ("split", "best_epoch", "best_val_ua")},
        "temperature": float(bundle.model.temperature),
        "calibration": bundle.meta.get("calibration"),
        "train_config": (bundle.meta.get("config") or {}).get("train", {}),
        "versions": bundle.meta.get("versions", {}),
        "licence": {"summary": "unknown: the terms of the data it was trained on apply", "inherited_from": []},
    }
    metrics = path.parent / "metrics.json"
    if metrics.is_file():
        rep = load_json(metrics)
        card["evaluation"] = {"protocol": rep.get("split", {}).get("name", "held-out split"),
                              "ua": rep.get("ua"), "wa": rep.get("wa"), "macro_f1": rep.get("macro_f1"),
                              "n_test": rep.get("split", {}).get("n_test")}
    return card


def describe(model: Optional[str | os.PathLike] = None) -> Dict[str, Any]:
    """The card of ``model`` (a run dir, ``model.pt`` or ``model.onnx``; ``None``: the bundled model).

    Raises
    ------
    CheckpointError
        The model file is missing, corrupt or incompatible.
    """
    from .checkpoint import load_model

    if model is None:
        pt, js = bundled_paths()
        card = dict(load_json(js)) if js.is_file() else card_for(load_model(pt))
        card["model_file"] = str(pt)
        return card
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        from .export import OnnxModel

        onnx = OnnxModel(path)
        card = dict(onnx.meta.get("model_card") or {})
        card.setdefault("name", path.stem)
        card.setdefault("labels", onnx.labels)
        card.setdefault("feature_config", to_dict(onnx.feature_config))
        card["model_file"] = f"{path} (ONNX, {onnx.input_kind} input)"
        return card
    bundle = load_model(path)
    card = card_for(bundle)
    card["model_file"] = bundle.path
    return card


def _fmt_ci(value: Optional[float], ci: Optional[List[float]]) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def _loco_lines(loco: Optional[Mapping[str, Any]]) -> List[str]:
    """The card's leave-one-corpus-out block: per held-out corpus, the recipe's UA on a corpus it never heard."""
    if not loco:
        return []
    lines = [f"leave one corpus out ({loco.get('protocol', 'the recipe trained on the other corpora')}):"]
    for corpus, h in loco["held_out"].items():
        parts = [f"UA {_fmt_ci(h['ua'], h.get('ua_ci95'))} with the speaker's own statistics"]
        if h.get("unadapted_ua") is not None:
            parts.append(f"{_fmt_ci(h['unadapted_ua'], h.get('unadapted_ua_ci95'))} without")
        if h.get("baseline_ua") is not None:
            parts.append(f"baseline {h['baseline_ua']:.3f}")
        lines.append(f"  {corpus}: " + "; ".join(parts))
    if loco.get("mean_ua"):
        lines.append("  mean UA: " + ", ".join(f"{k} {v:.3f}" for k, v in loco["mean_ua"].items()))
    spread = (loco.get("seeds") or {}).get("per_corpus") or {}
    if spread:
        lines.append("  the same folds trained with other seeds (run-to-run spread; the figures above are one seed's):")
        for corpus, s in spread.items():
            seeds = ", ".join(str(v) for v in s["seeds"])
            lines.append(f"    {corpus}, seeds {seeds}: UA " + ", ".join(f"{v:.3f}" for v in s["ua"]) + f" (mean {s['ua_mean']:.3f}); "
                         "without adaptation " + ", ".join(f"{v:.3f}" for v in s["unadapted_ua"])
                         + f" (mean {s['unadapted_ua_mean']:.3f})")
        m = loco["seeds"]["mean_ua"]
        lines.append(f"    mean over seeds and corpora: UA {m['model']:.3f}, without adaptation {m['unadapted']:.3f}")
    if loco.get("recipe_differences"):
        lines.append("  trained otherwise than this model: " + ", ".join(
            f"{k} {d['run']} (this model: {d['bundled']})" for k, d in loco["recipe_differences"].items()))
    return lines


INFERENCE_NORM = {
    "speaker": "trained with per-speaker standardisation; given no adaptation clips it standardises with the training "
               "population's statistics (stored in the file); `--adapt-norm` / `Recognizer.adapt` uses the clips given instead",
    "utterance": "trained and run with per-utterance standardisation (each clip with its own statistics); needs no "
                 "adaptation clips and takes none",
    "global": "the training set's statistics (the paper's); takes no adaptation clips",
}
"""The card's ``inference_norm`` for each :attr:`emospec.config.ModelConfig.norm` the bundled model may have."""


def _calibration_lines(card: Mapping[str, Any]) -> List[str]:
    """What the card's probabilities mean: the temperature and where it was fitted (emospec.calibration)."""
    cal = card.get("calibration") or {}
    t = cal.get("temperature", card.get("temperature"))
    if t is None:
        return []
    if not cal:
        return [f"probabilities: softmax of the logits, temperature {t:g} (not fitted: a model from before temperature scaling)"]
    b, a = cal.get("before_unadapted") or cal.get("before"), cal.get("after_unadapted") or cal.get("after")
    where = cal.get("fitted_on", "validation speakers")
    return [f"probabilities: logits / temperature {t:.3f}, fitted on the {where}"
            + (f": ECE {b['ece']:.3f} -> {a['ece']:.3f}, mean top probability {b['mean_confidence']:.3f} -> "
               f"{a['mean_confidence']:.3f} at accuracy {a['accuracy']:.3f} on those {cal.get('n_clips', '')} clips" if a and b else "")]


def format_card(card: Mapping[str, Any]) -> str:
    """Render a card (from :func:`card_for` or ``model_card.json``) as plain text."""
    lines = [f"model: {card.get('name', '?')}"]
    if card.get("model_file"):
        lines.append(f"file: {card['model_file']}")
    lines.append(f"labels: {', '.join(card.get('labels', []))}")
    data = card.get("training_data") or []
    if data:
        lines.append("training data:")
        for d in data:
            lines.append(f"  {d['corpus']}: {d['clips']} clips, {d['speakers']} speakers ({d.get('language', '')});"
                         f" classes {d.get('counts', {})}")
    if card.get("protocol"):
        lines.append(f"protocol: {card['protocol']}")
    ev = card.get("evaluation")
    if ev:
        lines.append(f"evaluation: {ev.get('protocol', '')}")
        lines.append(f"  UA {_fmt_ci(ev.get('ua'), ev.get('ua_ci95'))}   WA {_fmt_ci(ev.get('wa'), ev.get('wa_ci95'))}"
                     + (f"   n={ev['n_clips']}" if ev.get("n_clips") else ""))
        if ev.get("ci_method"):
            lines.append(f"  CI: {ev['ci_method']}")
        for corpus, m in (ev.get("per_corpus") or {}).items():
            lines.append(f"  {corpus}: UA {m['ua']:.3f}  WA {m['wa']:.3f}")
        if ev.get("fold_ua"):
            lines.append("  UA per fold: " + ", ".join(f"{v:.3f}" for v in ev["fold_ua"]))
    else:
        lines.append("evaluation: none recorded")
    lines += _loco_lines(card.get("leave_one_corpus_out"))
    tc = card.get("train_config") or {}
    if tc:
        lines.append(f"recipe: {tc.get('epochs')} epochs, batch {tc.get('batch_size')}, {tc.get('optimizer')} lr {tc.get('lr')}, "
                     f"{tc.get('schedule')} schedule, {tc.get('crop_s')} s random crops, class weights {tc.get('class_weights')}, "
                     f"seed {tc.get('seed')}")
    fc = card.get("feature_config") or {}
    if fc:
        lines.append(
            f"features: 3D log-Mel (static, delta, delta-delta), {fc.get('n_mels')} mel bands "
            f"{fc.get('fmin_hz'):g}-{fc.get('fmax_hz'):g} Hz, {fc.get('win_ms'):g} ms window, {fc.get('hop_ms'):g} ms hop, "
            f"{fc.get('sample_rate_hz')} Hz, delta width {fc.get('delta_width')}"
            + (f", floored {fc['top_db']:g} dB below each clip's peak" if fc.get("top_db") else "")
            + (", in dB relative to that peak (the recording's gain does not matter)" if fc.get("relative_to_peak") else "")
            + (f"; leading and trailing frames more than {fc['trim_db']:g} dB below the loudest trimmed" if fc.get("trim_db") else "")
        )
    mc = card.get("model_config") or {}
    if mc.get("norm") == "utterance":
        lines.append(f"input standardisation: {INFERENCE_NORM['utterance']}")
    elif mc.get("norm", "global") != "global":
        w = card.get("clip_weight") or 0
        moved = f", each clip moved {w:g} of the way towards its own (chosen on the validation speakers)" if w else ""
        lines.append(f"input standardisation: per {mc['norm']} (trained that way); at inference the statistics of the "
                     f"training population stand in{moved} unless clips of the same {mc['norm']} are given "
                     + (f"(moved {card['adapt_weight']:g} of the way to theirs) " if card.get("adapt_weight") is not None else "")
                     + "(`emospec predict --adapt-norm PATH...`, `Recognizer.adapt`): more accurate when those clips span "
                     "several emotions, less when one emotion dominates them (README, speaker adaptation)")
    lines += _calibration_lines(card)
    if mc:
        lines.append(f"architecture: BatchNorm {'on (deviation from the paper)' if mc.get('batch_norm') else 'off'}, "
                     f"LRN {'on' if mc.get('lrn', True) else 'off'}, first conv stride {mc.get('first_stride', 4)}")
    if card.get("parameters"):
        lines.append(f"model: EmoAlexNet, {card['parameters']:,} parameters" +
                     (f", stored as {card['storage']}" if card.get("storage") else ""))
    lic = card.get("licence") or {}
    lines.append(f"licence: {lic.get('summary', 'unknown')}")
    for part in lic.get("inherited_from", []):
        lines.append(f"  {part}")
    if card.get("limitations"):
        lines.append(f"limitations: {card['limitations']}")
    ver = card.get("versions") or {}
    if ver:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in ver.items() if k in
                                               ("emospec", "git_commit", "python", "torch", "numpy") and v))
    if card.get("command"):
        lines.append(f"reproduce: {card['command']}")
    if card.get("calibration_command"):
        lines.append(f"temperature fitted afterwards by: {card['calibration_command']}")
    return "\n".join(lines)
