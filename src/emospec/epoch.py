"""One training epoch and what it needs, for :func:`emospec.train.fit`.

:func:`build` makes the :class:`Parts` of one training process before its
first epoch: the seeded model with the training clips' per-bin statistics,
the crop loader and its sampler, the optimiser, the learning-rate schedule
(:func:`schedule`), the class weights and, with ``TrainConfig.adversary``,
the domain classifier behind a gradient reversal layer (:class:`DomainAdversary`).
:func:`train_one_epoch` runs one pass over the crops (standardise ->
SpecAugment (:func:`spec_augment`) -> mixup -> forward -> loss (+ the
domain loss) -> :func:`step`), and :func:`precise_bn` re-estimates the
BatchNorm statistics on the epoch's crops before validation.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from . import distributed
from .config import FeatureConfig, ModelConfig, TrainConfig
from .data.dataset import CropDataset, GroupBalancedSampler, StratifiedSampler, feature_stats
from .device import BF16Rounding, amp_dtype, conv_memory_format, seed_everything
from .errors import ConfigError
from .model import EmoAlexNet, batchnorm_layers, recalibrate_batchnorm

__all__ = ["Parts", "DomainAdversary", "grad_reverse", "adversary_ramp", "build", "schedule", "spec_augment",
           "train_one_epoch", "step", "precise_bn"]


def schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The learning-rate scheduler of ``cfg.schedule``; stepped per batch, except ``plateau`` (per epoch, on val UA)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.3)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=cfg.plateau_patience)
    warm = cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def spec_augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
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


class _Logits(torch.nn.Module):
    """Standardised input -> logits: the part of :class:`EmoAlexNet` that DDP wraps.

    SpecAugment and mixup act between standardisation and the conv stack, so
    the wrapped forward starts after :meth:`EmoAlexNet.normalize`.
    """

    def __init__(self, model: EmoAlexNet, adversary: Optional["DomainAdversary"] = None):
        super().__init__()
        self.model = model
        self.adversary = adversary
        self.reversal = 0.0  # the gradient reversal coefficient of the next forward (set per step)

    def forward(self, xn: torch.Tensor):
        """``(batch, 3, n_mels, frames)`` standardised -> logits, or (logits, domain logits) with an adversary."""
        emb = self.model.forward_head(self.model.features(xn), pre_logits=True)
        logits = self.model.classify(emb)
        if self.adversary is None:
            return logits
        return logits, self.adversary(grad_reverse(emb, self.reversal))


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:  # type: ignore[override]
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """Identity forward; the backward hands back ``-coeff`` times the gradient (Ganin et al., 2016)."""
    return _GradReverse.apply(x, coeff)


def adversary_ramp(progress: float) -> float:
    """DANN's ramp of the reversal coefficient, ``2 / (1 + exp(-10 p)) - 1``: 0 at ``p=0``, 0.987 at ``p=0.5``."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


class DomainAdversary(torch.nn.Module):
    """Embedding ``(batch, embed_dim)`` -> domain logits ``(batch, n_domains)``: Linear-ReLU-Linear (128 hidden)."""

    def __init__(self, embed_dim: int, n_domains: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(embed_dim, 128), torch.nn.ReLU(), torch.nn.Linear(128, n_domains))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb)


class _WithDomains(torch.utils.data.Dataset):
    """A :class:`CropDataset` whose items carry each clip's domain index: ``(x, y, d)``."""

    def __init__(self, ds: CropDataset, domains: torch.Tensor):
        self.ds, self.domains = ds, domains

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = self.ds[i]
        return x, y, self.domains[i]


