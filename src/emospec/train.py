"""Training: :func:`fit` turns features and labels into a run directory.

One loop, per epoch: random fixed-length crops -> forward/backward -> clip ->
step -> validation UA on full-length clips -> keep the best -> checkpoint.
The run directory holds::

    model.pt         best model (self-describing, see emospec.checkpoint)
    checkpoint.pt    last epoch: model, optimiser, scheduler, RNG, epoch, best (for --resume)
    config.json      feature, model and train configs
    labels.json      class names in output order
    norm_stats.json  per-bin mean/std (dB) from the training clips
    history.json     per-epoch loss, validation UA/WA, learning rate
    versions.json    python, torch, emospec, git commit ...
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .checkpoint import load_state, save_model, save_state
from .config import FeatureConfig, ModelConfig, TrainConfig, save_json, to_dict
from .data.dataset import CropDataset, feature_stats
from .errors import CheckpointError, ConfigError, DataError
from .evaluate import unweighted_accuracy, weighted_accuracy
from .model import EmoAlexNet, infer
from .versions import environment

__all__ = ["FitResult", "fit", "resolve_device", "seed_everything"]

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :func:`fit` produced: the best model, its epoch and the per-epoch history."""

    model: EmoAlexNet
    run_dir: Path
    best_epoch: int
    best_val_ua: float
    history: List[Dict[str, float]] = field(default_factory=list)


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.3)
    warm = cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _spec_augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """SpecAugment-style masks on normalised input ``(batch, 3, n_mels, frames)`` (masked to 0 = mean)."""
    b, _, m, t = x.shape
    for _ in range(cfg.freq_masks):
        w = torch.randint(0, cfg.freq_mask_bins + 1, (b,), generator=gen)
        s = (torch.rand(b, generator=gen) * (m - w).clamp(min=1)).long()
        band = torch.arange(m)[None, :]
        mask = (band >= s[:, None]) & (band < (s + w)[:, None])
        x = x.masked_fill(mask[:, None, :, None].to(x.device), 0.0)
    for _ in range(cfg.time_masks):
        w = torch.randint(0, cfg.time_mask_frames + 1, (b,), generator=gen)
        s = (torch.rand(b, generator=gen) * (t - w).clamp(min=1)).long()
        frame = torch.arange(t)[None, :]
        mask = (frame >= s[:, None]) & (frame < (s + w)[:, None])
        x = x.masked_fill(mask[:, None, None, :].to(x.device), 0.0)
    return x


