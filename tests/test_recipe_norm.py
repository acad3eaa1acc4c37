"""Recipes (features + model + training under one name) and group standardisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from emospec.config import FeatureConfig, ModelConfig, TrainConfig
from emospec.errors import ConfigError
from emospec.files import save_json
from emospec.norm import apply_stats, group_keys, group_stats, normalize_groups, normalize_rows
from emospec.recipe import RECIPES, Recipe, parse_overrides, recipe_from


# --------------------------------------------------------------------------- norm
def _clips(seed: int, n: int, offset: float = 0.0, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 8, 20 + 7 * i, generator=g) * 4.0 * scale - 50.0 + offset for i in range(n)]


def test_group_stats_match_pooled_frames():
    clips = _clips(0, 3)
    s = group_stats(clips)
    pooled = torch.cat(clips, dim=-1).double()
    assert s.frames == pooled.shape[-1] == 20 + 27 + 34
    assert torch.allclose(s.mean.double(), pooled.mean(-1), atol=1e-4)
    assert torch.allclose(s.std.double(), pooled.std(-1, unbiased=False), atol=1e-4)
    z = torch.cat([apply_stats(c, s) for c in clips], dim=-1)
    assert z.mean(-1).abs().max() < 1e-4 and (z.std(-1, unbiased=False) - 1).abs().max() < 1e-4


def test_speaker_norm_removes_a_speaker_gain_and_keeps_within_speaker_differences():
    a = _clips(1, 4)
    b = [c.clone() for c in a]
    louder = [c + 12.0 for c in a]  # the same speaker recorded 12 dB hotter
    spk = ["s1"] * 4 + ["s2"] * 4
    out = normalize_groups(b + louder, group_keys("speaker", spk, ["toy"] * 8))
    for x, y in zip(out[:4], out[4:]):
        assert torch.allclose(x, y, atol=1e-4)
    # a clip 6 dB louder than its speaker's others stays louder after standardisation
    c = [x.clone() for x in a]
    c[0] = c[0] + 6.0
    z = normalize_groups(c, group_keys("speaker", ["s"] * 4, ["toy"] * 4))
    assert z[0].mean() > z[1].mean() + 0.5


def test_group_keys_modes():
    spk, corp = ["a", "a", "b"], ["x", "y", "x"]
    assert group_keys("global", spk, corp) is None
    assert group_keys("utterance", spk, corp) == [0, 1, 2]
    assert group_keys("speaker", spk, corp) == [("x", "a"), ("y", "a"), ("x", "b")]  # ids are per corpus
    assert group_keys("corpus", spk, corp) == ["x", "y", "x"]
    with pytest.raises(ConfigError):
        group_keys("session", spk, corp)
    clips = _clips(2, 3)
    assert all(x is y for x, y in zip(normalize_groups(clips, None), clips))
    per_utt = normalize_groups(clips, group_keys("utterance", spk, corp))
    for z in per_utt:
        assert z.mean(-1).abs().max() < 1e-4
    with pytest.raises(ValueError):
        normalize_groups(clips, [0, 1])


def test_model_config_rejects_unknown_norm():
    with pytest.raises(ConfigError):
        ModelConfig(norm="per-song")


# --------------------------------------------------------------------------- recipes
def test_named_recipes():
    assert set(RECIPES) >= {"paper", "default", "demo", "robust"}
    robust, default = RECIPES["robust"], RECIPES["default"]  # the default plus skewed-statistics versions, the running
    # BatchNorm averages of training (what the shipped model was trained and measured with), nothing else
    # and 2-s crops of untrimmed clips, as the default was before session 34 trimmed silence and cropped 1 s
    assert robust.train == dataclasses.replace(default.train, stats_copies=2, precise_bn=0, crop_s=2.0)
    assert default.train.stats_copies == 0 and default.train.precise_bn == 10 and default.train.crop_s == 1.0
    # and AlexNet's full channels, the width the bundled model was trained at before the default halved them (session 31)
    assert robust.features == dataclasses.replace(default.features, trim_db=None) and default.features.trim_db == 40.0
    assert robust.model == dataclasses.replace(default.model, width=1.0)
    assert default.model.width == 0.5
    import emospec
    shipped = emospec.load(device="cpu")  # the recipe still describes the shipped model
    assert (shipped.model.config.width, shipped.feature_config.trim_db) == (robust.model.width, robust.features.trim_db)
    assert RECIPES["demo"].train.epochs <= RECIPES["default"].train.epochs
    m = RECIPES["default"].model_for(3)
    assert (m.n_classes, m.n_mels) == (3, RECIPES["default"].features.n_mels)


def test_python_defaults_are_the_cli_default_recipe():
    """One meaning of "default": the configs' own defaults are ``--recipe default``, whatever it becomes."""
    default = recipe_from("default")
    assert (FeatureConfig(), ModelConfig(n_mels=FeatureConfig().n_mels), TrainConfig()) == (
        default.features, default.model, default.train)
    assert (Recipe().features, Recipe().model, Recipe().train) == (default.features, default.model, default.train)
    assert Recipe().name == "default" and ModelConfig().n_mels == FeatureConfig().n_mels
    from emospec.cli import build_parser
    from emospec.cli.common import recipe_from_args

    for argv in (["train", "--out", "x"], ["evaluate", "--protocol", "speaker", "--corpus", "ravdess"]):
        cli = recipe_from_args(build_parser().parse_args(argv))  # no --recipe: the command line's default
        assert (cli.name, cli.features, cli.model_for(4), cli.train) == (
            "default", FeatureConfig(), ModelConfig(n_classes=4), TrainConfig())
    demo = RECIPES["demo"]
    assert (demo.features, demo.model, demo.train) == (default.features, default.model, default.train)


