"""Shared fixtures: tiny synthetic clips, the real corpora in ../shared/data, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMOSPEC_DATA", REPO.parent / "shared" / "data"))
SR = 16000

# The suite's own tests keep the load average up; a warning that other work is busy would vary from run to run (the
# warning's tests unset this: tests/test_device.py).
os.environ.setdefault("EMOSPEC_NO_LOAD_CHECK", "1")


def sine(freq_hz: float = 440.0, duration_s: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    """``(samples,)`` float32 sine."""
    t = np.arange(int(round(duration_s * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def noise(duration_s: float = 1.0, sr: int = SR, amp: float = 0.1, seed: int = 0) -> np.ndarray:
    """``(samples,)`` float32 seeded white noise."""
    return (amp * np.random.default_rng(seed).standard_normal(int(round(duration_s * sr)))).astype(np.float32)


@pytest.fixture
def sine_wav(tmp_path) -> Path:
    """A 1 s, 440 Hz, 16-bit 16 kHz WAV file."""
    p = tmp_path / "sine440.wav"
    sf.write(p, sine(), SR, subtype="PCM_16")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $EMOSPEC_DATA); tests needing real speech are skipped without it."""
    if not (SHARED_DATA / "ravdess").is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA} (set EMOSPEC_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ravdess_clips(shared_data) -> list:
    """A few real RAVDESS clips (16 kHz FLAC), one per four-class emotion, two actors."""
    out = []
    for actor in ("01", "02"):
        for emo in ("01", "03", "04", "05"):
            out.append(shared_data / "ravdess" / f"Actor_{actor}" / f"03-01-{emo}-01-01-01-{actor}.flac")
    return out


@pytest.fixture(scope="session")
def subsets(shared_data, tmp_path_factory) -> Path:
    """Symlinked corpora: RAVDESS actors 01-06 (statement 01, repetition 01: 7 clips each, 42)
    and EMOVO f1, m1 (neutral, joy, anger, sadness; sentences b1, b2: 16 clips)."""
    root = tmp_path_factory.mktemp("corpora")
    for actor in range(1, 7):
        d = root / "ravdess" / f"Actor_{actor:02d}"
        d.mkdir(parents=True)
        for p in (shared_data / "ravdess" / f"Actor_{actor:02d}").glob("*.flac"):
            _, _, emo, _, statement, rep, _ = p.stem.split("-")
            if emo in ("01", "03", "04", "05") and statement == "01" and rep == "01":
                (d / p.name).symlink_to(p)
    for spk in ("f1", "m1"):
        d = root / "emovo" / spk
        d.mkdir(parents=True)
        for emo in ("neu", "gio", "rab", "tri"):
            for sent in ("b1", "b2"):
                (d / f"{emo}-{spk}-{sent}.flac").symlink_to(shared_data / "emovo" / spk / f"{emo}-{spk}-{sent}.flac")
    return root


def run_cli(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None, timeout: float = 600,
            input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m emospec ARGS`` with this checkout's ``src`` first on the path."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("EMOSPEC_DATA", str(SHARED_DATA))
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "emospec", *args], cwd=cwd, env=e, capture_output=True,
                          timeout=timeout, input=input)


# --------------------------------------------------------------------------- models for predict/export tests
LABELS4 = ["neutral", "happy", "angry", "sad"]


@pytest.fixture(scope="session")
def random_model_path(tmp_path_factory) -> Path:
    """A randomly initialised EmoAlexNet of the paper's recipe (128 mel bands, global standardisation, no
    BatchNorm) saved with ``save_model(half=True)``, temperature 1.75.

    Normalisation statistics are those of real-looking dB features and the
    output layer is scaled up, so probabilities are far from uniform and
    differ between clips: parity and batching tests then test something.
    """
    import torch

    from emospec.checkpoint import save_model
    from emospec.model import EmoAlexNet
    from emospec.recipe import RECIPES

    paper = RECIPES["paper"]
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = EmoAlexNet(config=paper.model_for(len(LABELS4))).eval()
    model.set_normalization(-45 + 5 * torch.randn(3, 128, generator=gen), 8 + torch.rand(3, 128, generator=gen))
    with torch.no_grad():
        model.classifier[4].weight.mul_(40.0)
        model.temperature.fill_(1.75)  # as fit leaves it: every backend's probabilities must divide by it
    path = tmp_path_factory.mktemp("models") / "random.pt"
    save_model(path, model, paper.features, LABELS4, {"note": "random weights for tests"}, half=True)
    return path


@pytest.fixture(scope="session")
def onnx_features_path(random_model_path) -> Path:
    """``random_model_path`` exported to ONNX (features input), parity-checked by the export."""
    from emospec.export import export_onnx

    out = random_model_path.with_suffix(".onnx")
    export_onnx(random_model_path, out)
    return out


# --------------------------------------------------------------------------- a skip a newcomer cannot miss
CHROMIUM_MISSING = "Debian's chromium is not installed"
"""Start of the skip reason in tests/test_serve_browser.py; the summary below looks for it."""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """End the run with a loud line when the browser tests were skipped for lack of chromium.

    An outermost wrapper, so the line comes after the ``-ra`` skip list, just above the final counts.
    """
    yield
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if CHROMIUM_MISSING in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep(
            "!", f"BROWSER TESTS SKIPPED ({len(skipped)}): Debian's chromium is not installed (/usr/bin/chromium); "
                 "install it with `apt-get install chromium` to run them", red=True, bold=True)
