"""scripts/train_bundled.py: the card says where its leave-one-corpus-out figures were trained otherwise."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from emospec.config import NORMS, TrainConfig, to_dict
from emospec.modelcard import format_card

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import train_bundled  # noqa: E402


def test_the_card_lists_every_training_setting_in_which_its_loco_runs_differ(tmp_path):
    old = to_dict(TrainConfig(stats_copies=2))
    del old["precise_bn"]  # a run from before the option existed
    for held in ("held_out_nemo/train_ravdess+emovo", "held_out_emovo/train_ravdess+nemo"):
        (tmp_path / held).mkdir(parents=True)
        (tmp_path / held / "config.json").write_text(json.dumps({"train": {**old, "device": "cuda"}}))
    mine = TrainConfig(stats_copies=2, device="cpu")
    assert train_bundled.recipe_differences(tmp_path, mine) == {"precise_bn": {"run": None, "bundled": mine.precise_bn}}
    assert train_bundled.recipe_differences(tmp_path, replace(mine, epochs=50)) == {
        "precise_bn": {"run": None, "bundled": mine.precise_bn}, "epochs": {"run": 100, "bundled": 50}}
    card = {"name": "x", "labels": ["a"], "leave_one_corpus_out": {
        "held_out": {"nemo": {"ua": 0.41}}, "recipe_differences": train_bundled.recipe_differences(tmp_path, mine)}}
    assert f"trained otherwise than this model: precise_bn None (this model: {mine.precise_bn})" in format_card(card)


def test_the_card_says_how_inputs_are_standardised_for_each_norm():
    utterance = format_card({"name": "x", "labels": ["a"], "model_config": {"norm": "utterance", "batch_norm": True}})
    speaker = format_card({"name": "x", "labels": ["a"], "model_config": {"norm": "speaker", "batch_norm": True}})
    assert "per-utterance standardisation" in utterance and "takes none" in utterance and "--adapt-norm" not in utterance
    assert "per speaker" in speaker and "--adapt-norm" in speaker and "towards its own" not in speaker
    moved = format_card({"name": "x", "labels": ["a"], "model_config": {"norm": "speaker"}, "clip_weight": 0.75})
    assert "each clip moved 0.75 of the way towards its own (chosen on the validation speakers)" in moved
    assert "(moved 1 of the way to theirs)" in format_card({"name": "x", "labels": ["a"], "model_config": {"norm": "speaker"},
                                                            "adapt_weight": 1.0})
    assert "of the way to theirs" not in moved
    assert "takes none" not in format_card({"name": "x", "labels": ["a"], "model_config": {"norm": "global"}})
    assert set(train_bundled.INFERENCE_NORM) == set(NORMS) - {"corpus"}  # the card's text for each norm a bundled model may have


def test_the_card_says_when_features_are_relative_to_each_clips_peak():
    from emospec.config import FeatureConfig

    for rel in (False, True):
        card = format_card({"name": "x", "labels": ["a"], "feature_config": to_dict(FeatureConfig(relative_to_peak=rel, trim_db=None))})
        assert "floored 60 dB below each clip's peak" in card
        assert ("relative to that peak" in card) is rel
    trimmed = format_card({"name": "x", "labels": ["a"], "feature_config": to_dict(FeatureConfig(trim_db=40.0))})
    assert "frames more than 40 dB below the loudest trimmed" in trimmed and "trimmed" not in card


def _fold(root, corpus, seed, ua, unadapted, **train):
    path = root / f"held_out_{corpus}"
    path.mkdir(parents=True)
    cfg = {**to_dict(TrainConfig(stats_copies=2, seed=seed)), **train}
    (path / "metrics.json").write_text(json.dumps({"kind": "cross-corpus", "train_config": cfg, "tests": {
        corpus: {"model": {"ua": ua}, "unadapted": {"ua": unadapted}}}}))


def test_the_card_gives_every_seeds_leave_one_corpus_out_figures(tmp_path):
    import pytest

    from emospec.errors import EmospecError

    _fold(tmp_path / "loco", "nemo", 0, 0.5, 0.4)
    _fold(tmp_path / "loco", "emovo", 0, 0.6, 0.5)
    _fold(tmp_path / "seed1", "nemo", 1, 0.3, 0.2)
    _fold(tmp_path / "seed1", "emovo", 1, 0.4, 0.3, device="cuda")  # where it ran is not a setting
    spread = train_bundled.seed_spread([tmp_path / "seed1", tmp_path / "loco"])
    nemo = spread["per_corpus"]["nemo"]
    assert nemo["seeds"] == [0, 1] and nemo["ua"] == [0.5, 0.3] and nemo["unadapted_ua"] == [0.4, 0.2]
    assert nemo["ua_mean"] == pytest.approx(0.4) and spread["per_corpus"]["emovo"]["unadapted_ua_mean"] == pytest.approx(0.4)
    assert spread["mean_ua"] == {"model": pytest.approx(0.45), "unadapted": pytest.approx(0.35)}
    text = format_card({"name": "x", "labels": ["a"], "leave_one_corpus_out": {"held_out": {}, "seeds": spread}})
    assert "nemo, seeds 0, 1: UA 0.500, 0.300 (mean 0.400); without adaptation 0.400, 0.200 (mean 0.300)" in text
    assert "mean over seeds and corpora: UA 0.450, without adaptation 0.350" in text
    assert train_bundled.seed_spread([]) == {}
    _fold(tmp_path / "other", "nemo", 2, 0.9, 0.9, epochs=50)
    with pytest.raises(EmospecError, match="epochs"):  # another recipe is not another seed
        train_bundled.seed_spread([tmp_path / "loco", tmp_path / "other"])
    with pytest.raises(EmospecError, match="seed 0 of emovo given twice"):
        train_bundled.seed_spread([tmp_path / "loco", tmp_path / "loco"])


def test_the_reproduce_line_names_cv_folds_only_when_this_script_runs_the_cv():
    loco = train_bundled.parser().parse_args(["--recipe", "robust", "--loco", "runs/loco/a", "--loco-seeds", "b", "c",
                                              "--set", "feature.relative_to_peak=true", "--adapt-weight", "1"])
    assert train_bundled.reproduce_command(loco) == (
        "python scripts/train_bundled.py --seed 0 --recipe robust --corpora ravdess emovo nemo --loco runs/loco/a "
        "--loco-seeds b c --adapt-weight 1.0 --set feature.relative_to_peak=true")
    cv = train_bundled.parser().parse_args(["--cv-folds", "4", "--corpora", "ravdess", "emovo"])
    assert train_bundled.reproduce_command(cv) == (
        "python scripts/train_bundled.py --cv-folds 4 --seed 0 --recipe default --corpora ravdess emovo")


def test_calibrate_fits_the_shipped_models_temperature_on_its_validation_speakers_and_rewrites_file_and_card(tmp_path):
    import json

    import numpy as np
    import pytest
    import torch

    from emospec.checkpoint import load_model, save_model
    from emospec.config import FeatureConfig, ModelConfig, TrainConfig
    from emospec.data.manifest import Utterance
    from emospec.experiment import unadapted_calibration, validation_split
    from emospec.model import EmoAlexNet
    from emospec.modelcard import sha256_of
    from emospec.norm import CLIP_WEIGHT_KEY, POPULATION_KEY, population_meta

    classes = ["neutral", "happy", "angry", "sad"]
    rows = [Utterance(f"/x/{s}_{c}_{i}.wav", "toy", f"{s}_{c}_{i}", f"spk{s:02d}", "mf"[s % 2], c, c)
            for s in range(10) for c in classes for i in range(3)]
    gen = torch.Generator().manual_seed(0)
    y = np.array([classes.index(r.label4) for r in rows])
    # each class a little louder in its own band, so a random network is right on some clips and wrong on others
    feats = [torch.randn(3, 64, 80, generator=gen) * 3 - 40 + 4 * torch.nn.functional.one_hot(torch.tensor(k * 16 + 3), 64)
             .float()[None, :, None] for k in y]
    tcfg = TrainConfig(seed=0)
    _, val_idx = validation_split(rows, np.arange(len(rows)), y, speaker_independent=True, fraction=tcfg.val_fraction,
                                  seed=tcfg.seed)
    torch.manual_seed(0)
    model = EmoAlexNet(config=ModelConfig(n_classes=4, n_mels=64, norm="speaker")).eval()
    with torch.no_grad():
        model.classifier[4].weight.mul_(500.0)  # overconfident
    meta = {**population_meta("speaker", feats), CLIP_WEIGHT_KEY: 0.25}
    card = {"name": "toy", "validation_speakers": sorted({rows[i].speaker for i in val_idx}), "command": "python ..."}
    assets = tmp_path / "assets"
    assets.mkdir()
    save_model(assets / "model.pt", model, FeatureConfig(), classes, {**meta, "model_card": card}, half=True)
    want = unadapted_calibration(load_model(assets / "model.pt").model, meta, [feats[i] for i in val_idx], y[val_idx])
    assert want["fitted"] and want["temperature"] > 1.5  # the scaled-up logits are far too sure

    assert train_bundled.calibrate_shipped(rows, feats, y, assets, tcfg, "python scripts/train_bundled.py --stage calibrate") == 0
    shipped = load_model(assets / "model.pt")
    t = float(shipped.model.temperature)
    assert t == pytest.approx(want["temperature"], rel=2e-3)  # stored as float16
    written = json.loads((assets / "model_card.json").read_text())
    assert written["calibration"]["temperature"] == pytest.approx(want["temperature"])
    assert written["calibration"]["after_unadapted"]["nll"] < written["calibration"]["before_unadapted"]["nll"]
    assert written["model_file_sha256"] == sha256_of(assets / "model.pt") and written["validation_speakers"] == card["validation_speakers"]
    assert shipped.meta["model_card"]["calibration_command"].endswith("--stage calibrate")
    assert shipped.meta[CLIP_WEIGHT_KEY] == 0.25 and shipped.meta[POPULATION_KEY] == meta[POPULATION_KEY]  # the rest stays
    # other options would hold out other speakers: refused, the file left as it is
    before = sha256_of(assets / "model.pt")
    with pytest.raises(SystemExit, match="the card's model was chosen on"):
        train_bundled.calibrate_shipped(rows, feats, y, assets, TrainConfig(seed=5), "python ...")
    assert sha256_of(assets / "model.pt") == before
