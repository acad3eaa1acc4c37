"""Data-parallel training: 2 CPU processes (gloo) give the same model as 1 process, same global batch.

Why the two runs can agree, and how closely
-------------------------------------------
* Same data order: both runs draw the epoch's permutation from
  ``DistributedSampler(seed, epoch)``; with 2 ranks, rank r takes every other
  index, so global batch k is the same 8 clips as in the 1-process run
  (4 per rank), and a rank's mean-loss gradient averaged over the 2 ranks by
  DDP is the 1-process mean-loss gradient.
* Same crops: ``CropDataset`` draws crop starts from (seed, epoch) per clip
  index, the same in every process. Dropout is 0, no SpecAugment or mixup,
  so nothing else is random; both runs start from the same seeded weights.
* No BatchNorm (the default recipe has it): on CPU each rank would
  normalise its own 4 clips (SyncBatchNorm is CUDA only), not the global 8.
* SGD, not AdamW: SGD's update is linear in the gradient, so float32
  rounding differences (a sum of 8 vs 2 sums of 4, then an all-reduce;
  convolution kernels blocked differently for batch 4 and 8; relative size
  ~1e-6) stay ~1e-6 relative in the weights after 4 steps. Adam's first
  steps normalise each gradient element to ±lr, so elements whose gradient is
  ~0 could flip sign on rounding and move 2·lr apart: no small tolerance would hold.
* Tolerance: weights within 1e-6 absolute (measured: 4e-9; the 4 steps move
  weights by up to 3e-3), losses within 1e-5 relative. To show the check can
  fail, a 1-process run with global batch 4 instead of 8 (same seed, same
  clips) must differ from the batch-8 run by more than 100x the tolerance
  (measured: 5e-3).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import REPO, SHARED_DATA
from emospec import audio, features
from emospec.config import ModelConfig, TrainConfig
from emospec.device import amp_dtype, seed_everything
from emospec.distributed import DistContext, env_world_size, init, is_main
from emospec.model import EmoAlexNet
from emospec.train import fit

CLASSES = ["neutral", "happy", "angry", "sad"]
EMOTION = {"01": "neutral", "03": "happy", "05": "angry", "04": "sad"}
MODEL = ModelConfig(n_classes=4, dropout=0.0, batch_norm=False)
TRAIN = TrainConfig(epochs=2, batch_size=8, lr=0.01, optimizer="sgd", schedule="constant", crop_s=0.8, seed=3,
                    device="cpu", amp="off", patience=100)
WEIGHT_ATOL = 1e-6


def _clips(shared_data, actors=("01", "02", "03", "04")):
    return [shared_data / "ravdess" / f"Actor_{a}" / f"03-01-{e}-01-01-01-{a}.flac" for a in actors for e in EMOTION]


@pytest.fixture(scope="module")
def tiny_set(shared_data):
    """16 real RAVDESS clips (4 actors x 4 emotions): features and class indices."""
    paths = _clips(shared_data)
    feats = [features.extract(audio.load(p)) for p in paths]
    y = [CLASSES.index(EMOTION[p.name.split("-")[2]]) for p in paths]
    return feats, y


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, run_dir: str, out: str) -> None:
    """One torchrun-like process: the environment torchrun would set, then fit()."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    d = torch.load(data, weights_only=True)
    res = fit(d["feats"], d["y"], [], [], CLASSES, run_dir, model_config=MODEL, train_config=TRAIN, progress=False)
    torch.save({"world_size": res.world_size, "state": res.model.state_dict(), "history": res.history},
               os.path.join(out, f"rank{rank}.pt"))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_two_gloo_processes_match_one_process(tiny_set, tmp_path, monkeypatch):
    feats, y = tiny_set
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    torch.save({"feats": feats, "y": y}, tmp_path / "data.pt")
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path / "data.pt"), str(tmp_path / "ddp"),
                                               str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]  # really one job of two, not two jobs of one
    assert _max_diff(ranks[0]["state"], ranks[1]["state"]) == 0.0  # DDP keeps the replicas identical

    torch.set_num_threads(1)
    one = fit(feats, y, [], [], CLASSES, tmp_path / "one", model_config=MODEL, train_config=TRAIN, progress=False)
    assert one.world_size == 1
    seed_everything(TRAIN.seed)
    start = EmoAlexNet(config=MODEL).state_dict()
    moved = max(float((one.model.state_dict()[k] - start[k]).abs().max()) for k in start if not k.startswith("input_"))
    assert moved > 1e-3  # training did change the weights

    diff = _max_diff(ranks[0]["state"], one.model.state_dict())
    assert diff <= WEIGHT_ATOL, f"2-process weights differ from 1-process by {diff:.2e}"
    loss_ddp = np.array([h["train_loss"] for h in ranks[0]["history"]])
    loss_one = np.array([h["train_loss"] for h in one.history])
    assert len(loss_ddp) == TRAIN.epochs and np.allclose(loss_ddp, loss_one, rtol=1e-5, atol=0), (loss_ddp, loss_one)

    half = fit(feats, y, [], [], CLASSES, tmp_path / "half", model_config=MODEL,
               train_config=replace(TRAIN, batch_size=4), progress=False)
    assert _max_diff(half.model.state_dict(), one.model.state_dict()) > 100 * WEIGHT_ATOL

    # the data-parallel run directory is as complete as the single-process one
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


