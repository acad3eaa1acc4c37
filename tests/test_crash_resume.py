"""Crash-safe training: SIGKILL a training process, resume it, and get the uninterrupted run's numbers.

A child process trains on eight real RAVDESS clips with every source of
randomness switched on (dropout, SpecAugment masks, mixup, shuffling, random
crops, a cosine schedule). The killed run is stopped for good at a chosen
point (the child parks itself there and the test SIGKILLs it), resumed with
``resume=True`` in a fresh process, and must end with exactly the same
history, weights and optimiser state as a run that was never interrupted:
the checkpoint carries model, optimiser, scheduler, the torch and
augmentation RNG states, epoch and best score, and the crops and batch order
are derived from (seed, epoch), so nothing depends on where the kill landed.
Exact equality holds because both runs execute the same float operations in
the same order on the same CPU (same thread count).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from badinput import tree
from conftest import REPO
from emospec.config import FeatureConfig, TrainConfig
from emospec.errors import CheckpointError
from emospec.train import fit

pytestmark = pytest.mark.slow

EPOCHS, BATCH = 4, 2

PARKING = r"""
import os, sys, time
from pathlib import Path

def _park(where):
    Path(os.environ["PARK_MARKER"]).write_text(where)
    time.sleep(3600)  # until the test's SIGKILL

_at = os.environ.get("PARK_AT", "").split(":")
if _at[0] == "batch":  # "batch:E:B:SIZE": batch B (of SIZE clips) of epoch E is about to be fetched
    from emospec.data.dataset import CropDataset
    _e, _b, _size = map(int, _at[1:])
    _state = {"epoch": -1, "items": 0}
    _set_epoch, _getitem = CropDataset.set_epoch, CropDataset.__getitem__
    def _set_epoch_counting(self, epoch):
        _state.update(epoch=epoch, items=0)
        _set_epoch(self, epoch)
    def _getitem_counting(self, i):
        if _state["epoch"] == _e and _state["items"] == _b * _size:
            _park(f"epoch {_e} after {_b} optimiser steps")
        _state["items"] += 1
        return _getitem(self, i)
    CropDataset.set_epoch, CropDataset.__getitem__ = _set_epoch_counting, _getitem_counting
elif _at[0] == "rename":  # "rename:SUFFIX:N": the N-th file ending in SUFFIX is whole in its temp file, not renamed
    _suffix, _n, _calls, _replace = _at[1], int(_at[2]), [], os.replace
    def _replace_parking(src, dst, *a, **k):
        if str(dst).endswith(_suffix):
            _calls.append(dst)
            if len(_calls) == _n:
                _park(f"write {_n} of *{_suffix} before its rename: {dst}")
        return _replace(src, dst, *a, **k)
    os.replace = _replace_parking
"""

FIT = PARKING + r"""
import json
import numpy as np

from emospec import audio, features
from emospec.config import TrainConfig
from emospec.train import fit

run_dir, clips = Path(sys.argv[1]), json.loads(sys.argv[2])
feats = [features.extract(audio.load(p)) for p in clips]
y = np.array([0, 1, 3, 2] * 2)  # RAVDESS emotions 01 03 04 05 -> neutral happy sad angry
cfg = TrainConfig(epochs=int(os.environ["EPOCHS"]), batch_size=int(os.environ["BATCH"]), crop_s=0.5, lr=3e-4, seed=7,
                  patience=100, freq_masks=1, time_masks=1, mixup_alpha=0.2, schedule="cosine", device="cpu")
res = fit(feats, y, feats[4:], y[4:], ["neutral", "happy", "angry", "sad"], run_dir, train_config=cfg,
          progress=False, resume=os.environ.get("RESUME") == "1")
print(json.dumps({"best_epoch": res.best_epoch, "best_val_ua": res.best_val_ua}))
"""

CLI = PARKING + r"""
from emospec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PARK_AT", "PARK_MARKER", "RESUME")}
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(EPOCHS=str(EPOCHS), BATCH=str(BATCH), OMP_NUM_THREADS="1", **extra)
    return env


