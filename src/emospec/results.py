"""What a :class:`~emospec.predict.Recognizer` returns: one clip's :class:`Prediction`, a long recording's
:class:`Timeline`, and the silence rule both follow (silence is not an emotion).

Pure data and two pure functions of a waveform; :mod:`emospec.predict` computes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["Prediction", "Timeline", "SILENCE_DBFS", "SILENCE_FRAME_S", "ENVELOPE_S", "level_dbfs", "envelope"]

SILENCE_DBFS = -60.0
"""Clips whose loudest :data:`SILENCE_FRAME_S` has an RMS level below this (dB full scale) are flagged ``silent``
and get no emotion."""
SILENCE_FRAME_S = 0.05
"""The window (seconds) whose loudest RMS level decides silence: a word, not the clip's average with its pauses."""
ENVELOPE_S = 0.02
"""Resolution of :attr:`Timeline.envelope_min` / ``envelope_max`` in seconds."""



@dataclass(frozen=True)
class Prediction:
    """One clip's result.

    ``scores`` maps class -> probability (sums to 1); ``embedding`` is the
    256-d FC6 embedding; ``duration_s`` the clip length in seconds; ``silent``
    is true when even the clip's loudest 50 ms (RMS, DC removed) is below ``SILENCE_DBFS``.
    Silence is not an emotion: a silent clip has ``label=None`` and empty
    ``scores`` (so ``top()`` and ``to_dict()["predictions"]`` are empty too);
    its ``embedding`` is still given.
    """

    label: Optional[str]
    scores: Dict[str, float]
    embedding: List[float] = field(repr=False)
    duration_s: float
    silent: bool = False
    source: str = ""

    def top(self, k: Optional[int] = None) -> List[Tuple[str, float]]:
        """The ``k`` best ``(label, probability)`` pairs, best first (all when ``k`` is None)."""
        ranked = sorted(self.scores.items(), key=lambda kv: -kv[1])
        return ranked if k is None else ranked[: max(0, int(k))]

    def to_dict(self, top_k: Optional[int] = None, *, embedding: bool = True) -> Dict:
        """JSON-able dict; ``"predictions"`` is the Hugging Face form ``[{"label", "score"}]``, best first.

        A silent clip gives ``"label": None`` (JSON ``null``), ``"scores": {}`` and ``"predictions": []``.
        """
        out: Dict[str, Any] = {
            "label": self.label,
            "scores": dict(self.scores),
            "predictions": [{"label": k, "score": v} for k, v in self.top(top_k)],
            "duration_s": self.duration_s,
            "silent": self.silent,
            "source": self.source,
        }
        if embedding:
            out["embedding"] = list(self.embedding)
        return out


@dataclass(frozen=True)
class Timeline:
    """Per-window results over a long recording.

    ``starts_s`` ``(n_windows,)`` float64 window starts in seconds; ``scores``
    ``(n_windows, n_classes)`` float32 probabilities in ``labels`` order; each
    window is ``window_s`` long (the last may be shorter). ``envelope_t_s``,
    ``envelope_min``, ``envelope_max`` ``(n_points,)`` float32 give the
    waveform's min/max every ``ENVELOPE_S`` seconds (for plots). ``silent``
    ``(n_windows,)`` bool flags windows below ``SILENCE_DBFS``: silence is not
    an emotion, so they have no label and no scores in :meth:`to_dict` and a
    gap in the plot (``scores`` keeps the network's raw output for them).
    """

    labels: List[str]
    starts_s: np.ndarray
    scores: np.ndarray
    window_s: float
    hop_s: float
    duration_s: float
    envelope_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    envelope_min: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    envelope_max: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    silent: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def _is_silent(self, k: int) -> bool:
        return bool(self.silent[k]) if k < len(self.silent) else False

    def to_dict(self) -> Dict:
        """JSON-able windows; a silent window has ``"label": None``, ``"scores": {}`` and ``"silent": true``."""
        windows = []
        for k, (t, p) in enumerate(zip(self.starts_s, self.scores)):
            quiet = self._is_silent(k)
            windows.append({"start_s": float(t), "end_s": float(min(t + self.window_s, self.duration_s)), "silent": quiet,
                            "label": None if quiet else self.labels[int(np.argmax(p))],
                            "scores": {} if quiet else {c: float(v) for c, v in zip(self.labels, p)}})
        return {"labels": list(self.labels), "window_s": self.window_s, "hop_s": self.hop_s,
                "duration_s": self.duration_s, "windows": windows}

    def plot(self, path: str | os.PathLike, *, title: str = "") -> Path:
        """PNG: waveform envelope on top, stacked class probabilities over time below."""
        from .plots import timeline

        shown = np.where(np.asarray([self._is_silent(k) for k in range(len(self.starts_s))])[:, None], 0.0, self.scores)
        return timeline(self.starts_s, shown, self.labels, path, window_s=self.window_s,
                        envelope=(self.envelope_t_s, self.envelope_min, self.envelope_max),
                        duration_s=self.duration_s, title=title)


def level_dbfs(x: np.ndarray, sr: int) -> float:
    """Level in dB full scale of the loudest :data:`SILENCE_FRAME_S` of ``x`` ``(samples,)`` at ``sr`` Hz.

    RMS over each window of that length (sliding by one sample), the clip's DC
    offset removed first (a flat line is silence). The loudest window, not the
    whole clip: quiet speech between long pauses (a softly spoken sad
    sentence) is sound, even when its average level is below the threshold.
    """
    x = np.asarray(x, dtype=np.float64)
    if not x.size:
        return 20.0 * np.log10(1e-10)
    x = x - x.mean()
    n = min(x.size, max(1, int(round(SILENCE_FRAME_S * sr))))
    energy = np.concatenate([[0.0], np.cumsum(np.square(x))])
    rms = float(np.sqrt(max(0.0, float(np.max(energy[n:] - energy[:-n])) / n)))
    return 20.0 * np.log10(max(rms, 1e-10))


def envelope(x: np.ndarray, start_s: float, sr: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max of ``x`` ``(samples,)`` per ``ENVELOPE_S`` bin: (times_s, min, max), each ``(bins,)`` float32."""
    step = max(1, int(round(ENVELOPE_S * sr)))
    n = -(-x.size // step)
    padded = np.pad(x, (0, n * step - x.size), mode="edge").reshape(n, step)
    t = (start_s + np.arange(n) * step / sr).astype(np.float32)
    return t, padded.min(1).astype(np.float32), padded.max(1).astype(np.float32)
