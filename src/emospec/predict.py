"""Using a trained model: :class:`Recognizer` and :func:`load`.

>>> rec = emospec.load("runs/demo/speaker")          # doctest: +SKIP
>>> rec.predict("clip.wav").label                       # doctest: +SKIP
'angry'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .audio import Source, describe_source, load as load_audio, resample, to_mono
from .checkpoint import ModelBundle, load_model
from .errors import AudioError, CheckpointError
from .features import extract

__all__ = ["Prediction", "Recognizer", "load"]

SILENCE_DBFS = -60.0
"""Clips whose RMS level is below this (dB full scale) are flagged ``silent``."""


@dataclass(frozen=True)
class Prediction:
    """One clip's result.

    ``scores`` maps class -> probability (sums to 1); ``embedding`` is the
    256-d FC6 embedding; ``duration_s`` the clip length in seconds; ``silent``
    is true when the clip's RMS level is below ``SILENCE_DBFS`` (the label is
    then unreliable).
    """

    label: str
    scores: Dict[str, float]
    embedding: List[float] = field(repr=False)
    duration_s: float
    silent: bool = False
    source: str = ""

    def to_dict(self) -> Dict:
        """JSON-able dict; ``"predictions"`` is the Hugging Face form ``[{"label", "score"}]``, best first."""
        ranked = sorted(self.scores.items(), key=lambda kv: -kv[1])
        return {
            "label": self.label,
            "scores": dict(self.scores),
            "predictions": [{"label": k, "score": v} for k, v in ranked],
            "duration_s": self.duration_s,
            "silent": self.silent,
            "source": self.source,
            "embedding": list(self.embedding),
        }


def _level_dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * np.log10(max(rms, 1e-10))


class Recognizer:
    """A loaded model plus its feature front end.

    Build with :func:`load` (or ``Recognizer(bundle)``). Thread-safe for
    inference (no state changes after construction).
    """

    def __init__(self, bundle: ModelBundle, device: str | torch.device = "cpu"):
        self.bundle = bundle
        self.device = torch.device(device)
        self.model = bundle.model.to(self.device).eval()
        self.labels = list(bundle.labels)
        self.feature_config = bundle.feature_config

    @property
    def sample_rate_hz(self) -> int:
        return self.feature_config.sample_rate_hz

    def waveform(self, x, sr: Optional[int] = None) -> np.ndarray:
        """Any input (path, file object, bytes, array/tensor + ``sr``) -> ``(samples,)`` float32 at the model rate."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if isinstance(x, np.ndarray):
            if sr is None:
                raise AudioError("<waveform>: pass sr= (sample rate in Hz) with a raw waveform")
            w = to_mono(x.T if x.ndim == 2 and x.shape[0] < x.shape[1] else x)
            if not np.all(np.isfinite(w)):
                raise AudioError("<waveform>: contains NaN or infinite samples")
            if w.size == 0:
                raise AudioError("<waveform>: empty (0 samples)")
            return resample(w, int(sr), self.sample_rate_hz)
        return load_audio(x, sr=self.sample_rate_hz)

    @torch.no_grad()
    def _run(self, wave: np.ndarray):
        feats = extract(torch.from_numpy(wave).to(self.device), self.feature_config)
        e = self.model.forward_head(self.model.forward_features(feats[None]), pre_logits=True)
        logits = self.model.classifier[4](self.model.classifier[3](e))
        return torch.softmax(logits, 1)[0].cpu().numpy(), e[0].cpu().numpy()

    def predict(self, x, sr: Optional[int] = None) -> Prediction:
        """Classify one clip (path, file object, bytes, or waveform with ``sr``)."""
        wave = self.waveform(x, sr)
        probs, emb = self._run(wave)
        k = int(np.argmax(probs))
        return Prediction(
            label=self.labels[k],
            scores={c: float(p) for c, p in zip(self.labels, probs)},
            embedding=[float(v) for v in emb],
            duration_s=wave.size / self.sample_rate_hz,
            silent=_level_dbfs(wave) < SILENCE_DBFS,
            source=describe_source(x) if not isinstance(x, (np.ndarray, torch.Tensor)) else "<waveform>",
        )

    def embed(self, x, sr: Optional[int] = None) -> np.ndarray:
        """The 256-d embedding alone, ``(embed_dim,)`` float32."""
        return self._run(self.waveform(x, sr))[1].astype(np.float32)

    def predict_batch(self, inputs: Sequence, batch_size: int = 16) -> List[Prediction]:
        """Classify many clips; raises on the first bad one (see the CLI for report-and-go-on)."""
        return [self.predict(x) for x in inputs]


def load(model: Optional[str | os.PathLike] = None, device: Optional[str] = None) -> Recognizer:
    """Load a model: a run directory or ``model.pt`` file.

    Raises
    ------
    CheckpointError
        If no model is given and none is bundled, or the file is unusable.
    """
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if model is None:
        from importlib import resources

        bundled = resources.files("emospec") / "assets" / "model.pt"
        if not bundled.is_file():
            raise CheckpointError("no model given and no bundled model in this install (emospec/assets/model.pt)")
        model = str(bundled)
    return Recognizer(load_model(model, device=dev), device=dev)
