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
        card = format_card({"name": "x", "labels": ["a"], "feature_config": to_dict(FeatureConfig(relative_to_peak=rel))})
        assert "floored 60 dB below each clip's peak" in card
        assert ("relative to that peak" in card) is rel


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
