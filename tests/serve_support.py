"""Helpers shared by the server tests: a tiny seeded model, WAV bytes, a real `emospec serve` process."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch

from conftest import SR
from emospec.serve.process import serve_subprocess

LABELS = ["neutral", "happy", "angry", "sad"]


def make_model(path: Path, seed: int = 0) -> Path:
    """Save a seeded, untrained 4-class EmoAlexNet of the default recipe as ``path`` (the tests are about the
    server, not accuracy)."""
    from emospec.checkpoint import save_model
    from emospec.config import FeatureConfig
    from emospec.model import EmoAlexNet

    torch.manual_seed(seed)
    save_model(path, EmoAlexNet(4), FeatureConfig(), LABELS, meta={"note": "serve test model", "seed": seed})
    return path


def wav_bytes(x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    """``(samples,)`` float -> the bytes of a WAV file."""
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@contextlib.contextmanager
def serve_process(model: Path, *args: str) -> Iterator[str]:
    """A real ``emospec serve`` process on a free loopback port; yields its base URL."""
    with serve_subprocess(model, *args) as server:
        yield server.url