@pytest.mark.slow
def test_torchrun_cli_trains_with_two_processes(shared_data, tmp_path):
    root = tmp_path / "ravdess"
    for p in _clips(shared_data):  # a 16-clip corpus in the release layout (links, no copies)
        (root / p.parent.name).mkdir(parents=True, exist_ok=True)
        (root / p.parent.name / p.name).symlink_to(p)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), EMOSPEC_DATA=str(SHARED_DATA), OMP_NUM_THREADS="1",
               GLOO_SOCKET_IFNAME="lo")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "emospec", "-q", "-v", "train", "--corpus", "ravdess", "--root", str(root), "--out", str(tmp_path / "run"),
           "--epochs", "1", "--batch-size", "4", "--crop-s", "0.8", "--test-speakers", "1", "--device", "cpu",
           "--cache", str(tmp_path / "cache")]  # both ranks fill one cache; nothing written to $HOME
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank}/2 (local {rank}) joined the gloo process group on cpu" in r.stderr
    for name in ("model.pt", "checkpoint.pt", "history.json", "metrics.json", "report.txt", "split.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert "run dir:" in r.stdout
    assert len(list((tmp_path / "cache").rglob("*.feat"))) == 16  # one entry per clip, whichever rank wrote it


def test_single_process_context_without_torchrun(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_world_size() == 1 and is_main()
    assert init("cpu") == DistContext(0, 0, 1, torch.device("cpu"), "none", created=False)
    monkeypatch.setenv("RANK", "1")
    assert not is_main()  # decided from torchrun's variable even with no process group


def test_batch_must_split_evenly_over_processes(tiny_set, tmp_path, monkeypatch):
    from emospec.errors import ConfigError

    feats, y = tiny_set
    monkeypatch.setenv("WORLD_SIZE", "3")  # checked before joining any process group
    with pytest.raises(ConfigError, match="batch_size=8 is not divisible by the 3 processes"):
        fit(feats, y, [], [], CLASSES, tmp_path / "x", model_config=MODEL, train_config=TRAIN, progress=False)


def test_amp_choices_and_cpu_bf16_training(tiny_set, tmp_path, monkeypatch):
    from emospec import device
    from emospec.errors import ConfigError

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)  # bf16 numerics are tested whatever this CPU has
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None
    assert amp_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="fp16.*CUDA"):
        amp_dtype("fp16", cpu)
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig(amp="fp8")
    feats, y = tiny_set
    runs = {amp: fit(feats, y, [], [], CLASSES, tmp_path / amp, model_config=MODEL, progress=False,
                     train_config=replace(TRAIN, epochs=1, amp=amp)) for amp in ("off", "bf16")}
    loss32, loss16 = (runs[a].history[0]["train_loss"] for a in ("off", "bf16"))
    # bf16 keeps ~3 significant digits: the loss moves a little, and only a little
    assert 0 < abs(loss16 - loss32) < 0.05 * loss32, (loss16, loss32)
    assert all(v.dtype == torch.float32 for v in runs["bf16"].model.state_dict().values())  # weights stay float32
    assert torch.load(tmp_path / "bf16" / "model.pt", weights_only=False)["meta"]["autocast"] == "torch.bfloat16"


def test_bf16_on_a_cpu_that_would_emulate_it_trains_in_float32_and_says_so(tiny_set, tmp_path, monkeypatch, caplog):
    """An AVX2-only CPU emulates bf16 (35x slower than float32 here): the default amp='bf16' falls back, once, aloud."""
    from emospec import device

    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(device, "_WARNED", set())
    assert amp_dtype("bf16", torch.device("cpu")) is None
    feats, y = tiny_set
    with caplog.at_level("WARNING", logger="emospec.device"):
        runs = {amp: fit(feats, y, [], [], CLASSES, tmp_path / amp, model_config=MODEL, progress=False,
                         train_config=replace(TRAIN, epochs=1, amp=amp)) for amp in ("off", "bf16")}
    assert runs["bf16"].history[0]["train_loss"] == runs["off"].history[0]["train_loss"]  # the same float32 run
    assert torch.load(tmp_path / "bf16" / "model.pt", weights_only=False)["meta"]["autocast"] == "off"
    said = [r.getMessage() for r in caplog.records if "no native bfloat16" in r.getMessage()]
    assert len(said) == 1 and "training in float32" in said[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_picks_a_half_type():
    assert amp_dtype("auto", torch.device("cuda")) in (torch.bfloat16, torch.float16)