def _domain_indices(tcfg: TrainConfig, train_groups: Optional[Sequence], train_speakers: Optional[Sequence],
                    n: int) -> Optional[Tuple[torch.Tensor, List[str]]]:
    """Each training clip's domain index and the domain names (sorted), or None without an adversary."""
    if tcfg.adversary == "none":
        return None
    keys = train_groups if tcfg.adversary == "corpus" else train_speakers
    if keys is None or len(keys) != n:
        raise ConfigError(f"TrainConfig.adversary={tcfg.adversary!r} needs the {tcfg.adversary} of every training clip")
    names = sorted({str(k) for k in keys})
    if len(names) < 2:
        raise ConfigError(f"TrainConfig.adversary={tcfg.adversary!r} needs >= 2 {tcfg.adversary} values in the "
                          f"training clips, got {names}")
    index = {k: i for i, k in enumerate(names)}
    return torch.tensor([index[str(k)] for k in keys], dtype=torch.int64), names


@dataclass
class Parts:
    """Everything one training process builds before its first epoch."""

    model: EmoAlexNet
    net: torch.nn.Module
    ds: CropDataset
    sampler: object
    loader: DataLoader
    opt: torch.optim.Optimizer
    sched: object
    scaler: Optional[torch.amp.GradScaler]
    weight: Optional[torch.Tensor]
    aug_gen: torch.Generator
    autocast_dtype: Optional[torch.dtype]
    logits: _Logits  # the forward that p.net wraps (its ``reversal`` is set per step)
    adversary: Optional[DomainAdversary] = None
    domains: Optional[List[str]] = None  # the adversary's domain names, by index


def build(train_feats, train_y, n_classes: int, ctx: distributed.DistContext, *, feature_config: FeatureConfig,
           mcfg: ModelConfig, tcfg: TrainConfig, train_groups: Optional[Sequence],
           train_versions: Optional[Sequence[Sequence[torch.Tensor]]] = None,
           train_speakers: Optional[Sequence] = None) -> Parts:
    """Seeded model (with the training clips' per-bin statistics), data pipeline, optimiser and schedule.

    ``train_groups`` (corpus) and ``train_speakers`` of each training clip: the
    first for ``balance="corpus"``, either for ``adversary``.
    """
    device = ctx.device
    autocast_dtype = amp_dtype(tcfg.amp, device)
    domain = _domain_indices(tcfg, train_groups, train_speakers, len(train_feats))
    seed_everything(tcfg.seed)
    model = EmoAlexNet(config=mcfg)
    mean, std = feature_stats(train_feats)
    model.set_normalization(mean, std)
    # channels-last conv weights on CPU (faster steps); Module.to documents memory_format, torch's overloads omit it
    model.to(device, memory_format=conv_memory_format(device))  # type: ignore[call-overload]
    adversary = None
    if domain is not None:
        with torch.random.fork_rng(devices=[]):  # its initial weights draw from their own stream: dropout masks stay as without it
            torch.manual_seed(tcfg.seed + 104729)
            adversary = DomainAdversary(mcfg.embed_dim, len(domain[1])).to(device)
    logits_fn = _Logits(model, adversary)
    net: torch.nn.Module = logits_fn
    if ctx.world_size > 1:
        if mcfg.batch_norm and device.type == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=mcfg.batch_norm)
        torch.manual_seed(tcfg.seed + 1 + ctx.rank)  # same initial weights, different dropout masks per rank

    crop_frames = max(1, int(round(tcfg.crop_s * 1000.0 / feature_config.hop_ms)))
    ds = CropDataset(train_feats, train_y, crop_frames, mean[..., None], seed=tcfg.seed, versions=train_versions)
    items: torch.utils.data.Dataset = ds if domain is None else _WithDomains(ds, domain[0])
    sampler = train_sampler(tcfg, ds, train_y, train_groups, ctx.world_size, ctx.rank)
    loader = DataLoader(items, batch_size=tcfg.batch_size // ctx.world_size, sampler=sampler,  # type: ignore[arg-type]
                        drop_last=len(ds) > tcfg.batch_size, num_workers=tcfg.workers,
                        pin_memory=device.type == "cuda")
    aug_gen = torch.Generator().manual_seed(tcfg.seed + 1 + 7919 * ctx.rank)

    opt: torch.optim.Optimizer
    params = list(model.parameters()) + (list(adversary.parameters()) if adversary is not None else [])
    if tcfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=tcfg.weight_decay, nesterov=True)
    else:
        opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    sched = schedule(opt, tcfg, len(loader))
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None
    weight = None
    if tcfg.class_weights:
        counts = np.bincount(np.asarray(train_y), minlength=n_classes).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
        weight = torch.tensor(w, dtype=torch.float32, device=device)
    return Parts(model, net, ds, sampler, loader, opt, sched, scaler, weight, aug_gen, autocast_dtype, logits_fn,
                 adversary, domain[1] if domain is not None else None)


