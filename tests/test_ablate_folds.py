"""benchmarks/ablate.py on a subset of folds: its own summary file, resumable, never mistaken for the full row."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import emospec.protocols
from benchmark_scripts import load_benchmark


def _summary(ua: float, n_folds: int) -> dict:
    """The parts of run_protocol's summary that ablate.py prints and tabulates."""
    cell = {"ua": ua, "ci": {"ua": {"low": ua - 0.05, "high": ua + 0.05}}}
    return {"model": cell, "baseline": {"ua": 0.5, "ci": {"ua": {"low": 0.45, "high": 0.55}}},
            "paired_ua": {"difference": ua - 0.5, "low": ua - 0.55, "high": ua - 0.45}, "n_folds": n_folds}


def test_fold_subsets_get_their_own_summary_and_the_full_row_is_not_faked(tmp_path, monkeypatch):
    ablate = load_benchmark("ablate")
    calls = []

    def fake_run_protocol(data, protocol, out, fold_subset=None, **kw):
        calls.append((protocol, fold_subset))
        out.mkdir(parents=True, exist_ok=True)
        summary = _summary(0.7, len(fold_subset or range(6)))
        (out / "metrics.json").write_text(json.dumps(summary))  # as run_protocol does, whatever the subset
        return SimpleNamespace(summary=summary)

    monkeypatch.setattr(emospec.protocols, "run_protocol", fake_run_protocol)
    monkeypatch.setattr(ablate, "_corpus", lambda *a, **k: None)
    row = [r for r in ablate.ROWS if r[0] == "global-norm"]

    assert ablate.metrics_name(None) == "metrics.json"
    assert ablate.metrics_name([4, 3, 4]) == "metrics_folds-3-4.json"
    ablate.run_rows(row, ["ravdess"], tmp_path, folds=[4, 3])
    assert calls == [("speaker", [4, 3])]
    d = tmp_path / "global-norm" / "ravdess"
    subset = json.loads((d / "metrics_folds-3-4.json").read_text())
    assert subset["fold_subset"] == [3, 4] and subset["recipe_row"][0] == "global-norm"

    ablate.run_rows(row, ["ravdess"], tmp_path, folds=[3, 4])  # finished: nothing trains again
    assert len(calls) == 1
    full = ablate.table(row, ["ravdess"], tmp_path)  # metrics.json is run_protocol's of the subset: not the row's result
    assert "| global-norm |" in full and "0.700" not in full
    part = ablate.table(row, ["ravdess"], tmp_path, folds=[3, 4])
    assert "0.700 [0.650, 0.750]" in part and "+0.200" in part
    assert (tmp_path / "table_folds-3-4.md").read_text().strip() == part

    ablate.run_rows(row, ["ravdess"], tmp_path)  # the full row then runs (resuming its finished folds in run_protocol)
    assert calls[-1] == ("speaker", None)
    assert json.loads((d / "metrics.json").read_text())["fold_subset"] is None
    assert "0.700 [0.650, 0.750]" in ablate.table(row, ["ravdess"], tmp_path)


def test_budget_table_takes_only_its_own_summaries_of_a_row(tmp_path, monkeypatch):
    """budget.py shares ablate.finished: a screening's run_protocol metrics.json is never the row's six-fold result."""
    budget = load_benchmark("budget")
    calls = []

    def fake_run_protocol(data, protocol, out, fold_subset=None, **kw):
        calls.append(fold_subset)
        out.mkdir(parents=True, exist_ok=True)
        for name in [f["name"] for f in _folds(fold_subset)]:
            (out / name).mkdir(exist_ok=True)
            (out / name / "history.json").write_text(json.dumps([{"epoch": 0, "train_loss": 0.1, "val_loss": 0.2, "val_ua": 0.8}]))
        summary = dict(_summary(0.7, len(fold_subset or range(6))), folds=_folds(fold_subset), labels=["neutral", "sad"])
        (out / "metrics.json").write_text(json.dumps(summary))  # as run_protocol does, whatever the subset
        return SimpleNamespace(summary=summary)

    monkeypatch.setattr(emospec.protocols, "run_protocol", fake_run_protocol)
    monkeypatch.setattr(budget, "_corpus", lambda *a, **k: None)
    row = [r for r in budget.ROWS if r[0] == "e200"]

    budget.run(row, tmp_path, folds=[5, 3])
    d = tmp_path / "e200" / "ravdess"
    assert calls == [[5, 3]] and json.loads((d / "metrics_folds-3-5.json").read_text())["fold_subset"] == [3, 5]
    assert "| e200 |" not in budget.table(row, tmp_path)  # metrics.json is run_protocol's of the subset
    part = budget.table(row, tmp_path, folds=[3, 5])
    assert "| e200 |" in part and "0.700 [0.650, 0.750]" in part and "+0.200 [+0.150, +0.250]" in part
    (d / "metrics.json").write_text(json.dumps({**json.loads((d / "metrics.json").read_text()), "budget_row": ["e200", {}]}))
    assert "| e200 |" not in budget.table(row, tmp_path)  # another row's overrides under the same name do not count

    budget.run(row, tmp_path, folds=None)
    assert calls[-1] is None and "| e200 | one-cycle, 200 epochs | 6 |" in budget.table(row, tmp_path)


