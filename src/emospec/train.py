"""Training: :func:`fit` turns features and labels into a run directory.

One loop, per epoch: random fixed-length crops -> forward/backward -> clip ->
step -> validation UA on full-length clips -> keep the best -> checkpoint.
The same loop runs data-parallel under ``torchrun`` (DDP, one process per
device, rank 0 writes) and in mixed precision on CUDA (``TrainConfig.amp``).
The run directory holds::

    model.pt         kept model (TrainConfig.select; self-describing, see emospec.checkpoint), with its
                     temperature fitted on the validation clips (meta["calibration"], emospec.calibration)
    checkpoint.pt    last epoch: model, optimiser, scheduler, RNG, epoch, best, adversary (for --resume)
    config.json      feature, model and train configs
    labels.json      class names in output order
    norm_stats.json  per-bin mean/std (dB) from the training clips
    history.json     per-epoch training loss and UA / per-class recall (on the training crops),
                     validation loss and UA/WA (full clips), learning rate; swa_val_* for the average;
                     with TrainConfig.ema, val_* are the moving average's and raw_val_* the weights';
                     with TrainConfig.adversary, the domain classifier's adv_loss / adv_acc and adv_coeff
    convergence.json training-set recall per class of the best model (full clips), best
                     epoch, warnings when the budget looks too short (see :func:`convergence`)
    versions.json    python, torch, emospec, git commit ...

What one epoch does (crops, SpecAugment, mixup, the step, precise BatchNorm
statistics) is :mod:`emospec.epoch`; the device, autocast dtype and seeding
are :mod:`emospec.device`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed
from .calibration import calibration_summary, fit_temperature, fittable
from .checkpoint import load_model, load_state, save_model, save_state
from .config import FeatureConfig, ModelConfig, TrainConfig, to_dict
from .convergence import convergence, selection_key
from .epoch import Parts, build, precise_bn, train_one_epoch
from .errors import CheckpointError, ConfigError, DataError
from .files import save_json
from .metrics import unweighted_accuracy, weighted_accuracy
from .model import EmoAlexNet, infer
from .versions import environment

__all__ = ["FitResult", "fit", "convergence"]

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :func:`fit` produced: the best model, its epoch and the per-epoch history."""

    model: EmoAlexNet
    run_dir: Path
    best_epoch: int
    best_val_ua: float
    history: List[Dict] = field(default_factory=list)
    world_size: int = 1
    convergence: Dict = field(default_factory=dict)
    """:func:`convergence` of this run: training-set UA per class, best epoch, warnings."""
    calibration: Dict = field(default_factory=dict)
    """:func:`calibrate`'s record: the temperature and the validation clips' ECE / NLL before and after."""


