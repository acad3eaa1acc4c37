"""``emospec train`` with the data options, on a tiny real RAVDESS/EMOVO subset (1 epoch)."""

from __future__ import annotations

import csv
import json
import re

import pytest

from conftest import run_cli

TRAIN = ["--epochs", "1", "--crop-s", "1", "--batch-size", "8"]


@pytest.fixture(scope="module")
def tiny_ravdess(shared_data, tmp_path_factory):
    """4 actors x 4 classes x 2 clips of real RAVDESS, as symlinks in the release layout."""
    root = tmp_path_factory.mktemp("rav") / "ravdess"
    for actor in ("01", "02", "03", "04"):
        for emo in ("01", "03", "04", "05"):
            for rep in ("01", "02"):
                name = f"03-01-{emo}-01-01-{rep}-{actor}.flac"
                (root / f"Actor_{actor}").mkdir(parents=True, exist_ok=True)
                (root / f"Actor_{actor}" / name).symlink_to(shared_data / "ravdess" / f"Actor_{actor}" / name)
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One feature cache for the module: each clip is featurised once."""
    return tmp_path_factory.mktemp("cache")


def _train(cache_dir, *args):
    res = run_cli("-q", "train", *args, *TRAIN, env={"EMOSPEC_CACHE": str(cache_dir)})
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    return res.stdout.decode()


@pytest.mark.slow
def test_train_speaker_protocol_and_split_reuse(tmp_path, tiny_ravdess, cache_dir):
    out = _train(cache_dir, "--corpus", f"ravdess:{tiny_ravdess}", "--protocol", "speaker", "--folds", "2",
                 "--out", str(tmp_path / "R"))
    assert "32 clips, neutral 8, happy 8, angry 8, sad 8; speaker: fold fold_01 of 2" in out
    splits = json.loads((tmp_path / "R/splits.json").read_text())
    assert splits["protocol"] == "speaker" and len(splits["folds"]) == 2
    # whole actors, one woman and one man a fold (seed 0), as `emospec evaluate --protocol speaker` deals them
    assert [f["test_speakers"] for f in splits["folds"]] == [["ravdess_01", "ravdess_02"], ["ravdess_03", "ravdess_04"]]
    for f in splits["folds"]:
        spk = lambda keys: {k.rsplit("-", 1)[1] for k in keys}  # noqa: E731  (actor = last field of the id)
        assert not spk(f["train"]) & spk(f["test"]) and len(f["test"]) == 16
    metrics = json.loads((tmp_path / "R/metrics.json").read_text())
    assert metrics["split"]["n_test"] == 16 and metrics["split"]["test_speakers"] == splits["folds"][0]["test_speakers"]
    assert len(list(cache_dir.glob("v1-*/*/*.feat"))) == 32
    # the saved split, reused for its second fold
    out = _train(cache_dir, "--corpus", f"ravdess:{tiny_ravdess}", "--split", str(tmp_path / "R/splits.json"),
                 "--fold", "2", "--out", str(tmp_path / "R2"))
    assert "split: fold fold_02 of 2" in out
    m2 = json.loads((tmp_path / "R2/metrics.json").read_text())
    assert m2["split"]["test_speakers"] == splits["folds"][1]["test_speakers"]


@pytest.mark.slow
def test_train_paper_protocol_from_a_manifest(tmp_path, tiny_ravdess, cache_dir):
    res = run_cli("-q", "prepare", "ravdess", str(tiny_ravdess), "--out", str(tmp_path / "m.csv"))
    assert res.returncode == 0
    out = _train(cache_dir, "--manifest", str(tmp_path / "m.csv"), "--protocol", "paper", "--classes", "neutral,angry,sad",
                 "--out", str(tmp_path / "P"))
    assert "24 clips, neutral 8, angry 8, sad 8; paper: fold paper_90_10 of 1" in out
    metrics = json.loads((tmp_path / "P/metrics.json").read_text())
    assert metrics["split"]["n_test"] == 3 and metrics["split"]["speaker_independent"] is False
    assert json.loads((tmp_path / "P/labels.json").read_text()) == ["neutral", "angry", "sad"]


@pytest.mark.slow
def test_train_all_on_two_corpora(tmp_path, tiny_ravdess, shared_data, cache_dir):
    emovo = tmp_path / "emovo"
    for spk in ("f1", "m1", "m2"):
        for emo in ("rab", "tri", "neu", "gio"):
            (emovo / spk).mkdir(parents=True, exist_ok=True)
            (emovo / spk / f"{emo}-{spk}-b1.flac").symlink_to(shared_data / "emovo" / spk / f"{emo}-{spk}-b1.flac")
    out = _train(cache_dir, "--corpus", f"ravdess:{tiny_ravdess}", "--corpus", f"emovo:{emovo}", "--protocol", "all",
                 "--map", "joy=", "--out", str(tmp_path / "A"))
    assert "41 clips, neutral 11, happy 8, angry 11, sad 11; all: fold all of 1" in out
    assert re.search(r"trained on \d+ clips; validation UA", out)
    rows = list(csv.DictReader(open(tmp_path / "A/manifest.csv")))
    assert {r["corpus"] for r in rows} == {"ravdess", "emovo"} and len(rows) == 41


def test_train_says_why_when_no_audio_loads(tmp_path, shared_data):
    # the IEMOCAP label table has no audio: every clip fails, and train stops with one line saying so
    res = run_cli("-q", "train", "--corpus", f"iemocap:{shared_data / 'labels/iemocap/df_iemocap.csv'}", "--no-cache",
                  "--out", str(tmp_path / "R"))
    err = res.stderr.decode().strip().splitlines()
    assert res.returncode == 1
    assert err[-1] == "emospec: error: 0 clip(s) left with 0 class(es) after 5531 failed to load; need 2 classes"
    assert err[-2] == "skipped 5531 item(s) in all"
    assert err[0] == "skipped: Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav: file not found"
