"""Helpers shared by the server tests: a tiny seeded model, WAV bytes, a real `emospec serve` process."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import soundfile as sf
import torch

from conftest import REPO, SR

LABELS = ["neutral", "happy", "angry", "sad"]


def make_model(path: Path, seed: int = 0) -> Path:
    """Save a seeded, untrained 4-class EmoAlexNet as ``path`` (the tests are about the server, not accuracy)."""
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


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_process(model: Path, *args: str, timeout_s: float = 120.0) -> Iterator[str]:
    """Run ``python -m emospec serve --model MODEL`` on a free loopback port; yield its base URL."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "emospec", "-q", "serve", "--model", str(model), "--host",
                             "127.0.0.1", "--port", str(port), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"emospec serve exited with {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"emospec serve did not answer on {url} within {timeout_s} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