def _validation_logits(model: EmoAlexNet, feats: Sequence[torch.Tensor], ctx: distributed.DistContext) -> torch.Tensor:
    """``(n, n_classes)`` float32 logits of full-length clips on CPU.

    With several processes each runs every ``world_size``-th clip and the
    rows are summed across processes (every other row is zero), so all ranks
    get the same logits and make the same early-stopping decisions.
    """
    if ctx.world_size == 1:
        return infer(model, list(feats), device=ctx.device)[0]
    n = len(feats)
    mine = list(range(ctx.rank, n, ctx.world_size))
    logits = torch.zeros(n, model.config.n_classes, dtype=torch.float64)
    if mine:
        logits[mine] = infer(model, [feats[i] for i in mine], device=ctx.device)[0].double()
    return distributed.all_reduce_sum(logits, device=ctx.device).reshape(n, -1).float()


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
    train_groups: Optional[Sequence] = None,
    train_versions: Optional[Sequence[Sequence[torch.Tensor]]] = None,
    train_speakers: Optional[Sequence] = None,
) -> FitResult:
    """Train an :class:`EmoAlexNet` and write the run directory.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this with the
    same data: the model is wrapped in DistributedDataParallel, each process
    trains on its share of every global batch (DistributedSampler), losses
    and validation logits are reduced across processes, and only rank 0
    writes files. See :mod:`emospec.distributed`.

    Parameters
    ----------
    train_feats, val_feats
        ``(3, n_mels, frames)`` float32 dB feature tensors. With
        ``model_config.norm`` other than ``"global"`` (the default model's is
        ``"speaker"``) they must already be standardised per group, as
        :func:`emospec.norm.normalize_for` does in
        :func:`emospec.experiment.run_split`: ``fit`` only records the mode,
        and inference standardises accordingly. Raw features go with
        ``norm="global"``.
    train_y, val_y
        Class indices into ``labels``.
    labels
        Class names in output order.
    run_dir
        Output folder (created). With ``resume=True`` training continues from
        its ``checkpoint.pt``.
    train_groups
        The corpus (any group key) of each training clip, for
        ``TrainConfig.balance="corpus"`` and ``adversary="corpus"``.
    train_speakers
        The speaker of each training clip, for ``TrainConfig.adversary="speaker"``.
    train_versions
        Optional altered versions of each training clip, standardised like
        ``train_feats`` (``train_versions[i]``: a list of ``(3, n_mels,
        frames)`` tensors; :func:`emospec.augment.augmented_features`).
        Each epoch draws every clip as itself or one of its versions
        (:class:`~emospec.data.dataset.CropDataset`); the input statistics and
        the convergence check use the originals only.

    Returns
    -------
    FitResult
        The best model (by validation UA) loaded, and the history.
    """
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
    world = distributed.world_size()
    if train_config.batch_size % world:
        raise ConfigError(f"TrainConfig.batch_size={train_config.batch_size} is not divisible by the {world} processes")
    ctx = distributed.init(train_config.device)
    try:
        return _fit(train_feats, train_y, val_feats, val_y, labels, Path(run_dir), ctx, feature_config=feature_config,
                    mcfg=mcfg, tcfg=train_config, resume=resume, progress=progress, meta=meta,
                    train_groups=train_groups, train_versions=train_versions, train_speakers=train_speakers)
    finally:
        distributed.cleanup(ctx)


SWA_BN_BATCHES = 10
"""Batches that re-estimate the averaged model's BatchNorm statistics when ``TrainConfig.precise_bn`` is 0."""


def _average(swa: torch.optim.swa_utils.AveragedModel, p: Parts, tcfg: TrainConfig, val_feats, val_y,
             ctx: distributed.DistContext, prefix: str = "swa_") -> Dict[str, float]:
    """Add this epoch's weights to the average (SWA's or the moving one), give it fresh BatchNorm statistics,
    validate it (``swa_val_*``; ``prefix=""`` for the moving average, whose figures are the run's ``val_*``)."""
    swa.update_parameters(p.model)
    avg: EmoAlexNet = swa.module  # type: ignore[assignment]
    precise_bn(p, tcfg.precise_bn or SWA_BN_BATCHES, ctx, avg)
    avg.eval()
    return {f"{prefix}{k}": v for k, v in _validate(avg, val_feats, val_y, ctx).items()}


def _moving_average(model: EmoAlexNet, decay: float) -> Optional[torch.optim.swa_utils.AveragedModel]:
    """``TrainConfig.ema``'s averaged copy of ``model`` (None when 0); its first update copies the weights."""
    if decay <= 0:
        return None
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay))


def _validate_epoch(p: Parts, tcfg: TrainConfig, ema, val_feats, val_y, ctx: distributed.DistContext) -> Dict[str, float]:
    """This epoch's validation figures (``val_*``) of the model the run chooses from: the training weights with
    precise BatchNorm statistics, or (``ema``) their moving average, the weights' own figures then as ``raw_val_*``."""
    precise_bn(p, tcfg.precise_bn, ctx)
    own = _validate(p.model, val_feats, val_y, ctx)
    if ema is None:
        return own
    return {**_average(ema, p, tcfg, val_feats, val_y, ctx, prefix=""), **{f"raw_{k}": v for k, v in own.items()}}