def test_default_recipe_values():
    """The default recipe spelled out (README: 64 floored mels with silence trimmed at 40 dB, BN + per-speaker norm,
    one-cycle 2e-3, 100 epochs of 1-s crops)."""
    d = RECIPES["default"]
    f, m, t = dataclasses.asdict(d.features), dataclasses.asdict(d.model), dataclasses.asdict(d.train)
    assert (f["n_mels"], f["top_db"], f["sample_rate_hz"], f["win_ms"], f["hop_ms"], f["n_fft"], f["delta_width"],
            f["relative_to_peak"], f["trim_db"]) == (64, 60.0, 16000, 25.0, 10.0, 512, 5, False, 40.0)  # session 34
    assert (m["n_mels"], m["lrn"], m["batch_norm"], m["norm"], m["first_stride"], m["embed_dim"], m["dropout"], m["width"]) == (
        64, True, True, "speaker", 4, 256, 0.5, 0.5)  # half of AlexNet's conv channels (session 31)
    assert (t["epochs"], t["patience"], t["optimizer"], t["lr"], t["weight_decay"], t["schedule"], t["crop_s"],
            t["class_weights"], t["amp"], t["batch_size"], t["select"], t["val_fraction"]) == (
        100, 100, "adamw", 2e-3, 1e-4, "onecycle", 1.0, True, "bf16", 32, "best", 0.1)


def test_paper_recipe_values():
    """The paper's settings, every field, as they were when they were the configs' defaults (before issue #15)."""
    p = RECIPES["paper"]
    assert p.name == "paper"
    assert dataclasses.asdict(p.features) == {
        "sample_rate_hz": 16000, "win_ms": 25.0, "hop_ms": 10.0, "n_fft": 512, "n_mels": 128, "fmin_hz": 0.0,
        "fmax_hz": 8000.0, "mel_scale": "slaney", "mel_norm": "slaney", "power": 2.0, "amin": 1e-10, "delta_width": 5,
        "top_db": None, "relative_to_peak": False, "trim_db": None}  # absolute dB (ref=1.0), every frame, as the paper's
    assert dataclasses.asdict(p.model) == {
        "n_classes": 4, "embed_dim": 256, "dropout": 0.5, "lrn": True, "batch_norm": False, "first_stride": 4,
        "in_channels": 3, "n_mels": 128, "norm": "global", "pool": "grid", "width": 1.0}  # 6 x 6 grid into FC6, AlexNet's channels
    assert dataclasses.asdict(p.train) == {
        "epochs": 30, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "optimizer": "adamw", "momentum": 0.9,
        "schedule": "cosine", "warmup_epochs": 0, "plateau_patience": 5, "crop_s": 3.0, "class_weights": False,
        "label_smoothing": 0.0, "patience": 8, "val_fraction": 0.1, "select": "best", "select_min_train_ua": 0.0,
        "swa_start": 0.5, "ema": 0.0, "seed": 0,
        "freq_masks": 0, "freq_mask_bins": 16, "time_masks": 0, "time_mask_frames": 30, "mixup_alpha": 0.0, "grad_clip": 5.0,
        "device": "auto", "amp": "auto", "workers": 0, "balance": "none", "augment_copies": 0, "voice_copies": 0,
        "stats_copies": 0,
        "population_copy": False, "contrast_copies": 0, "contrast_low": 0.25,  # no augmentation in the paper
        "precise_bn": 10,  # no BatchNorm in the paper's model: nothing to re-estimate
        "adversary": "none", "adversary_weight": 0.3}  # no domain classifier in the paper