def _folds(subset) -> list:
    """run_protocol's per-fold records, with the fields budget.py's table reads."""
    return [{"name": f"fold_{j + 1:02d}", "best_val_ua": 0.8,
             "convergence": {"best_epoch": 1, "epochs_run": 1, "final_train_loss": 0.1,
                             "train_recall_full": {"neutral": 1.0, "sad": 1.0}}} for j in (subset or range(6))]


def _finished_row(out, row, probs, labels, truth, baseline=None):
    """A finished ablate row on "ravdess": its summary, one fold's predictions.csv and labels.json (and oof)."""
    name, _, base, over = row
    d = out / name / "ravdess"
    (d / "fold_01").mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"recipe_row": [name, base, over], "labels": labels}))
    (d / "fold_01" / "labels.json").write_text(json.dumps(labels))
    lines = ["path,speaker,true,pred," + ",".join(f"p_{c}" for c in labels)]
    lines += [f"/c{i}.wav,spk,{t},{labels[int(np.argmax(p))]}," + ",".join(f"{v:.4f}" for v in p)
              for i, (t, p) in enumerate(zip(truth, probs))]
    (d / "fold_01" / "predictions.csv").write_text("\n".join(lines) + "\n")
    if baseline:
        oof = ["path,corpus,speaker,fold,true,model,baseline"]
        oof += [f"/c{i}.wav,ravdess,spk,fold_01,{t},,{b}" for i, (t, b) in enumerate(zip(truth, baseline))]
        (d / "oof_predictions.csv").write_text("\n".join(oof) + "\n")


def test_ensemble_averages_the_rows_probabilities_on_the_same_clips(tmp_path, monkeypatch):
    ablate = load_benchmark("ablate")
    rows = [r for n in ("default", "seed1", "seed2") for r in ablate.ROWS if r[0] == n]
    labels, truth = ["neutral", "sad"], ["neutral", "neutral", "sad", "sad"]
    members = [[(0.9, 0.1), (0.4, 0.6), (0.6, 0.4), (0.2, 0.8)],  # n s n s: UA 0.5
               [(0.8, 0.2), (0.7, 0.3), (0.45, 0.55), (0.3, 0.7)],  # n n s s: UA 1.0
               [(0.3, 0.7), (0.6, 0.4), (0.3, 0.7), (0.6, 0.4)]]  # s n s n: UA 0.5; the mean: n n s s
    for j, (row, probs) in enumerate(zip(rows, members)):
        _finished_row(tmp_path, row, probs, labels, truth, baseline=["neutral", "sad", "sad", "sad"] if j == 0 else None)
    res = ablate.ensemble(rows, "ravdess", tmp_path)
    assert res["ua"] == 1.0 and res["members_ua"] == [0.5, 1.0, 0.5] and res["baseline_ua"] == 0.75
    assert res["recall"] == {"neutral": 1.0, "sad": 1.0} and res["paired_vs_baseline"]["difference"] == 0.25
    assert [d["difference"] for d in res["paired_vs_members"]] == [0.5, 0.0, 0.5]
    saved = json.loads((tmp_path / "ensemble-default+seed1+seed2" / "ravdess.json").read_text())
    assert saved["ua"] == 1.0 and "UA 1.000" in ablate.ensemble_text(res)

    (tmp_path / "seed2" / "ravdess" / "fold_01" / "predictions.csv").write_text("path,speaker,true,pred,p_neutral,p_sad\n")
    with pytest.raises(SystemExit, match="did not test the same clips"):
        ablate.ensemble(rows, "ravdess", tmp_path)
    with pytest.raises(SystemExit, match="has not finished"):
        ablate.ensemble([rows[0], next(r for r in ablate.ROWS if r[0] == "voices2")], "ravdess", tmp_path)


def test_every_row_tests_on_the_folds_of_seed_0_whatever_its_training_seed(tmp_path, monkeypatch):
    ablate = load_benchmark("ablate")
    seen = []

    def fake_run_protocol(data, protocol, out, train_config=None, fold_seed=None, **kw):
        seen.append((train_config.seed, fold_seed))
        out.mkdir(parents=True, exist_ok=True)
        return SimpleNamespace(summary=_summary(0.7, 6))

    monkeypatch.setattr(emospec.protocols, "run_protocol", fake_run_protocol)
    monkeypatch.setattr(ablate, "_corpus", lambda *a, **k: None)
    ablate.run_rows([r for r in ablate.ROWS if r[0] in ("default", "seed2")], ["ravdess"], tmp_path)
    assert seen == [(0, 0), (2, 0)] and ablate.FOLD_SEED == 0