def _validate(model: EmoAlexNet, val_feats, val_y, ctx: distributed.DistContext) -> Dict[str, float]:
    """Validation loss, UA and WA on full-length clips (NaN without validation clips)."""
    if not len(val_feats):
        return {"val_loss": float("nan"), "val_ua": float("nan"), "val_wa": float("nan")}
    vlog = _validation_logits(model, val_feats, ctx)
    vpred = vlog.argmax(1).numpy()
    y = np.asarray(val_y)
    return {"val_loss": float(F.cross_entropy(vlog, torch.as_tensor(y))), "val_ua": unweighted_accuracy(y, vpred),
            "val_wa": weighted_accuracy(y, vpred)}


def _restore(p: Parts, ck: Dict, run_dir: Path, main: bool) -> Dict[str, torch.Tensor]:
    """Load a checkpoint's model, optimiser, schedule and RNG state into ``p``; return the best weights so far."""
    best_state: Dict[str, torch.Tensor] = {}
    if (run_dir / "model.pt").exists():  # before restoring the RNG: building a model draws from it
        best_state = load_model(run_dir / "model.pt").model.state_dict()
    p.model.load_state_dict(ck["model"])
    p.opt.load_state_dict(ck["optimizer"])
    p.sched.load_state_dict(ck["scheduler"])  # type: ignore[attr-defined]
    if p.scaler is not None and ck.get("scaler"):
        p.scaler.load_state_dict(ck["scaler"])
    if p.adversary is not None:
        p.adversary.load_state_dict(ck["adversary"])
    torch.set_rng_state(ck["rng_torch"])
    p.aug_gen.set_state(ck["rng_aug"])
    return best_state


