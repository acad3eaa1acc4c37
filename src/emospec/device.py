"""Where and how torch runs: the device, the autocast dtype, and seeding.

:func:`resolve_device` turns ``TrainConfig.device`` into a ``torch.device``;
:func:`amp_dtype` turns ``TrainConfig.amp`` into an autocast dtype for it
(falling back to float32, aloud and once, on a CPU that would emulate
bfloat16: :func:`cpu_has_fast_bf16`); :class:`BF16Rounding` gives bf16's
rounding with float32 kernels (``amp="bf16-round"``); :func:`seed_everything` seeds Python,
NumPy and torch; :func:`warn_if_cpu_busy` says, as a training command starts,
when other processes already keep the CPU cores busy. Used by training
(:mod:`emospec.train`), the CLI and the benchmarks.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .errors import ConfigError

__all__ = ["resolve_device", "seed_everything", "cpu_has_fast_bf16", "amp_dtype", "conv_memory_format", "BF16Rounding",
           "cpu_contention", "others_running", "warn_if_cpu_busy", "NO_LOAD_CHECK_ENV"]

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


LOADAVG = "/proc/loadavg"
"""Linux's load file; its fourth field is ``running/total``, the scheduling entities runnable at this instant."""


def others_running(samples: int = 5, interval_s: float = 0.1, path: str = LOADAVG) -> Optional[int]:
    """How many threads other than the caller are runnable, the least over ``samples`` reads ``interval_s`` apart.

    The least of a few instant counts: a job that keeps cores busy shows in every read, a daemon's blip in one.
    Not the one-minute load average, which lags: after a ``pip install`` or a test run it still reads 1-2 with
    the machine idle. The caller counts itself once (it is running while it reads). None where ``path`` cannot
    be read (not Linux).
    """
    counts = []
    for k in range(samples):
        try:
            with open(path) as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return None
        if k + 1 < samples:
            time.sleep(interval_s)
    return max(0, min(counts) - 1)


def cpu_contention(threads: int, *, others: Optional[int] = None, cores: Optional[int] = None) -> Optional[str]:
    """A warning when other work already keeps this machine's CPU cores busy, else None.

    Parameters
    ----------
    threads
        The intra-op threads the coming job will use (``torch.get_num_threads()``).
    others, cores
        Threads of other processes runnable now (:func:`others_running`) and the core count; measured when not
        given. Where they cannot be measured, nothing is said.

    A job's threads and the others oversubscribe the cores when ``others >= 1`` and ``others + threads > cores``:
    on the 2-core machine a 2-thread training beside a two-process job ran 5× slower an epoch (34-40 s against
    6-7 s alone), not 2×.
    """
    if others is None:
        others = others_running()
        if others is None:
            return None
    cores = cores or os.cpu_count() or 1
    if others < 1 or others + threads <= cores:
        return None
    return (f"other processes keep {others} of this machine's {cores} CPU cores busy and this job adds {threads} threads: "
            f"they compete, and training may run several times slower (5x measured on 2 cores); run one job at a time")


NO_LOAD_CHECK_ENV = "EMOSPEC_NO_LOAD_CHECK"
"""Set (to anything but empty or ``0``) to silence :func:`warn_if_cpu_busy`; the test suite sets it, since what else
runs beside a test is not the test's to decide and the warning would come and go with it."""


def warn_if_cpu_busy(threads: Optional[int] = None) -> Optional[str]:
    """Log :func:`cpu_contention`'s warning once, before a command's first feature or training step; return it.

    Called by ``emospec train``, ``evaluate`` and ``demo`` as they start, on a CPU-only machine, before any
    work of their own (about half a second of reads). ``threads`` defaults to ``torch.get_num_threads()``.
    Nothing is said with a CUDA device, or when :data:`NO_LOAD_CHECK_ENV` is set.
    """
    if os.environ.get(NO_LOAD_CHECK_ENV, "") not in ("", "0") or torch.cuda.is_available():
        return None
    said = cpu_contention(torch.get_num_threads() if threads is None else threads)
    if said:
        log.warning("%s", said)
    return said


def conv_memory_format(device: torch.device) -> torch.memory_format:
    """The layout a model's 4-D conv weights train in on ``device``: channels-last on CPU, torch's default elsewhere.

    On CPU oneDNN then runs every convolution and pooling of the network in
    its blocked channels-last kernels without reordering the weights at
    each call (the inputs stay as they come: converting them as well was
    slower). ``make bench`` times it against the default layout
    (``benchmarks/bench_model.py::bench_layout``); on CUDA it is not
    measured, so nothing changes there. The numbers differ from the default
    layout's only in the order of floating-point sums.
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype :attr:`TrainConfig.amp` asks for on ``device``, or None (float32).

    ``"auto"`` is bf16 on CUDA devices that support it, fp16 on older ones,
    and off on CPU; ``"fp16"`` needs CUDA. ``"bf16"`` (the default) runs on
    CPU when the CPU computes bf16 natively (:func:`cpu_has_fast_bf16`); on
    one that would emulate it, training runs in float32 and says so once.
    ``"bf16-round"`` is float32 kernels under :class:`BF16Rounding` (None here).
    """
    if amp in ("off", "bf16-round"):
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


_ROUNDED = {torch.conv2d, F.conv2d, F.linear, torch.batch_norm, F.batch_norm}
"""The ops whose inputs and outputs :class:`BF16Rounding` rounds: the ones bf16 autocast runs in bf16 here."""


def _to_bf16_grid(x):
    return x.to(torch.bfloat16).to(torch.float32) if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else x


class BF16Rounding(TorchFunctionMode):
    """bf16 autocast's numbers at float32's speed: inside, every conv, linear and BatchNorm gets its float32
    inputs, weights and bias rounded to bfloat16 and returns its output rounded the same way.

    The kernels stay float32, so an AVX2 CPU runs at its float32 speed (bf16 autocast there is oneDNN's slow
    emulation), while activations, weights and, through the differentiable casts, gradients carry bf16's 8-bit
    mantissa as on a CPU or GPU with native bf16. On one step of the default model
    (``tests/test_device.py``) its gradients differ from real bf16 autocast's by 0.08 (relative L2 norm) and
    float32's by 0.20; what it leaves unrounded (LRN, pooling, ReLU on bf16 tensors) is the rest.
    Used by training with ``TrainConfig.amp="bf16-round"``.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _ROUNDED:
            return func(*args, **kwargs)
        # BatchNorm's running_mean / running_var are updated in place: round a copy of them and the module's
        # statistics would never move (they stay float32 under autocast too). F.batch_norm(input, running_mean,
        # running_var, weight, bias, ...) takes them 2nd and 3rd, torch.batch_norm(input, weight, bias, ...) 4th and 5th.
        kept = (1, 2) if func is F.batch_norm else (3, 4) if func is torch.batch_norm else ()
        args = tuple(a if i in kept else _to_bf16_grid(a) for i, a in enumerate(args))
        kwargs = {k: v if k in ("running_mean", "running_var") else _to_bf16_grid(v) for k, v in kwargs.items()}
        return _to_bf16_grid(func(*args, **kwargs))


_WARNED: set = set()


def _warn_once(msg: str, *args) -> None:
    if (msg, args) not in _WARNED:
        _WARNED.add((msg, args))
        log.warning(msg, *args)
