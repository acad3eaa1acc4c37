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

__all__ = ["Prediction", "Timeline", "Recognizer", "load"]

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


@dataclass(frozen=True)
class Timeline:
    """Per-window results over a long recording.

    ``starts_s`` ``(n_windows,)`` window start times in seconds; ``scores``
    ``(n_windows, n_classes)`` probabilities in ``labels`` order; each window is
    ``window_s`` long (the last may be shorter).
    """

    labels: List[str]
    starts_s: np.ndarray
    scores: np.ndarray
    window_s: float
    hop_s: float
    duration_s: float

    def to_dict(self) -> Dict:
        return {
            "labels": list(self.labels),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "duration_s": self.duration_s,
            "windows": [
                {"start_s": float(t), "end_s": float(min(t + self.window_s, self.duration_s)),
                 "label": self.labels[int(np.argmax(p))], "scores": {c: float(v) for c, v in zip(self.labels, p)}}
                for t, p in zip(self.starts_s, self.scores)
            ],
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

    def timeline(self, x, window_s: float = 3.0, hop_s: float = 1.0, sr: Optional[int] = None) -> Timeline:
        """Slide a ``window_s`` window every ``hop_s`` seconds over a recording.

        A path is streamed from disk block by block (memory bounded by one
        window, whatever the file's length); arrays are windowed in memory.
        """
        if window_s <= 0 or hop_s <= 0:
            raise ValueError(f"window_s and hop_s must be > 0, got {window_s}, {hop_s}")
        starts, scores = [], []
        if isinstance(x, (np.ndarray, torch.Tensor)):
            wave = self.waveform(x, sr)
            step, win = int(round(hop_s * self.sample_rate_hz)), int(round(window_s * self.sample_rate_hz))
            blocks = ((i / self.sample_rate_hz, wave[i : i + win]) for i in range(0, max(1, wave.size - win + step), step))
            total = wave.size / self.sample_rate_hz
        else:
            from .audio import info, stream_blocks

            total = info(x).duration_s
            blocks = stream_blocks(x, self.sample_rate_hz, hop_s, overlap_s=max(0.0, window_s - hop_s))
        for start, block in blocks:
            if block.size == 0:
                continue
            probs, _ = self._run(block)
            starts.append(start)
            scores.append(probs)
            if start + window_s >= total:
                break
        return Timeline(self.labels, np.asarray(starts, dtype=np.float64),
                        np.asarray(scores, dtype=np.float32).reshape(-1, len(self.labels)), window_s, hop_s, total)

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