def _child(script: str, *args: str, cwd=None, **env) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-c", script, *args], env=_env(**env), capture_output=True, text=True,
                       timeout=600, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _until_parked(script: str, *args: str, park: str, marker: Path, **env) -> str:
    """Start a child that parks at ``park``, wait until it is there, SIGKILL it; returns where it stopped."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], env=_env(PARK_AT=park, PARK_MARKER=str(marker), **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"child exited ({proc.returncode}) before parking: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "child never reached its parking point"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    where = marker.read_text()
    marker.unlink()
    return where


def _train(run_dir: Path, clips, **env) -> dict:
    r = _child(FIT, str(run_dir), json.dumps([str(c) for c in clips]), **env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _ck(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


def _same_tensors(a, b) -> bool:
    """Deep equality of nested dicts/lists of tensors and numbers (exact)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module")
def clips(ravdess_clips):
    return ravdess_clips


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("crash") / "reference"
    out = _train(run_dir, clips)
    return run_dir, out


def test_the_checkpoint_holds_everything_needed(reference):
    run_dir, _ = reference
    ck = _ck(run_dir)
    assert {"config", "model", "optimizer", "scheduler", "rng_torch", "rng_aug", "epoch", "best_ua", "best_epoch",
            "bad_epochs", "history"} <= set(ck)
    assert ck["epoch"] == EPOCHS - 1 and len(ck["history"]) == EPOCHS
    assert ck["optimizer"]["state"] and ck["scheduler"]["last_epoch"] == EPOCHS * 8 // BATCH  # every step counted
    assert ck["best_ua"] == max(h["val_ua"] for h in ck["history"])


@pytest.mark.parametrize("park, done_epochs", [(f"batch:2:2:{BATCH}", 2), ("rename:checkpoint.pt:3", 2)],
                         ids=["mid-epoch", "mid-checkpoint-write"])
def test_sigkill_then_resume_equals_uninterrupted(reference, clips, tmp_path, park, done_epochs):
    ref_dir, ref_out = reference
    run_dir = tmp_path / "run"
    where = _until_parked(FIT, str(run_dir), json.dumps([str(c) for c in clips]), park=park,
                          marker=tmp_path / "PARKED")
    # What the kill left: the last completed epoch's checkpoint, whole, and a history that agrees with it.
    ck = _ck(run_dir)
    assert ck["epoch"] == done_epochs - 1, where
    assert json.loads((run_dir / "history.json").read_text()) == ck["history"]
    leftovers = sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp"))
    if park.startswith("rename:"):
        assert len(leftovers) == 1 and leftovers[0].startswith(".checkpoint.pt.")  # the unfinished write
    out = _train(run_dir, clips, RESUME="1")
    assert out == ref_out
    assert not any(p.name.endswith(".tmp") for p in run_dir.iterdir())  # the unfinished write is cleared away
    ref_hist = json.loads((ref_dir / "history.json").read_text())
    hist = json.loads((run_dir / "history.json").read_text())
    assert len(hist) == EPOCHS and hist == ref_hist  # losses, val UA/WA, lr: all equal, exactly
    a, b = _ck(ref_dir), _ck(run_dir)
    for key in ("model", "optimizer", "scheduler", "rng_torch", "rng_aug", "best_ua", "best_epoch", "history"):
        assert _same_tensors(a[key], b[key]), key
    ma = torch.load(ref_dir / "model.pt", map_location="cpu", weights_only=True)
    mb = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    assert _same_tensors(ma["state_dict"], mb["state_dict"]) and ma["meta"]["best_epoch"] == mb["meta"]["best_epoch"]