def test_overrides_reach_each_part():
    r = recipe_from("paper", parse_overrides(["model.batch_norm=true", "feature.n_mels=64", "lr=0.01", "train.epochs=3",
                                              "model.norm=speaker", "class-weights=on"]))
    assert (r.model.batch_norm, r.model.norm, r.features.n_mels, r.train.lr, r.train.epochs, r.train.class_weights) == (
        True, "speaker", 64, 0.01, 3, True)
    assert r.model_for(4).n_mels == r.model.n_mels == 64  # feature.n_mels carries model.n_mels with it
    assert recipe_from("default", {"feature.n_mels": 96, "model.n_mels": 80}).model.n_mels == 80  # unless set too
    for bad in (["epoch=3"], ["model.depth=9"], ["optim.lr=1"], ["epochs=three"], ["model.batch_norm=maybe"], ["epochs=0"]):
        with pytest.raises(ConfigError):
            recipe_from("paper", parse_overrides(bad))
    with pytest.raises(ConfigError):
        parse_overrides(["lr"])


def test_recipe_files_round_trip(tmp_path):
    r = recipe_from("paper", {"model.batch_norm": True, "feature.n_mels": 64, "epochs": 5})
    save_json(tmp_path / "r.json", r.to_dict())
    back = recipe_from(str(tmp_path / "r.json"))
    assert (back.features, back.model, back.train) == (r.features, r.model, r.train)
    save_json(tmp_path / "bare.json", {"epochs": 5, "crop_s": 1.5})  # a bare TrainConfig
    bare = recipe_from(str(tmp_path / "bare.json"))
    assert (bare.train.epochs, bare.train.crop_s, bare.model) == (5, 1.5, ModelConfig())
    save_json(tmp_path / "odd.json", {"train": {}, "optimiser": {}})
    with pytest.raises(ConfigError):
        recipe_from(str(tmp_path / "odd.json"))
    assert dataclasses.replace(Recipe(), name="x").train == TrainConfig()


def test_normalize_rows_per_group():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3)) * 5 + 3
    x[5:] += 100.0
    z = normalize_rows(x, ["a"] * 5 + ["b"] * 5)
    assert np.allclose(z[:5].mean(0), 0) and np.allclose(z[5:].std(0), 1)
    assert np.allclose(normalize_rows(x, ["a"] * 5 + ["b"] * 5)[5:], normalize_rows(x[5:] - 100.0, ["b"] * 5))
    assert normalize_rows(x, None) is x


def test_group_balanced_sampler():
    from emospec.data.dataset import GroupBalancedSampler

    groups = ["big"] * 90 + ["small"] * 10
    s = GroupBalancedSampler(groups, seed=3)
    s.set_epoch(0)
    drawn = []
    for e in range(20):
        s.set_epoch(e)
        drawn += list(s)
    assert len(list(s)) == len(s) == 100
    small = sum(i >= 90 for i in drawn) / len(drawn)
    assert 0.45 < small < 0.55  # half the draws from a tenth of the clips
    a, (r0, r1) = _seeded_by_epoch(lambda n, r: GroupBalancedSampler(groups, seed=3, num_replicas=n, rank=r))
    assert sorted(r0 + r1) == sorted(a)


