"""torch.distributed helpers: one process per device, launched by ``torchrun``.

``torchrun --nproc_per_node N -m emospec train ...`` starts N copies of the
command with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in their environment (multi-node: the same command on every
node with ``--nnodes``, ``--node_rank`` or ``--rdzv_endpoint``).
:func:`init` reads them and joins the process group: NCCL when the device is
CUDA (one GPU per process, ``cuda:LOCAL_RANK``), gloo on CPU. Without those
variables (a plain ``python -m emospec``) everything here is a no-op for a
world of one, so the same training code runs either way.

The process group is torch's own state; this module keeps none.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Sequence

import torch
import torch.distributed as dist

from .errors import ConfigError

__all__ = [
    "DistContext",
    "env_world_size",
    "init",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "cleanup",
    "all_reduce_sum",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process runs: its rank among ``world_size``, its device and backend.

    ``created`` is true when :func:`init` made the process group (and so the
    caller should :func:`cleanup` it); false when it already existed or the
    world is a single process.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str
    created: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from e


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when not launched by torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def _device_for(device: str, local_rank: int) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; ``"cuda"`` -> ``cuda:LOCAL_RANK``.

    An explicit index (``"cuda:1"``) is kept as given.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine")
        if dev.index is None:
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(
                    f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                    "use --nproc_per_node <= the number of GPUs"
                )
            dev = torch.device("cuda", local_rank)
    return dev


def init(device: str = "auto") -> DistContext:
    """Join the process group described by torchrun's environment variables.

    Parameters
    ----------
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``... With more than one process a CUDA
        device becomes ``cuda:LOCAL_RANK`` and the backend NCCL; a CPU device
        uses gloo.

    Returns
    -------
    DistContext
        For a world of one: rank 0, the resolved device, backend ``"none"``.
    """
    if dist.is_available() and dist.is_initialized():
        backend = str(dist.get_backend())
        local = _env_int("LOCAL_RANK", 0)
        dev = _device_for(device, local)
        return DistContext(dist.get_rank(), local, dist.get_world_size(), dev, backend, created=False)
    world = env_world_size()
    if world <= 1:
        return DistContext(0, 0, 1, _device_for(device, 0), "none", created=False)
    if not dist.is_available():
        raise ConfigError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
    rank_, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ConfigError(f"WORLD_SIZE={world} but {name} is not set; launch with torchrun")
    dev = _device_for(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    kwargs: Dict[str, Any] = {"device_id": dev} if dev.type == "cuda" else {}
    dist.init_process_group(backend=backend, init_method="env://", rank=rank_, world_size=world, **kwargs)
    log.info("rank %d/%d (local %d) joined the %s process group on %s", rank_, world, local, backend, dev)
    return DistContext(rank_, local, world, dev, backend, created=True)


def rank() -> int:
    """This process's global rank: from the process group, else ``RANK`` (0 when unset)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0)


def world_size() -> int:
    """Processes in the job: from the process group, else ``WORLD_SIZE`` (1 when unset)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return env_world_size()


def is_main() -> bool:
    """True on rank 0, the only process that writes files and prints reports."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup(ctx: DistContext | None = None) -> None:
    """Leave the process group if ``ctx`` created it (or, with no ``ctx``, if one exists)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if ctx is None or ctx.created:
        dist.destroy_process_group()


def all_reduce_sum(values: Sequence[float] | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sum ``values`` over all processes; float64 ``(n,)`` on CPU (unchanged for a world of one).

    ``device`` is where the reduction runs (the process's CUDA device under NCCL).
    """
    t = torch.as_tensor(values, dtype=torch.float64).reshape(-1).to(device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()