def _fit(train_feats, train_y, val_feats, val_y, labels: List[str], run_dir: Path, ctx: distributed.DistContext, *,
         feature_config: FeatureConfig, mcfg: ModelConfig, tcfg: TrainConfig, resume: bool, progress: bool,
         meta: Optional[Dict], train_groups: Optional[Sequence] = None,
         train_versions: Optional[Sequence[Sequence[torch.Tensor]]] = None,
         train_speakers: Optional[Sequence] = None) -> FitResult:
    """The training loop of :func:`fit`, in the process described by ``ctx``: build -> resume -> epochs -> check."""
    from tqdm.auto import tqdm

    main = ctx.is_main
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    p = build(train_feats, train_y, len(labels), ctx, feature_config=feature_config, mcfg=mcfg, tcfg=tcfg,
               train_groups=train_groups, train_versions=train_versions, train_speakers=train_speakers)
    model = p.model
    cfg_dict = {"feature": to_dict(feature_config), "model": to_dict(mcfg), "train": to_dict(tcfg)}
    ckpt_path = run_dir / "checkpoint.pt"
    ck = None
    if resume:  # checked before anything is written: a refused resume leaves the run as it was
        if not ckpt_path.exists():
            raise CheckpointError(f"{ckpt_path}: nothing to resume (no checkpoint)")
        ck = load_state(ckpt_path)
        if ck.get("config") != cfg_dict:
            raise CheckpointError(f"{ckpt_path}: was written with another configuration; cannot resume")
    env = environment()
    if main:  # a run killed while saving left its temp file (tens of MB; the rename never happened): resumed or not,
        for tmp in run_dir.glob(".*.pt.*.tmp"):  # this run owns the folder now
            tmp.unlink(missing_ok=True)
        mean, std = model.input_mean[..., 0].cpu(), model.input_std[..., 0].cpu()
        save_json(run_dir / "config.json", cfg_dict)
        save_json(run_dir / "labels.json", labels)
        save_json(run_dir / "norm_stats.json", {"mean_db": mean.tolist(), "std_db": std.tolist(), "shape": "(3, n_mels)"})
        save_json(run_dir / "versions.json", env)
    autocast = "bf16-round" if tcfg.amp == "bf16-round" else str(p.autocast_dtype or "off")
    model_meta = {"config": cfg_dict, "versions": env, "autocast": autocast, **(meta or {})}
    if p.domains is not None:
        model_meta["adversary_domains"] = p.domains

    history: List[Dict] = []
    start_epoch, best_fit, best_ua, best_epoch, bad_epochs, kept_ua = 0, 0, -1.0, -1, 0, float("nan")
    best_state: Dict[str, torch.Tensor] = {}
    swa = torch.optim.swa_utils.AveragedModel(model) if tcfg.select == "swa" else None
    swa_from = int(tcfg.swa_start * tcfg.epochs)  # the first epoch (0-based) whose weights join the average
    ema = _moving_average(model, tcfg.ema)
    validated: EmoAlexNet = model if ema is None else ema.module  # type: ignore[assignment]  # what is chosen and kept
    if ck is not None:
        best_state = _restore(p, ck, run_dir, main)
        if swa is not None:
            swa.load_state_dict(ck["swa"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        start_epoch, best_ua, best_epoch, bad_epochs = ck["epoch"] + 1, ck["best_ua"], ck["best_epoch"], ck["bad_epochs"]
        best_fit = int(ck.get("best_fit", 1))
        kept_ua = ck.get("kept_ua", best_ua)
        history = list(ck["history"])
        log.info("resuming %s at epoch %d (best UA %.3f at epoch %d)", run_dir, start_epoch, best_ua, best_epoch)

    stop = bad_epochs >= tcfg.patience
    epochs = tqdm(range(start_epoch, tcfg.epochs), desc="train", unit="epoch", disable=not (progress and main),
                  leave=False, initial=start_epoch, total=tcfg.epochs)
    for epoch in epochs:
        if stop:
            break
        trained = train_one_epoch(p, tcfg, epoch, len(labels), ctx)
        rec = {"epoch": epoch, **trained, **_validate_epoch(p, tcfg, ema, val_feats, val_y, ctx),
               "lr": float(p.opt.param_groups[0]["lr"])}
        if swa is not None and epoch >= swa_from:
            rec.update(_average(swa, p, tcfg, val_feats, val_y, ctx))
        history.append(rec)
        val_ua = rec["val_ua"]
        if tcfg.schedule == "plateau" and len(val_feats):
            p.sched.step(val_ua)  # type: ignore[attr-defined]
        key = selection_key(rec, tcfg.select_min_train_ua)
        improved = key > (best_fit, best_ua) or not len(val_feats)
        (best_fit, best_ua), bad_epochs = (key, 0) if improved else ((best_fit, best_ua), bad_epochs + 1)
        stop = bad_epochs >= tcfg.patience
        if tcfg.select == "best" and improved:
            best_epoch, kept_ua = epoch, val_ua
            best_state = {k: v.detach().clone() for k, v in validated.state_dict().items()}
            if main:
                save_model(run_dir / "model.pt", validated, feature_config, labels,
                           {**model_meta, "best_epoch": epoch, "best_val_ua": val_ua, "ema": tcfg.ema})
        elif tcfg.select != "best" and (stop or epoch == tcfg.epochs - 1):  # the final model, written once
            kept, kept_meta = validated, {"best_epoch": epoch, "best_val_ua": val_ua, "select": tcfg.select, "ema": tcfg.ema}
            if swa is not None:
                if not int(swa.n_averaged):  # stopped before the averaging began: the average is this epoch
                    rec.update(_average(swa, p, tcfg, val_feats, val_y, ctx))
                kept = swa.module  # type: ignore[assignment]
                val_ua = rec["swa_val_ua"]
                kept_meta.update(best_val_ua=val_ua, swa_epochs=int(swa.n_averaged))
            best_epoch, kept_ua = epoch, val_ua
            best_state = {k: v.detach().clone() for k, v in kept.state_dict().items()}
            if main:
                save_model(run_dir / "model.pt", kept, feature_config, labels, {**model_meta, **kept_meta})
        if main:
            save_state(ckpt_path, {
                "config": cfg_dict, "model": model.state_dict(), "optimizer": p.opt.state_dict(),
                "scheduler": p.sched.state_dict(), "scaler": p.scaler.state_dict() if p.scaler is not None else None,  # type: ignore[attr-defined]
                "rng_torch": torch.get_rng_state(), "rng_aug": p.aug_gen.get_state(), "epoch": epoch,
                "best_ua": best_ua, "best_fit": best_fit,
                "best_epoch": best_epoch, "kept_ua": kept_ua, "bad_epochs": bad_epochs, "history": history,
                "swa": swa.state_dict() if swa is not None else None, "ema": ema.state_dict() if ema is not None else None,
                "adversary": p.adversary.state_dict() if p.adversary is not None else None,
            })
            save_json(run_dir / "history.json", history)
        epochs.set_postfix(loss=f"{rec['train_loss']:.3f}", train_ua=f"{rec['train_ua']:.3f}", val_ua=f"{val_ua:.3f}",
                           best=f"{best_ua:.3f}")
        log.info("epoch %d loss %.4f train UA %.3f val UA %.3f WA %.3f", epoch, rec["train_loss"], rec["train_ua"], val_ua, rec["val_wa"])
    epochs.close()
    distributed.barrier()  # rank 0 has written its files
    best = EmoAlexNet(config=mcfg)  # from memory: every rank holds the same weights, no shared disk needed
    best.load_state_dict(best_state or model.state_dict())
    best.eval().to(ctx.device)
    calib = calibrate(best, val_feats, val_y, ctx)
    if main and calib and (run_dir / "model.pt").exists():
        kept_file = load_model(run_dir / "model.pt")
        save_model(run_dir / "model.pt", best, feature_config, labels, {**kept_file.meta, "calibration": calib})
    recall_full, loss_full = _full_clip_fit(best, train_feats, train_y, len(labels), ctx, seed=tcfg.seed)
    conv = convergence(history, epochs=tcfg.epochs, patience=tcfg.patience, labels=labels, select=tcfg.select,
                       train_recall_full=recall_full, train_loss_full=loss_full, min_train_ua=tcfg.select_min_train_ua)
    if main:
        save_json(run_dir / "convergence.json", conv)
    for w in conv["warnings"]:
        log.warning("%s: %s", run_dir, w)
    return FitResult(model=best, run_dir=run_dir, best_epoch=best_epoch, best_val_ua=kept_ua, history=history,
                     world_size=ctx.world_size, convergence=conv, calibration=calib)


def calibrate(model: EmoAlexNet, val_feats, val_y, ctx: distributed.DistContext) -> Dict:
    """Fit ``model.temperature`` on the validation clips (full length, as the run chose its epoch on them).

    Returns ``{"temperature", "fitted", "n_clips", "before": calibration_summary, "after": ...}`` (``{}`` and
    temperature 1 without validation clips; ``fitted`` False, temperature 1, when every validation clip is
    recognised or none is: :func:`emospec.calibration.fittable`). Every process computes the same logits, so all
    ranks set the same temperature.
    """
    if not len(val_feats):
        return {}
    logits = _validation_logits(model, val_feats, ctx)
    y = np.asarray(val_y)
    t = fit_temperature(logits, y)
    model.temperature.fill_(t)
    return {"temperature": t, "fitted": fittable(logits, y), "n_clips": int(len(y)),
            "before": calibration_summary(torch.softmax(logits, 1).numpy(), y),
            "after": calibration_summary(model.probabilities(logits.to(model.temperature.device)).cpu().numpy(), y)}


TRAIN_CHECK_CLIPS = 240
"""How many full training clips (stratified, fixed by the seed) :func:`fit` re-scores with the best model."""


def _full_clip_fit(model: EmoAlexNet, feats, y, n_classes: int, ctx: distributed.DistContext, *,
                   seed: int) -> Tuple[List[float], float]:
    """Per-class recall and mean cross-entropy (nats, logits before temperature) of ``model`` on up to
    :data:`TRAIN_CHECK_CLIPS` full training clips, stratified by class and fixed by ``seed`` (eval mode)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    per = max(1, TRAIN_CHECK_CLIPS // n_classes)
    pick = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in range(n_classes)]))
    logits = _validation_logits(model, [feats[i] for i in pick], ctx)
    loss = float(torch.nn.functional.cross_entropy(logits.float(), torch.as_tensor(y[pick], dtype=torch.int64)))
    pred = logits.argmax(1).numpy()
    recall = [float(np.mean(pred[y[pick] == c] == c)) if np.any(y[pick] == c) else float("nan") for c in range(n_classes)]
    return recall, loss