def _seeded_by_epoch(make):
    """Epoch 4's order of ``make(1, 0)`` and of ranks 0 and 1 of ``make(2, rank)``, after checking that the order is
    the same each time an epoch is drawn and changes with the epoch."""
    s = make(1, 0)
    s.set_epoch(4)
    a = list(s)
    s.set_epoch(4)
    assert list(s) == a
    s.set_epoch(5)
    assert list(s) != a
    ranks = [make(2, r) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(4)
    return a, [list(r) for r in ranks]


def _batch_deviation(labels, order, batch=32) -> float:
    """Largest |clips of a class in a batch - the batch's share of that class| over the epoch's full batches."""
    labels = np.asarray(labels)
    share = np.bincount(labels) / len(labels)
    full = len(order) - len(order) % batch
    return max(float(np.abs(np.bincount(labels[order[k:k + batch]], minlength=len(share)) - batch * share).max())
               for k in range(0, full, batch))


def test_stratified_sampler_gives_every_batch_the_classes_in_proportion_and_every_clip_once():
    from torch.utils.data import DistributedSampler

    from emospec.data.dataset import StratifiedSampler

    labels = np.repeat([0, 1, 2, 3], [72, 144, 144, 144])  # a RAVDESS fold's 18 training actors (neutral half as often)
    s = StratifiedSampler(labels, seed=0)
    plain = DistributedSampler(range(len(labels)), num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
    worst_plain = 0.0
    for e in range(20):
        s.set_epoch(e)
        plain.set_epoch(e)
        order = list(s)
        assert sorted(order) == list(range(504)) and len(s) == 504
        assert _batch_deviation(labels, order) <= 2.0  # a batch of 32 holds 4.6 / 9.1 / 9.1 / 9.1 clips, +- 2
        worst_plain = max(worst_plain, _batch_deviation(labels, list(plain)))
    assert worst_plain > 4.0  # what training drew before: batches far from the proportions (so the check can fail)
    a, (r0, r1) = _seeded_by_epoch(lambda n, r: StratifiedSampler(labels, seed=0, num_replicas=n, rank=r))
    assert [i for pair in zip(r0, r1) for i in pair] == a  # two processes' local batches make the global one


def test_training_with_balance_stratified_draws_batches_holding_one_clip_of_each_class():
    from emospec import distributed
    from emospec.data.dataset import StratifiedSampler
    from emospec.epoch import build

    feats = [torch.randn(3, 64, 120) for _ in range(12)]
    y = np.repeat([0, 1, 2], 4)
    ctx = distributed.DistContext(0, 0, 1, torch.device("cpu"), "none", created=False)
    mixed = {}
    for balance in ("stratified", "none"):
        p = build(feats, y, 3, ctx, feature_config=FeatureConfig(n_mels=64), mcfg=ModelConfig(n_classes=3, n_mels=64),
                  tcfg=TrainConfig(balance=balance, batch_size=3, epochs=5), train_groups=None)
        assert isinstance(p.sampler, StratifiedSampler) is (balance == "stratified")
        batches = []
        for e in range(5):
            p.sampler.set_epoch(e)  # type: ignore[attr-defined]
            batches += [sorted(b[1].tolist()) for b in p.loader]
        assert len(batches) == 20
        mixed[balance] = sum(b != [0, 1, 2] for b in batches)
    assert mixed["stratified"] == 0 and mixed["none"] > 0  # a shuffled epoch puts two of a class together
    with pytest.raises(ConfigError, match="'none', 'corpus' or 'stratified'"):
        TrainConfig(balance="classes")


def _load_bench(name):
    from benchmark_scripts import load_benchmark

    return load_benchmark(name)


def test_default_recipe_is_the_first_attempts_best_row_at_the_budget_the_study_chose():
    """README: default = ablation row bn+spk+floor@30 (the old default) + the budget row budget.CHOSEN + half of
    AlexNet's channels (ablation row width0.5, session 31) + silence trimmed with 1-s crops (row trim40-crop1, session 34)."""
    ablate, budget = _load_bench("ablate"), _load_bench("budget")
    rows = {name: (base, over) for name, _, base, over in ablate.ROWS}
    chosen = {name: over for name, _, over in budget.ROWS}[budget.CHOSEN]
    base, over = rows["bn+spk+floor@30"]
    row = recipe_from(base, {**over, **chosen, **rows["width0.5"][1], **rows["trim40-crop1"][1]})
    default = RECIPES["default"]
    assert (row.features, row.model, row.train) == (default.features, default.model, default.train)
    untrimmed = recipe_from(*rows["untrimmed"])  # the default until session 34 differs in those two settings only
    assert untrimmed.features == dataclasses.replace(default.features, trim_db=None)
    assert untrimmed.train == dataclasses.replace(default.train, crop_s=2.0)
    assert recipe_from("default", chosen).train == default.train  # the chosen budget is what the default trains with
    assert default.train.epochs > 30  # the old default (30 epochs) was undertrained
    paper = recipe_from(*rows["paper@30"])
    assert (paper.features, paper.model, paper.train) == (RECIPES["paper"].features, RECIPES["paper"].model,
                                                          RECIPES["paper"].train)
