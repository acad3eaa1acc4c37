"""The modified AlexNet of Ali et al. (2024) for 3D log-Mel input of any length.

Layout (torchvision's ``features`` indices and state-dict keys are kept, so
ImageNet AlexNet weights load into the conv stack; LRN has no weights and is
inserted under the extra name ``features.lrn``)::

    input (batch, 3, n_mels, frames) dB
    -> per-bin standardisation with saved training statistics (buffers)
    -> pad frames (and mel bands) up to 63, the stack's minimum
    features.0   Conv2d(3, 64, 11, stride 4, pad 2)   features.1 ReLU
    features.lrn LocalResponseNorm(5, α=1e-4, β=0.75, k=2)
    features.2   MaxPool2d(3, 2)
    features.3   Conv2d(64, 192, 5, pad 2)             features.4 ReLU   features.5 MaxPool2d(3, 2)
    features.6   Conv2d(192, 384, 3, pad 1)            features.7 ReLU
    features.8   Conv2d(384, 256, 3, pad 1)            features.9 ReLU
    features.10  Conv2d(256, 256, 3, pad 1)            features.11 ReLU  features.12 MaxPool2d(3, 2)
    avgpool      AdaptiveAvgPool2d((6, 6))             -> (batch, 9216)
                 (or, with ``ModelConfig.pool="stats"``, each channel's and row's mean and
                 std over time -> (batch, 2 · 256 · rows): :func:`stats_pool`)
    classifier.0 Dropout   classifier.1 Linear(9216, 256) = FC6, the embedding   classifier.2 ReLU
    classifier.3 Dropout   classifier.4 Linear(256, n_classes) = FC8  (FC7 removed)

That is the paper's stack (``RECIPES["paper"]``, ``batch_norm=False``, ``width=1``); ``ModelConfig.width``
scales every conv's channels (:func:`conv_channels`; 0.5: 32, 96, 192, 128, 128, about a quarter of the FLOPs). With
``ModelConfig.batch_norm`` (the default) a BatchNorm2d ``features.bnN``
follows each conv ``features.N``; the conv keys stay the same.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from typing import Dict, Iterable, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .errors import CheckpointError

__all__ = ["EmoAlexNet", "ChannelLRN", "MIN_SIZE", "conv_channels", "load_imagenet_weights", "recalibrate_batchnorm", "batchnorm_layers",
           "final_rows", "stats_pool"]

log = logging.getLogger(__name__)

MIN_SIZE = 63
"""Smallest input height/width (mel bands, frames) the AlexNet stack accepts."""


def _window_sum(t: torch.Tensor, n: int, front: int) -> torch.Tensor:
    """``out[:, c] = Σ t[:, c - front + i]`` for ``i < n`` over dim 1, zero beyond the edges; same shape as ``t``."""
    c = t.shape[1]
    padded = F.pad(t, (0, 0, 0, 0, front, n - 1 - front))
    out = padded[:, 0:c].clone()
    for i in range(1, n):
        out.add_(padded[:, i : i + c])
    return out


class _LRNFunction(torch.autograd.Function):
    """Forward and backward of :class:`ChannelLRN`, in float32, with the few passes over memory they need.

    ``y_c = x_c r_c`` with ``r_c = d_c^{-β}``, ``d_c = k + α/n Σ_{j ∈ w(c)} x_j²``, so
    ``∂L/∂x_j = g_j r_j − (2αβ/n) x_j Σ_{c : j ∈ w(c)} g_c x_c r_c / d_c``: the second sum runs over the
    mirrored window (its front and back padding swapped, which matters when ``n`` is even).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:  # type: ignore[override]
        xf = x.float()  # half precision would overflow in the sum of squares of large activations
        d = _window_sum(xf * xf, n, n // 2).mul_(alpha / n).add_(k)
        if beta == 0.75:
            r = d.rsqrt()
            r.mul_(r.sqrt())
        else:
            r = d.pow(-beta)
        ctx.save_for_backward(xf, d, r)
        ctx.n, ctx.coef = n, 2.0 * alpha * beta / n
        return (xf * r).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        xf, d, r = ctx.saved_tensors
        gr = g.float() * r
        s = _window_sum(gr * xf / d, ctx.n, (ctx.n - 1) // 2)
        return gr.sub_(s.mul_(xf).mul_(ctx.coef)).to(g.dtype), None, None, None, None


class ChannelLRN(nn.LocalResponseNorm):
    """:class:`torch.nn.LocalResponseNorm` over channels, with a hand-written backward.

    ``y = x / (k + α/n · Σ_{c' ∈ window(c)} x_{c'}²)^β`` on ``(batch, channels, height, width)``,
    the window ``n`` channels wide, zero-padded at the edges: torch's definition. torch computes the
    window sum with ``avg_pool3d`` and leaves the backward to autograd; on a 2-core CPU that was a fifth
    of a training step. Here the window is ``n`` shifted adds and the backward one formula
    (:class:`_LRNFunction`): forward + backward of a batch of 32 first-conv outputs took 90 ms with
    torch's, 40 ms with shifted adds under autograd, 15 ms with the formula (one thread). Values and
    gradients match torch's to float32 rounding (``tests/test_model.py``); an ONNX export traces
    torch's own function.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or torch.onnx.is_in_onnx_export():
            return super().forward(x)
        return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)


def conv_channels(cfg: ModelConfig) -> Tuple[int, int, int, int, int]:
    """Output channels of conv1..conv5: AlexNet's (64, 192, 384, 256, 256) times ``cfg.width``, rounded, at least 1."""
    c1, c2, c3, c4, c5 = (max(1, int(round(c * cfg.width))) for c in (64, 192, 384, 256, 256))
    return c1, c2, c3, c4, c5


def _features(cfg: ModelConfig) -> nn.Sequential:
    c1, c2, c3, c4, c5 = conv_channels(cfg)
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    layers["0"] = nn.Conv2d(cfg.in_channels, c1, kernel_size=11, stride=cfg.first_stride, padding=2)
    if cfg.batch_norm:
        layers["bn0"] = nn.BatchNorm2d(c1)
    layers["1"] = nn.ReLU(inplace=True)
    if cfg.lrn:
        layers["lrn"] = ChannelLRN(size=5, alpha=1e-4, beta=0.75, k=2.0)
    layers["2"] = nn.MaxPool2d(kernel_size=3, stride=2)
    specs = [("3", c1, c2, 5, 2), ("6", c2, c3, 3, 1), ("8", c3, c4, 3, 1), ("10", c4, c5, 3, 1)]
    for name, i, o, k, p in specs:
        idx = int(name)
        layers[name] = nn.Conv2d(i, o, kernel_size=k, padding=p)
        if cfg.batch_norm:
            layers[f"bn{idx}"] = nn.BatchNorm2d(o)
        layers[str(idx + 1)] = nn.ReLU(inplace=True)
        if idx in (3, 10):
            layers[str(idx + 2)] = nn.MaxPool2d(kernel_size=3, stride=2)
    return nn.Sequential(layers)


def final_rows(cfg: ModelConfig) -> int:
    """Mel-band rows left after the conv stack for ``cfg.n_mels`` bands (1 at 64 bands, 3 at 128).

    The input is padded to at least :data:`MIN_SIZE` rows; conv1 (11, stride
    ``first_stride``, pad 2) and the three 3/2 max-pools shrink it, the other
    convs keep it.
    """
    n = (max(cfg.n_mels, MIN_SIZE) + 4 - 11) // cfg.first_stride + 1
    for _ in range(3):
        n = (n - 3) // 2 + 1
    return n


def stats_pool(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Mean and standard deviation over time: ``(batch, c, rows, time)`` -> ``(batch, 2 · c · rows)``.

    ``lengths`` ``(batch,)`` int64 limits each clip to its first positions
    (positions past them are ignored); None uses all. The std is
    ``sqrt(var + 1e-6)`` (population variance), finite and differentiable at
    a constant map. Means come first, then stds, each flattened as
    ``(c, rows)``. Computed in float32 whatever ``x``'s dtype (under half
    precision autocast the variance of large activations would lose its digits).
    """
    x = x.float()
    if lengths is None:
        mean = x.mean(-1)
        var = (x - mean[..., None]).pow(2).mean(-1)
    else:
        keep = (torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)[:, None, None, :]
        n = lengths.clamp(min=1).to(x.dtype)[:, None, None]
        mean = (x * keep).sum(-1) / n
        var = ((x - mean[..., None]).pow(2) * keep).sum(-1) / n
    return torch.cat([mean.flatten(1), (var + 1e-6).sqrt().flatten(1)], 1)


class EmoAlexNet(nn.Module):
    """Modified AlexNet: 5 convs, LRN after conv1, FC7 removed, 256-d embedding.

    Parameters
    ----------
    n_classes
        Number of emotion classes (FC8 outputs).
    embed_dim
        Size of the FC6 embedding (256 in the paper).
    config
        A full :class:`~emospec.config.ModelConfig`; overrides the two above.
        Without it the model is the default ``ModelConfig`` (the default
        recipe's: BatchNorm, 64 mel bands, per-speaker input standardisation).

    Input is ``(batch, 3, n_mels, frames)`` float32 dB features; any number of
    frames works (fewer than 63 are padded with the normalised mean, zeros).
    """

    # Buffers registered in __init__ (declared here so type checkers see Tensors, not Tensor | Module).
    input_mean: torch.Tensor  # (channels, n_mels, 1) float32 dB
    input_std: torch.Tensor  # (channels, n_mels, 1) float32 dB
    temperature: torch.Tensor  # () float32: logits / temperature give calibrated probabilities

    def __init__(self, n_classes: int = 4, embed_dim: int = 256, *, config: ModelConfig | None = None):
        super().__init__()
        cfg = config if config is not None else ModelConfig(n_classes=n_classes, embed_dim=embed_dim)
        self.config = cfg
        self.features = _features(cfg)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # pool="grid" only
        c5 = conv_channels(cfg)[-1]
        head_in = c5 * 6 * 6 if cfg.pool == "grid" else 2 * c5 * final_rows(cfg)
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("0", nn.Dropout(p=cfg.dropout)),
                    ("1", nn.Linear(head_in, cfg.embed_dim)),
                    ("2", nn.ReLU(inplace=True)),
                    ("3", nn.Dropout(p=cfg.dropout)),
                    ("4", nn.Linear(cfg.embed_dim, cfg.n_classes)),
                ]
            )
        )
        # Per-bin standardisation, shape (channels, n_mels, 1); identity until set.
        self.register_buffer("input_mean", torch.zeros(cfg.in_channels, cfg.n_mels, 1))
        self.register_buffer("input_std", torch.ones(cfg.in_channels, cfg.n_mels, 1))
        # Temperature scaling (emospec.calibration): 1 until emospec.train.fit fits it on validation speakers.
        self.register_buffer("temperature", torch.ones(()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # Models and checkpoints written before temperature scaling have no temperature: theirs is 1.
        state_dict.setdefault(prefix + "temperature", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------- normalisation
    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store training statistics ``(channels, n_mels)`` or ``(channels, n_mels, 1)`` (dB)."""
        shape = self.input_mean.shape
        self.input_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(shape))
        self.input_std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(shape).clamp(min=1e-5))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, n_mels, frames)`` dB -> standardised, padded to >= 63 × 63."""
        x = (x - self.input_mean) / self.input_std
        pad_t = max(0, MIN_SIZE - x.shape[-1])
        pad_f = max(0, MIN_SIZE - x.shape[-2])
        if pad_t or pad_f:
            x = F.pad(x, (0, pad_t, 0, pad_f))
        return x

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` -> class probabilities ``softmax(logits / temperature)``, same shape.

        Every argmax is the logits'; the temperature only calibrates (:mod:`emospec.calibration`).
        """
        return torch.softmax(logits / self.temperature.to(logits.dtype), dim=-1)

    # ----------------------------------------------------------------- forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, n_mels, frames)`` dB -> conv maps ``(batch, c5, h, w)`` (c5 = 256 at ``width`` 1)."""
        return self.features(self.normalize(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Conv maps -> embedding ``(batch, embed_dim)`` if ``pre_logits`` else logits ``(batch, n_classes)``."""
        x = stats_pool(x) if self.config.pool == "stats" else torch.flatten(self.avgpool(x), 1)
        x = self.classifier[2](self.classifier[1](self.classifier[0](x)))
        return x if pre_logits else self.classify(x)

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        """Embedding ``(batch, embed_dim)`` -> logits ``(batch, n_classes)`` (dropout, FC8)."""
        return self.classifier[4](self.classifier[3](emb))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, n_mels, frames)`` dB -> ``(batch, embed_dim)`` FC6 embedding (post-ReLU)."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, n_mels, frames)`` dB -> logits ``(batch, n_classes)``."""
        return self.forward_head(self.forward_features(x))


def load_imagenet_weights(model: EmoAlexNet, path: str | os.PathLike) -> Dict[str, List[str]]:
    """Fill ``model.features`` from a local torchvision AlexNet state dict (``.pth``).

    Only ``features.*`` tensors whose shapes match are copied; the classifier
    (a different head) is never loaded. Nothing is downloaded.

    Returns
    -------
    dict
        ``{"loaded": [...], "skipped": [...]}`` key lists (also logged).

    Raises
    ------
    CheckpointError
        If the file cannot be read or holds no matching ``features.*`` weights.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise CheckpointError(f"{path}: cannot read ImageNet weights ({type(e).__name__}: {e})") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    own = model.state_dict()
    loaded, skipped = [], []
    update = {}
    for key, value in state.items():
        if key.startswith("features.") and key in own and tuple(own[key].shape) == tuple(value.shape):
            update[key] = value
            loaded.append(key)
        else:
            skipped.append(key)
    if not loaded:
        raise CheckpointError(f"{path}: no features.* tensors match the AlexNet conv stack")
    model.load_state_dict(update, strict=False)
    log.info("%s: loaded %d tensors into features, skipped %d: %s", path, len(loaded), len(skipped), skipped)
    return {"loaded": loaded, "skipped": skipped}


# --------------------------------------------------------------------------- inference helper
def batchnorm_layers(model: nn.Module) -> List[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` (none in the paper's configuration)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batchnorm(model: EmoAlexNet, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every BatchNorm layer's statistics from ``batches`` in float32 ("precise BN").

    ``batches`` are ``(batch, 3, n_mels, frames)`` dB crops as the model
    trains on them; each is standardised (:meth:`EmoAlexNet.normalize`) and
    run through the conv stack in training mode with cumulative averaging
    (``torch.optim.swa_utils.update_bn``), so the running statistics become
    the plain mean and variance over all of them, taken with the weights as
    they are now. Returns the number of crops seen (0 leaves the model as it was).
    """
    it = (x for x in batches if len(x))
    first = next(it, None)
    if first is None or not batchnorm_layers(model):
        return 0
    seen = [0]

    def standardised():
        for x in itertools.chain([first], it):
            seen[0] += len(x)
            yield model.normalize(x.float())

    was_training = model.training
    with torch.no_grad():
        torch.optim.swa_utils.update_bn(standardised(), model.features)
    model.train(was_training)
    return seen[0]


@torch.no_grad()
def infer(model: EmoAlexNet, feats: List[torch.Tensor], *, device: str | torch.device = "cpu",
          batch_size: int = 16) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over full-length clips of different lengths.

    Clips of equal frame count share a batch; others run alone, so padding
    never changes a clip's result.

    Parameters
    ----------
    feats
        List of ``(3, n_mels, frames_i)`` float32 dB tensors.

    Returns
    -------
    logits : torch.Tensor
        ``(n, n_classes)`` float32, in input order, on CPU.
    embeddings : torch.Tensor
        ``(n, embed_dim)`` float32, in input order, on CPU.
    """
    was_training = model.training
    model.eval()
    n = len(feats)
    logits = torch.zeros(n, model.config.n_classes)
    embs = torch.zeros(n, model.config.embed_dim)
    by_len: Dict[int, List[int]] = {}
    for i, f in enumerate(feats):
        by_len.setdefault(int(f.shape[-1]), []).append(i)
    for idxs in by_len.values():
        for s in range(0, len(idxs), batch_size):
            chunk = idxs[s : s + batch_size]
            x = torch.stack([feats[i] for i in chunk]).to(device)
            e = model.forward_head(model.forward_features(x), pre_logits=True)
            out = model.classifier[4](model.classifier[3](e))
            logits[chunk] = out.float().cpu()
            embs[chunk] = e.float().cpu()
    model.train(was_training)
    return logits, embs
