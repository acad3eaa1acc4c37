"""Where and how torch runs: the device, the autocast dtype, and seeding.

:func:`resolve_device` turns ``TrainConfig.device`` into a ``torch.device``;
:func:`amp_dtype` turns ``TrainConfig.amp`` into an autocast dtype for it
(falling back to float32, aloud and once, on a CPU that would emulate
bfloat16: :func:`cpu_has_fast_bf16`); :func:`seed_everything` seeds Python,
NumPy and torch. Used by training (:mod:`emospec.train`) and the benchmarks.
"""

from __future__ import annotations

import logging
import random
from typing import Optional

import numpy as np
import torch

from .errors import ConfigError

__all__ = ["resolve_device", "seed_everything", "cpu_has_fast_bf16", "amp_dtype"]

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX-512 or AMX). On an AVX2-only CPU it emulates
    bf16: on a 2-core AMD EPYC one conv layer of a 32-clip batch took 8.4 s under bf16 autocast against
    0.24 s in float32, and a whole batch-32 forward ran at 0.2x float32's speed (``make bench``)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype :attr:`TrainConfig.amp` asks for on ``device``, or None (float32).

    ``"auto"`` is bf16 on CUDA devices that support it, fp16 on older ones,
    and off on CPU; ``"fp16"`` needs CUDA. ``"bf16"`` (the default) runs on
    CPU when the CPU computes bf16 natively (:func:`cpu_has_fast_bf16`); on
    one that would emulate it, training runs in float32 and says so once.
    """
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "fp16":
            raise ConfigError(f"TrainConfig.amp='fp16' needs a CUDA device; training runs on {device}")
        if amp == "bf16" and not cpu_has_fast_bf16():
            _warn_once("amp='bf16': this CPU (%s) has no native bfloat16 and would emulate it at a fraction of "
                       "float32's speed; training in float32", torch.backends.cpu.get_cpu_capability())
            return None
        return torch.bfloat16 if amp == "bf16" else None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


_WARNED: set = set()


def _warn_once(msg: str, *args) -> None:
    if (msg, args) not in _WARNED:
        _WARNED.add((msg, args))
        log.warning(msg, *args)