def train_sampler(tcfg: TrainConfig, ds: CropDataset, train_y, train_groups, world_size: int = 1, rank: int = 0):
    """The sampler that orders ``ds``'s training clips each epoch for ``tcfg.balance``.

    Its order depends only on (``tcfg.seed``, epoch), and a world of N sees the
    same global batches as one process.
    """
    if tcfg.balance == "corpus" and train_groups is not None:
        return GroupBalancedSampler(train_groups, seed=tcfg.seed, num_replicas=world_size, rank=rank)
    if tcfg.balance == "stratified":
        return StratifiedSampler(np.asarray(train_y), seed=tcfg.seed, num_replicas=world_size, rank=rank)
    return DistributedSampler(ds, num_replicas=world_size, rank=rank, shuffle=True, seed=tcfg.seed, drop_last=True)


def train_one_epoch(p: Parts, tcfg: TrainConfig, epoch: int, n_classes: int, ctx: distributed.DistContext) -> Dict:
    """One pass over the training crops; returns mean loss and per-class accuracy on those crops.

    The accuracy is of the crops as trained on (dropout, SpecAugment and mixup
    active; with mixup, against each crop's own label): a cheap, slightly
    pessimistic training-set figure, reduced over processes. With an
    adversary also its mean loss and accuracy (``adv_loss``, ``adv_acc``: near
    chance when the embedding no longer tells the domains apart) and the last
    reversal coefficient (``adv_coeff``).
    """
    device = ctx.device
    p.net.train()
    p.ds.set_epoch(epoch)
    p.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
    total = torch.zeros((), dtype=torch.float64, device=device)
    hits = torch.zeros(2, n_classes, dtype=torch.float64, device=device)  # row 0: right, row 1: seen
    adv = torch.zeros(2, dtype=torch.float64, device=device)  # domain loss sum, domain hits
    count = 0
    for b, batch in enumerate(p.loader):
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if p.adversary is not None:
            p.logits.reversal = tcfg.adversary_weight * adversary_ramp((epoch + b / max(1, len(p.loader))) / tcfg.epochs)
        xn = p.model.normalize(x)
        if tcfg.freq_masks or tcfg.time_masks:
            xn = spec_augment(xn, tcfg, p.aug_gen)
        lam, perm = 1.0, None
        if tcfg.mixup_alpha > 0:
            mix_rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=p.aug_gen)))
            lam = float(mix_rng.beta(tcfg.mixup_alpha, tcfg.mixup_alpha))
            perm = torch.randperm(x.shape[0], generator=p.aug_gen).to(device)
            xn = lam * xn + (1 - lam) * xn[perm]
        with torch.autocast(device.type, dtype=p.autocast_dtype or torch.float32, enabled=p.autocast_dtype is not None), \
                (BF16Rounding() if tcfg.amp == "bf16-round" else contextlib.nullcontext()):
            out = p.net(xn)
        logits, dom = (out[0].float(), out[1].float()) if isinstance(out, tuple) else (out.float(), None)
        loss = F.cross_entropy(logits, y, weight=p.weight, label_smoothing=tcfg.label_smoothing)
        if perm is not None:
            loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y[perm], weight=p.weight, label_smoothing=tcfg.label_smoothing)
        if dom is not None:
            d = batch[2].to(device, non_blocking=True)
            adv_loss = F.cross_entropy(dom, d) if perm is None else \
                lam * F.cross_entropy(dom, d) + (1 - lam) * F.cross_entropy(dom, d[perm])
            adv += torch.stack([adv_loss.detach().double() * x.shape[0], (dom.detach().argmax(1) == d).double().sum()])
        step(p, loss if dom is None else loss + adv_loss, tcfg)
        total += loss.detach().double() * x.shape[0]  # the emotion loss alone, with or without an adversary
        count += x.shape[0]
        right = (logits.detach().argmax(1) == y).double()
        hits[0].index_add_(0, y, right)
        hits[1].index_add_(0, y, torch.ones_like(right))
    sums = distributed.all_reduce_sum(torch.cat([total.reshape(1).cpu(), torch.tensor([float(count)], dtype=torch.float64),
                                                 hits.cpu().reshape(-1), adv.cpu()]), device)
    seen = sums[2 + n_classes:2 + 2 * n_classes]
    recall = [float(r / s) if s > 0 else float("nan") for r, s in zip(sums[2:2 + n_classes], seen)]
    present = [r for r, s in zip(recall, seen) if s > 0]
    n = max(1.0, float(sums[1]))
    out = {"train_loss": float(sums[0] / n), "train_ua": float(np.mean(present)) if present else float("nan"),
           "train_recall": recall}
    if p.adversary is not None:
        out.update(adv_loss=float(sums[-2] / n), adv_acc=float(sums[-1] / n), adv_coeff=float(p.logits.reversal))
    return out


