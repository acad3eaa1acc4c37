"""Versions and provenance saved with every trained model and report."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict

__version__ = "0.1.0"

__all__ = ["__version__", "environment", "git_commit"]


def git_commit() -> str:
    """The git commit of the emospec source tree, or ``""`` when not in a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = out.stdout.strip() if out.returncode == 0 else ""
    if commit:
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()
        if dirty:
            commit += "+dirty"
    return commit


def environment() -> Dict[str, str]:
    """Python, platform and library versions plus the git commit, as strings."""
    import numpy
    import torch

    env = {
        "emospec": __version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": str(torch.__version__),
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    for mod in ("soundfile", "soxr", "sklearn"):
        try:
            env[mod] = str(__import__(mod).__version__)
        except Exception:  # optional, informational only
            env[mod] = ""
    return env
