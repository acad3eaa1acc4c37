"""Several trainings at once on a CPU: the demo's two splits, the folds of ``emospec evaluate``.

Small convolutions use two threads badly: one training step took 359 ms on 2 threads and 506 ms on
one (2-core AMD EPYC, session 12), so two 1-thread trainings side by side finish sooner than the same
two one after the other on 2 threads: 1.13x in ``make bench`` in session 13 (row "2 trainings side by
side"), but 0.91x (slower) in session 14 on the same kind of host, so the gain is not reliable there;
re-measure before relying on it. :func:`parallel_workers` says how many to run at once; :func:`run_jobs` runs them in spawned
processes and shows one progress bar per job, read from the ``history.json`` that
:func:`emospec.train.fit` rewrites every epoch.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

__all__ = ["parallel_workers", "run_jobs", "MAX_BARS"]

log = logging.getLogger(__name__)

MAX_BARS = 4
"""Up to this many jobs get a progress bar each; more share one bar of all their epochs."""


def parallel_workers(n_jobs: int, device: str = "auto") -> int:
    """How many of ``n_jobs`` trainings to run at once: one per CPU thread torch uses, on CPU only.

    On CUDA the GPU is the bottleneck, and under ``torchrun`` the processes already share the
    work of one training: one at a time in both cases.
    """
    import torch

    from .distributed import env_world_size

    if device not in ("auto", "cpu") or (device == "auto" and torch.cuda.is_available()) or env_world_size() > 1:
        return 1
    return max(1, min(n_jobs, torch.get_num_threads()))


def _call(fn: Callable[..., Any], job: dict, threads: int, log_level: int, log_format: Optional[str]) -> Any:
    """``fn(**job)`` in a worker process with ``threads`` torch threads, logging as the parent does."""
    import torch

    logging.basicConfig(level=log_level, format=log_format or logging.BASIC_FORMAT)
    torch.set_num_threads(threads)
    return fn(**job)


def _epochs_done(run_dir: Path) -> int:
    try:
        return len(json.loads((run_dir / "history.json").read_text()))
    except (OSError, ValueError):  # not written yet
        return 0


def run_jobs(fn: Callable[..., Any], jobs: Sequence[dict], workers: int, *, names: Sequence[str],
             run_dirs: Sequence[Path], epochs: int, progress: bool = True) -> List[Any]:
    """``[fn(**job) for job in jobs]``, ``workers`` at a time in spawned processes; results in job order.

    ``fn`` must be a module-level function (it is pickled, as is every job). Each worker gets an
    equal share of torch's threads. Job ``i`` trains into ``run_dirs[i]``; its bar (``names[i]``,
    ``epochs`` long) follows that folder's ``history.json`` (one bar for all
    when there are more than :data:`MAX_BARS` jobs). A job that raises does not stop the
    others: every job runs to its end, then the first error (in job order) is raised.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch
    from tqdm.auto import tqdm

    threads = max(1, torch.get_num_threads() // workers)
    log.info("training %d jobs, %d at once, %d thread(s) each", len(jobs), workers, threads)
    # a bar per job; one bar for them all when there are more than MAX_BARS
    groups = [[i] for i in range(len(jobs))] if len(jobs) <= MAX_BARS else [list(range(len(jobs)))]
    descs = list(names) if len(groups) > 1 or len(jobs) == 1 else [f"training {len(jobs)} jobs"]
    bars = [tqdm(total=epochs * len(g), desc=f"training {d}" if len(g) == 1 else d, unit="epoch", position=i,
                 disable=not progress) for i, (g, d) in enumerate(zip(groups, descs))]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        root = logging.getLogger()
        fmt = root.handlers[0].formatter._fmt if root.handlers and root.handlers[0].formatter else None
        futures = [pool.submit(_call, fn, job, threads, root.getEffectiveLevel(), fmt) for job in jobs]
        while not all(f.done() for f in futures):
            time.sleep(1.0)
            for bar, group in zip(bars, groups):
                done = sum(_epochs_done(Path(run_dirs[i])) for i in group)
                if done > bar.n:
                    bar.update(done - bar.n)
        for bar in bars:
            bar.close()
    errors = [f.exception() for f in futures]
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return [f.result() for f in futures]