def step(p: Parts, loss: torch.Tensor, tcfg: TrainConfig) -> None:
    """Backward, clip, optimiser step (with loss scaling for fp16) and a per-batch schedule step."""
    p.opt.zero_grad(set_to_none=True)
    if p.scaler is not None:
        p.scaler.scale(loss).backward()
        p.scaler.unscale_(p.opt)
    else:
        loss.backward()
    if tcfg.grad_clip > 0:  # the network's own norm: an adversary's gradients do not shrink the network's steps
        torch.nn.utils.clip_grad_norm_(p.model.parameters(), tcfg.grad_clip)
        if p.adversary is not None:
            torch.nn.utils.clip_grad_norm_(p.adversary.parameters(), tcfg.grad_clip)
    if p.scaler is not None:
        p.scaler.step(p.opt)
        p.scaler.update()
    else:
        p.opt.step()
    if tcfg.schedule != "plateau":
        p.sched.step()  # type: ignore[attr-defined]


def precise_bn(p: Parts, n_batches: int, ctx: distributed.DistContext, model: Optional[EmoAlexNet] = None) -> None:
    """Re-estimate the BatchNorm statistics of ``model`` (default: the one training) on ``n_batches`` of this epoch's crops.

    The crops are the first of the epoch in the sampler's order. Every process
    then holds the average of all processes' statistics, so all ranks
    validate the same model and make the same decisions.
    """
    model = p.model if model is None else model
    if n_batches <= 0 or not batchnorm_layers(model):
        return
    bs = int(p.loader.batch_size or 1)
    order = list(iter(p.sampler))[: n_batches * bs]  # type: ignore[call-overload]
    recalibrate_batchnorm(model, (torch.stack([p.ds[i][0] for i in order[s:s + bs]]).to(ctx.device)
                                  for s in range(0, len(order), bs)))
    if ctx.world_size > 1:
        for bn in batchnorm_layers(model):
            for buf in (bn.running_mean, bn.running_var):
                if buf is not None:
                    buf.copy_((distributed.all_reduce_sum(buf.detach().cpu(), ctx.device) / ctx.world_size)
                              .reshape(buf.shape).to(buf))