def test_cli_train_killed_then_resume_gives_the_same_report(clips, tmp_path):
    """``emospec train ... --resume`` after a SIGKILL mid-epoch: the same history, test metrics and printed report."""
    manifest = tmp_path / "m.csv"
    more = [p.with_name(p.name.replace("-01-01-01-", "-01-02-01-")) for p in clips]  # the other statement
    manifest.write_text("path,label,speaker\n" + "".join(
        f"{p},{['neutral', 'happy', 'sad', 'angry'][i % 4]},{p.parent.name}\n" for i, p in enumerate(clips + more)))
    args = ["-q", "train", "--manifest", str(manifest), "--protocol", "paper", "--test-fraction", "0.25", "--epochs", "3",
            "--batch-size", "4", "--crop-s", "0.5", "--seed", "3", "--cache", str(tmp_path / "cache")]
    before = set(tree(tmp_path))
    ref = _child(CLI, *args, "--out", str(tmp_path / "ref"), cwd=tmp_path)
    assert all(p.startswith(("ref/", "cache/")) or p in ("ref", "cache") for p in set(tree(tmp_path)) - before)
    where = _until_parked(CLI, *args, "--out", str(tmp_path / "run"), park="batch:1:1:4", marker=tmp_path / "PARKED")
    assert _ck(tmp_path / "run")["epoch"] == 0 and not (tmp_path / "run" / "metrics.json").exists(), where
    res = _child(CLI, *args, "--out", str(tmp_path / "run"), "--resume")
    assert res.stdout.replace(str(tmp_path / "run"), "RUN") == ref.stdout.replace(str(tmp_path / "ref"), "RUN")
    for name in ("history.json", "metrics.json", "predictions.csv", "splits.json"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    feats = [torch.randn(3, FeatureConfig().n_mels, 80) for _ in range(4)]
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: nothing to resume \(no checkpoint\)$"):
        fit(feats, [0, 1, 0, 1], [], [], ["a", "b"], tmp_path / "fresh", train_config=TrainConfig(epochs=1, device="cpu"),
            progress=False, resume=True)


def test_a_fresh_run_clears_the_temp_files_a_killed_run_left(tmp_path):
    """Without ``resume`` too: retraining into a killed run's folder must not keep its half-written checkpoint."""
    run_dir = tmp_path / "again"
    run_dir.mkdir()
    for name in (".checkpoint.pt.q_jz04nr.tmp", ".model.pt.abc123.tmp"):
        (run_dir / name).write_bytes(b"\0" * 1024)
    (run_dir / "notes.tmp").write_text("not ours")
    feats = [torch.randn(3, FeatureConfig().n_mels, 80) for _ in range(4)]
    fit(feats, [0, 1, 0, 1], [], [], ["a", "b"], run_dir, train_config=TrainConfig(epochs=1, device="cpu", select="last",
                                                                                    val_fraction=0.0), progress=False)
    assert sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")) == ["notes.tmp"]
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "model.pt").exists()


