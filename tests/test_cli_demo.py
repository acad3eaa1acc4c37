"""`emospec demo` end to end on real RAVDESS (1 epoch), and its message when data is missing."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_demo_one_epoch_prints_two_reports_and_writes_plots(shared_data, tmp_path):
    out = tmp_path / "demo"
    r = run_cli("-q", "demo", "--epochs", "1", "--out", str(out), "--data", str(shared_data), timeout=900)
    text = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert "672 clips" in text
    assert "paper: stratified random 90/10" in text and "speaker-independent: held-out actors" in text
    assert text.count("weighted avg") == 2 and text.count("UA (unweighted accuracy)") == 2
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["splits"]) == {"paper", "speaker"}
    assert summary["splits_at_once"] in (1, 2)  # 2 on a CPU with two threads: the side-by-side path ran
    from emospec.recipe import RECIPES

    assert summary["recipe"]["model"] == {**RECIPES["demo"].to_dict()["model"], "n_classes": 4,
                                          "n_mels": RECIPES["demo"].features.n_mels}
    assert summary["recipe"]["train"]["epochs"] == 1
    assert summary["splits"]["paper"]["n_test"] == 67  # round(672 * 0.1), as 5,531 -> 553 needs
    # held-out actors never appear in training
    split = json.loads((out / "speaker" / "split.json").read_text())
    test_actors = {u.split("-")[-1] for u in split["test"]}
    assert not test_actors & {u.split("-")[-1] for u in split["train"] + split["val"]}
    for p in summary["plots"]:
        assert (out / p.split("/")[-1]).stat().st_size > 5000
    for sub in ("paper", "speaker"):
        for f in ("model.pt", "config.json", "labels.json", "metrics.json", "report.txt", "versions.json"):
            assert (out / sub / f).is_file()


def test_demo_says_where_it_looked_when_data_is_missing(tmp_path):
    r = run_cli("demo", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
                env={"EMOSPEC_DATA": str(tmp_path / "nowhere")})
    err = r.stderr.decode()
    assert r.returncode == 1
    assert "nowhere" in err and "--data" in err and "EMOSPEC_DATA" in err
    assert len(err.strip().splitlines()) == 1
