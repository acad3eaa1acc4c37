"""Grad-CAM (Selvaraju et al. 2017): where in time × mel band the model found its evidence.

For a clip's features ``(3, n_mels, frames)`` and a class c, take the
activations A ``(256, h, w)`` of the last conv block (``features.11``, the
ReLU after the last conv ``features.10``) and the gradient of the class logit
y_c with respect to them; each channel's weight is its gradient averaged over
``h × w``, and the map is ``ReLU(Σ_k w_k A_k)``. It is upsampled (bilinear) to
the network's input (after the padding to at least 63 × 63), cropped back to
``(n_mels, frames)`` and scaled to [0, 1] by its maximum.

>>> exp = explain("clip.wav", load("runs/demo/speaker"))     # doctest: +SKIP
>>> exp.label, exp.evidence_span()                           # doctest: +SKIP
('angry', (0.84, 1.62))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError
from .model import EmoAlexNet

__all__ = ["GradCam", "grad_cam", "explain", "evidence_span", "save_overlay", "DEFAULT_LAYER"]

DEFAULT_LAYER = "features.11"
"""The ReLU after the last convolution (``features.10``)."""


@dataclass(frozen=True)
class GradCam:
    """A Grad-CAM result for one clip.

    ``heatmap`` ``(n_mels, frames)`` float32 in [0, 1] (all zeros when no
    activation supports the class); ``logmel`` ``(n_mels, frames)`` float32 dB,
    the static channel; ``probs`` class -> probability; ``label`` the
    explained class, ``predicted`` the model's top class; ``hop_ms`` the frame
    hop; ``start_s`` the time in the clip of the first frame (after the leading
    silence that ``FeatureConfig.trim_db`` trims; 0 without it).
    """

    heatmap: np.ndarray
    logmel: np.ndarray
    label: str
    predicted: str
    probs: Dict[str, float]
    hop_ms: float
    layer: str = DEFAULT_LAYER
    source: str = ""
    start_s: float = 0.0

    def evidence_span(self, mass: float = 0.5) -> Tuple[float, float]:
        """Shortest time span (s from the clip's start) holding ``mass`` of the heatmap's time profile."""
        a, b = evidence_span(self.heatmap.sum(0), mass)
        return self.start_s + a * self.hop_ms / 1000.0, self.start_s + b * self.hop_ms / 1000.0

    def peak_band(self) -> int:
        """The mel band with the most relevance."""
        return int(np.argmax(self.heatmap.sum(1)))


def evidence_span(profile: np.ndarray, mass: float = 0.5) -> Tuple[int, int]:
    """Shortest index range ``[start, stop)`` whose sum is at least ``mass`` of ``profile``'s total.

    ``profile`` is a 1-D non-negative array (e.g. relevance per frame).
    Returns ``(0, len)`` when the total is 0.
    """
    p = np.clip(np.asarray(profile, dtype=np.float64), 0, None)
    total = p.sum()
    if total <= 0:
        return 0, p.size
    need = mass * total
    csum = np.concatenate([[0.0], np.cumsum(p)])
    best = (0, p.size)
    j = 0
    for i in range(p.size):
        while j < p.size and csum[j] - csum[i] < need - 1e-12:
            j += 1
        if csum[j] - csum[i] < need - 1e-12:
            break
        if j - i < best[1] - best[0]:
            best = (i, j)
    return best


def grad_cam(model: EmoAlexNet, feats: torch.Tensor, *, target: Optional[int] = None,
             layer: str = DEFAULT_LAYER) -> Tuple[np.ndarray, int, np.ndarray]:
    """Grad-CAM of ``model`` for one clip.

    Parameters
    ----------
    feats
        ``(3, n_mels, frames)`` float32 dB features.
    target
        Class index to explain; the predicted class when ``None``.
    layer
        Module name whose output is explained (default the last conv's ReLU).

    Returns
    -------
    heatmap : np.ndarray
        ``(n_mels, frames)`` float32 in [0, 1].
    target : int
        The explained class index.
    probs : np.ndarray
        ``(n_classes,)`` float32 class probabilities (:meth:`~emospec.model.EmoAlexNet.probabilities`, calibrated).
    """
    modules = dict(model.named_modules())
    if layer not in modules or not layer.startswith("features."):
        raise ConfigError(f"Grad-CAM layer {layer!r} is not in the conv stack (e.g. {DEFAULT_LAYER})")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n_mels, frames = int(feats.shape[-2]), int(feats.shape[-1])
    store: Dict[str, torch.Tensor] = {}
    hook = modules[layer].register_forward_hook(lambda _m, _i, out: store.__setitem__("act", out))
    try:
        with torch.enable_grad():
            x = model.normalize(feats[None].to(device=device, dtype=torch.float32))
            logits = model.forward_head(model.features(x))
            k = int(logits[0].argmax()) if target is None else int(target)
            if not 0 <= k < logits.shape[1]:
                raise ConfigError(f"Grad-CAM target {k} is not a class index (0..{logits.shape[1] - 1})")
            act = store["act"]
            grad = torch.autograd.grad(logits[0, k], act)[0]
    finally:
        hook.remove()
        model.train(was_training)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0, :n_mels, :frames]
    peak = float(cam.max())
    heat = (cam / peak if peak > 0 else torch.zeros_like(cam)).cpu().numpy().astype(np.float32)
    probs = model.probabilities(logits.detach())[0].cpu().numpy().astype(np.float32)
    return heat, k, probs


def explain(source, recognizer, *, target: Optional[str] = None, layer: str = DEFAULT_LAYER) -> GradCam:
    """Grad-CAM of a :class:`~emospec.predict.Recognizer` on a clip (path, bytes or file object).

    ``target`` is a class name; the predicted class when ``None``.
    """
    from .audio import describe_source
    from .features import extract, sound_frames

    labels = list(recognizer.labels)
    if target is not None and target not in labels:
        raise ConfigError(f"--class {target!r}: the model knows {', '.join(labels)}")
    wave = recognizer.waveform(source)
    feats = extract(torch.from_numpy(wave), recognizer.feature_config)
    from .norm import model_input

    heat, k, probs = grad_cam(recognizer.model, model_input(recognizer.model, feats[None])[0],
                              target=None if target is None else labels.index(target), layer=layer)
    return GradCam(heat, feats[0].cpu().numpy(), labels[k], labels[int(np.argmax(probs))],
                   {c: float(p) for c, p in zip(labels, probs)}, recognizer.feature_config.hop_ms, layer,
                   describe_source(source), sound_frames(wave, recognizer.feature_config)[0] * recognizer.feature_config.hop_ms / 1000.0)


def save_overlay(exp: GradCam, path: str | Path, *, fmax_hz: float = 8000.0) -> Path:
    """Write the Grad-CAM overlay PNG for ``exp`` (see :func:`emospec.plots.gradcam_overlay`)."""
    from .plots import gradcam_overlay

    name = Path(exp.source).name if exp.source else "clip"
    title = (f"Grad-CAM for '{exp.label}' ({exp.probs[exp.label]:.2f}); predicted '{exp.predicted}' "
             f"({exp.probs[exp.predicted]:.2f}): {name}")
    return gradcam_overlay(exp.logmel, exp.heatmap, path, hop_ms=exp.hop_ms, fmax_hz=fmax_hz, title=title, start_s=exp.start_s)