def fit(
    train_feats: Sequence[torch.Tensor],
    train_y: Sequence[int],
    val_feats: Sequence[torch.Tensor],
    val_y: Sequence[int],
    labels: Sequence[str],
    run_dir: str | Path,
    *,
    feature_config: FeatureConfig = FeatureConfig(),
    model_config: Optional[ModelConfig] = None,
    train_config: TrainConfig = TrainConfig(),
    resume: bool = False,
    progress: bool = True,
    meta: Optional[Dict] = None,
) -> FitResult:
    """Train an :class:`EmoAlexNet` and write the run directory.

    Parameters
    ----------
    train_feats, val_feats
        ``(3, n_mels, frames_i)`` float32 dB feature tensors.
    train_y, val_y
        Class indices into ``labels``.
    labels
        Class names in output order.
    run_dir
        Output folder (created). With ``resume=True`` training continues from
        its ``checkpoint.pt``.

    Returns
    -------
    FitResult
        The best model (by validation UA) loaded, and the history.
    """
    from tqdm.auto import tqdm

    labels = [str(c) for c in labels]
    if len(train_feats) != len(train_y) or len(val_feats) != len(val_y):
        raise DataError("fit: features and labels differ in length")
    if len(train_feats) == 0:
        raise DataError("fit: no training clips")
    present = sorted(set(int(v) for v in train_y))
    if len(present) < 2:
        raise DataError(f"fit: training data has a single class ({labels[present[0]] if present else '-'}); need at least 2")
    mcfg = model_config or ModelConfig(n_classes=len(labels), n_mels=feature_config.n_mels)
    if mcfg.n_classes != len(labels) or mcfg.n_mels != feature_config.n_mels:
        raise ConfigError(
            f"fit: model config (n_classes={mcfg.n_classes}, n_mels={mcfg.n_mels}) does not match "
            f"{len(labels)} labels / n_mels={feature_config.n_mels}"
        )
    tcfg = train_config
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(tcfg.device)
    seed_everything(tcfg.seed)

    model = EmoAlexNet(config=mcfg)
    mean, std = feature_stats(train_feats)
    model.set_normalization(mean, std)
    model.to(device)

    crop_frames = max(1, int(round(tcfg.crop_s * 1000.0 / feature_config.hop_ms)))
    ds = CropDataset(train_feats, train_y, crop_frames, mean[..., None], seed=tcfg.seed)
    loader_gen = torch.Generator().manual_seed(tcfg.seed)
    loader = DataLoader(ds, batch_size=tcfg.batch_size, shuffle=True, drop_last=len(ds) > tcfg.batch_size, generator=loader_gen)
    aug_gen = torch.Generator().manual_seed(tcfg.seed + 1)

    if tcfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=tcfg.weight_decay, nesterov=True)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    sched = _schedule(opt, tcfg, len(loader))

    weight = None
    if tcfg.class_weights:
        counts = np.bincount(np.asarray(train_y), minlength=len(labels)).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(labels), 0.0)
        weight = torch.tensor(w, dtype=torch.float32, device=device)

    cfg_dict = {"feature": to_dict(feature_config), "model": to_dict(mcfg), "train": to_dict(tcfg)}
    save_json(run_dir / "config.json", cfg_dict)
    save_json(run_dir / "labels.json", labels)
    save_json(run_dir / "norm_stats.json", {"mean_db": mean.tolist(), "std_db": std.tolist(), "shape": "(3, n_mels)"})
    env = environment()
    save_json(run_dir / "versions.json", env)
    model_meta = {"config": cfg_dict, "versions": env, **(meta or {})}

    history: List[Dict[str, float]] = []
    start_epoch, best_ua, best_epoch, bad_epochs = 0, -1.0, -1, 0
    ckpt_path = run_dir / "checkpoint.pt"
    if resume:
        if not ckpt_path.exists():
            raise CheckpointError(f"{ckpt_path}: nothing to resume (no checkpoint)")
        ck = load_state(ckpt_path)
        if ck.get("config") != cfg_dict:
            raise CheckpointError(f"{ckpt_path}: was written with another configuration; cannot resume")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng_torch"])
        loader_gen.set_state(ck["rng_loader"])
        aug_gen.set_state(ck["rng_aug"])
        start_epoch, best_ua, best_epoch, bad_epochs = ck["epoch"] + 1, ck["best_ua"], ck["best_epoch"], ck["bad_epochs"]
        history = list(ck["history"])
        log.info("resuming %s at epoch %d (best UA %.3f at epoch %d)", run_dir, start_epoch, best_ua, best_epoch)

    stop = bad_epochs >= tcfg.patience
    epochs = tqdm(range(start_epoch, tcfg.epochs), desc="train", unit="epoch", disable=not progress, leave=False,
                  initial=start_epoch, total=tcfg.epochs)
    for epoch in epochs:
        if stop:
            break
        model.train()
        ds.set_epoch(epoch)
        total, count = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            xn = model.normalize(x)
            if tcfg.freq_masks or tcfg.time_masks:
                xn = _spec_augment(xn, tcfg, aug_gen)
            if tcfg.mixup_alpha > 0:
                lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=aug_gen))).beta(tcfg.mixup_alpha, tcfg.mixup_alpha))
                perm = torch.randperm(x.shape[0], generator=aug_gen).to(device)
                xn = lam * xn + (1 - lam) * xn[perm]
            logits = model.forward_head(model.features(xn))
            loss = F.cross_entropy(logits, y, weight=weight, label_smoothing=tcfg.label_smoothing)
            if tcfg.mixup_alpha > 0:
                loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y[perm], weight=weight, label_smoothing=tcfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            opt.step()
            sched.step()
            total += float(loss.detach()) * x.shape[0]
            count += x.shape[0]
        train_loss = total / max(1, count)
        if len(val_feats):
            vlog, _ = infer(model, list(val_feats), device=device)
            vpred = vlog.argmax(1).numpy()
            val_ua = unweighted_accuracy(np.asarray(val_y), vpred)
            val_wa = weighted_accuracy(np.asarray(val_y), vpred)
            val_loss = float(F.cross_entropy(vlog, torch.as_tensor(np.asarray(val_y))))
        else:
            val_ua = val_wa = val_loss = float("nan")
        rec = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_ua": val_ua, "val_wa": val_wa,
               "lr": float(opt.param_groups[0]["lr"])}
        history.append(rec)
        improved = (val_ua > best_ua) or (not len(val_feats))
        if improved:
            best_ua, best_epoch, bad_epochs = val_ua, epoch, 0
            save_model(run_dir / "model.pt", model, feature_config, labels,
                       {**model_meta, "best_epoch": epoch, "best_val_ua": val_ua})
        else:
            bad_epochs += 1
        stop = bad_epochs >= tcfg.patience
        save_state(ckpt_path, {
            "config": cfg_dict, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "rng_torch": torch.get_rng_state(), "rng_loader": loader_gen.get_state(),
            "rng_aug": aug_gen.get_state(), "epoch": epoch, "best_ua": best_ua, "best_epoch": best_epoch,
            "bad_epochs": bad_epochs, "history": history,
        })
        save_json(run_dir / "history.json", history)
        epochs.set_postfix(loss=f"{train_loss:.3f}", val_ua=f"{val_ua:.3f}", best=f"{best_ua:.3f}")
        log.info("epoch %d loss %.4f val UA %.3f WA %.3f", epoch, train_loss, val_ua, val_wa)
    epochs.close()

    from .checkpoint import load_model

    best = load_model(run_dir / "model.pt", device=device).model
    return FitResult(model=best, run_dir=run_dir, best_epoch=best_epoch, best_val_ua=best_ua, history=history)