def test_resume_with_a_corrupt_checkpoint_is_a_clear_error(reference, tmp_path):
    """A checkpoint damaged after the fact (disk, copy): refused with the file and the cause, not a traceback."""
    ref_dir, _ = reference
    run_dir = tmp_path / "damaged"
    run_dir.mkdir()
    blob = (ref_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(blob[: len(blob) // 2])
    feats = [torch.randn(3, FeatureConfig().n_mels, 80) for _ in range(4)]
    with pytest.raises(CheckpointError) as ei:
        fit(feats, [0, 1, 0, 1], [], [], ["a", "b"], run_dir, train_config=TrainConfig(epochs=1, device="cpu"),
            progress=False, resume=True)
    msg = str(ei.value)
    assert msg.startswith(f"{run_dir / 'checkpoint.pt'}: corrupt or unreadable checkpoint") and "\n" not in msg


def test_resume_with_another_configuration_is_refused(reference, tmp_path):
    """A checkpoint written with other settings (here: another feature config) is not silently continued."""
    import shutil
    from dataclasses import replace

    ref_dir, _ = reference
    run_dir = tmp_path / "other"
    shutil.copytree(ref_dir, run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    other = replace(FeatureConfig(), n_mels=2 * FeatureConfig().n_mels)  # the reference ran on the default features
    feats = [torch.randn(3, other.n_mels, 80) for _ in range(4)]
    cfg = TrainConfig(epochs=EPOCHS, batch_size=BATCH, crop_s=0.5, lr=3e-4, seed=7, patience=100, freq_masks=1,
                      time_masks=1, mixup_alpha=0.2, schedule="cosine", device="cpu")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: was written with another configuration; cannot resume$"):
        fit(feats, [0, 1, 3, 2], [], [], ["neutral", "happy", "angry", "sad"], run_dir, train_config=cfg,
            feature_config=other, progress=False, resume=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # the refused run changed nothing


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """Run files must be readable like any other file the user writes (mkstemp alone gives 0600)."""
    from emospec.files import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.json", b"{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
        (tmp_path / "kept.json").write_bytes(b"1")
        (tmp_path / "kept.json").chmod(0o640)
        atomic_write_bytes(tmp_path / "kept.json", b"2")
        assert (tmp_path / "kept.json").stat().st_mode & 0o777 == 0o640 and (tmp_path / "kept.json").read_bytes() == b"2"
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.json", b"{}")
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --------------------------------------------------------------------------- crash-safe preparation
N_CLIPS = 12


@pytest.fixture
def small_corpus(tmp_path):
    """Three label folders of four 1 s tones each (generated)."""
    import numpy as np
    import soundfile as sf

    root = tmp_path / "corpus"
    for k, label in enumerate(("angry", "neutral", "sad")):
        (root / label).mkdir(parents=True)
        for i in range(N_CLIPS // 3):
            t = np.arange(16000) / 16000
            sf.write(root / label / f"{label}{i}.wav", 0.3 * np.sin(2 * np.pi * (150 + 100 * k + 20 * i) * t), 16000)
    return root


def _prepare_args(root: Path, tmp: Path, *extra: str):
    return ["-q", "prepare", "folder", str(root), "--out", str(tmp / "manifest.csv"), "--features",
            "--cache", str(tmp / "cache"), *extra]


def _prepare(root: Path, tmp: Path, *extra: str) -> str:
    r = _child(CLI, *_prepare_args(root, tmp, *extra))
    return next(line for line in r.stdout.splitlines() if line.startswith("features:"))


def _entries(tmp: Path):
    """``{digest: array}`` of every complete cache entry, each decoded and checked by FeatureCache."""
    from emospec.data.cache import FeatureCache
    from emospec.recipe import RECIPES

    cache = FeatureCache(tmp / "cache", RECIPES["default"].features)  # what `prepare --features` caches by default
    out = {}
    for p in cache.folder.glob("*/*.feat"):
        arr = cache.load(p.stem)
        assert arr is not None, f"{p}: corrupt entry"
        out[p.stem] = arr
    return out


def _fresh(root: Path) -> dict:
    """``{sha256 of the file: features computed now}`` for every clip of ``root``."""
    from emospec import audio, features
    from emospec.data.cache import audio_digest
    from emospec.recipe import RECIPES

    cfg = RECIPES["default"].features
    return {audio_digest(p)[0]: features.extract(audio.load(p), cfg).numpy() for p in sorted(root.glob("*/*.wav"))}


def test_prepare_killed_mid_write_then_rerun_computes_only_the_rest(small_corpus, tmp_path):
    marker = tmp_path / "PARKED"
    where = _until_parked(CLI, *_prepare_args(small_corpus, tmp_path), park="rename:.feat:5", marker=marker)
    fresh = _fresh(small_corpus)
    done = _entries(tmp_path)  # four whole entries, every one equal to the features computed now
    assert len(done) == 4 and all((arr == fresh[d]).all() for d, arr in done.items())
    temps = [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].name.startswith(".") and Path(where.rsplit(": ", 1)[1]).name in temps[0].name
    assert _prepare(small_corpus, tmp_path).startswith(f"features: {N_CLIPS} clips, 4 cached, {N_CLIPS - 4} computed, 0 failed")
    assert _prepare(small_corpus, tmp_path).startswith(f"features: {N_CLIPS} clips, {N_CLIPS} cached, 0 computed, 0 failed")
    entries = _entries(tmp_path)
    assert entries.keys() == fresh.keys() and all((entries[d] == fresh[d]).all() for d in fresh)
    # a truncated entry (a disk that filled up, a copy cut short) is never loaded: it is recomputed
    victim = next(iter(sorted((tmp_path / "cache").rglob("*.feat"))))
    victim.write_bytes(victim.read_bytes()[:300])
    assert _prepare(small_corpus, tmp_path).startswith(f"features: {N_CLIPS} clips, {N_CLIPS - 1} cached, 1 computed, 0 failed")
    assert (_entries(tmp_path)[victim.stem] == fresh[victim.stem]).all()


def _children(pid: int) -> list:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
def test_prepare_with_workers_killed_leaves_no_workers_and_no_corrupt_entry(small_corpus, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", CLI, *_prepare_args(small_corpus, tmp_path, "--workers", "2")],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while len(list((tmp_path / "cache").rglob("*.feat"))) < 2:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert len(workers) >= 2  # the pool really ran in other processes...
    deadline = time.monotonic() + 60
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)  # ...which end with their parent
    done = _entries(tmp_path)
    fresh = _fresh(small_corpus)
    assert 2 <= len(done) <= N_CLIPS and all((arr == fresh[d]).all() for d, arr in done.items())
    line = _prepare(small_corpus, tmp_path)
    assert line.startswith(f"features: {N_CLIPS} clips, {len(done)} cached, {N_CLIPS - len(done)} computed, 0 failed")
