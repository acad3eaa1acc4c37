"""Trainings side by side on a CPU (emospec.parallel): how many at once, the same results as one at a time."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from corpus_fixtures import clip
from emospec.parallel import parallel_workers, run_jobs


def test_one_training_per_cpu_thread_on_cpu_only(monkeypatch):
    """Two 1-thread trainings at once on 2 cores; one at a time on CUDA, under torchrun, or on one thread."""
    import torch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parallel_workers(2, "auto") == parallel_workers(2, "cpu") == parallel_workers(6, "cpu") == 2
    assert parallel_workers(1, "cpu") == 1
    assert parallel_workers(2, "cuda") == parallel_workers(2, "cuda:0") == 1
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched by torchrun: the processes share one training
    assert parallel_workers(2, "cpu") == 1
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert parallel_workers(2, "auto") == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert parallel_workers(2, "cpu") == 1


def write_then_maybe_fail(run_dir: str, value: int, fail: bool) -> int:
    """A job for run_jobs (module level: it is pickled into a spawned process)."""
    from pathlib import Path

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "history.json").write_text(json.dumps([{"epoch": 0}]))
    if fail:
        raise ValueError(f"job {value} failed")
    return value * 10


def test_run_jobs_keeps_job_order_and_finishes_every_job_before_raising(tmp_path):
    jobs = [dict(run_dir=str(tmp_path / f"j{i}"), value=i, fail=False) for i in range(3)]
    assert run_jobs(write_then_maybe_fail, jobs, 2, names=["a", "b", "c"], run_dirs=[tmp_path / f"j{i}" for i in range(3)],
                    epochs=1, progress=False) == [0, 10, 20]
    jobs = [dict(run_dir=str(tmp_path / f"k{i}"), value=i, fail=i in (0, 2)) for i in range(4)]
    with pytest.raises(ValueError, match="job 0 failed"):
        run_jobs(write_then_maybe_fail, jobs, 2, names=list("abcd"), run_dirs=[tmp_path / f"k{i}" for i in range(4)],
                 epochs=1, progress=False)
    assert all((tmp_path / f"k{i}" / "history.json").exists() for i in range(4))  # the jobs after the failure ran


def _tree(root, speakers):
    for i, (lab, spk, k) in enumerate((lab, s, k) for lab in ("Neutral", "Happy", "Angry", "Sad") for s in speakers
                                      for k in range(2)):
        clip(root / lab / spk / f"{k}.wav", seconds=0.7, seed=i)
    return root


@pytest.mark.slow
def test_folds_trained_side_by_side_give_the_results_of_one_at_a_time(tmp_path):
    """``evaluate --jobs 3`` (three fold processes) == ``--jobs 1`` (in turn), model and baseline, on one thread each."""
    root = _tree(tmp_path / "corpus", ("s1", "s2", "s3"))
    runs, warnings = {}, {}
    for jobs in (1, 3):
        out = tmp_path / f"jobs{jobs}"
        r = run_cli("-q", "evaluate", "--protocol", "loso", "--corpus", f"folder:{root}", "--epochs", "2",
                    "--resamples", "50", "--no-plots", "--jobs", str(jobs), "--out", str(out),
                    env={"OMP_NUM_THREADS": "1"})  # one thread in turn and in each process: the same arithmetic
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        runs[jobs] = out
        warnings[jobs] = sorted({line.replace(str(out), "OUT") for line in r.stderr.decode().splitlines()
                                 if line.startswith("WARNING emospec.")})  # once per process: amp's warn-once
    m1, m3 = (json.loads((runs[j] / "metrics.json").read_text()) for j in (1, 3))
    assert (m1["folds_at_once"], m3["folds_at_once"], m3["n_folds"]) == (1, 3, 3)
    for fold in ("s1", "s2", "s3"):
        a, b = (json.loads(next((runs[j]).glob(f"*{fold}*/oof.json")).read_text()) for j in (1, 3))
        assert a["test_ids"] == b["test_ids"] and len(a["test_ids"]) == 8
        assert a["probs"] == b["probs"] and a["history"] == b["history"]
        assert a["baseline"]["pred"] == b["baseline"]["pred"]
    assert m1["model"]["ua"] == m3["model"]["ua"] and m1["paired_ua"] == m3["paired_ua"]
    # the fold processes log as the command does: each fold's convergence warnings, in the same words
    assert len(warnings[1]) >= 3 and warnings[3] == warnings[1], (warnings[1], warnings[3])


def test_jobs_goes_with_the_fold_protocols_only(tmp_path):
    for extra in (["--train", "ravdess", "--test", "emovo"], ["--protocol", "loco", "--corpus", "ravdess", "--corpus", "emovo"],
                  ["--protocol", "loso", "--corpus", "emovo"]):
        jobs = "0" if extra[1] == "loso" else "2"
        r = run_cli("-q", "evaluate", *extra, "--jobs", jobs, "--out", str(tmp_path / "never"))
        err = r.stderr.decode().strip()
        assert r.returncode == 1 and err == ("emospec: error: --jobs N (N >= 1) goes with --protocol speaker, loso or "
                                             "paper: the folds trained at once"), err
    assert not (tmp_path / "never").exists()
