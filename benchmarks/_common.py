"""Shared pieces of the benchmarks: timing, result rows, real clips, the machine description.

Timing rules (these machines are shared and noisy):

* every figure is a median over ``repeat`` rounds after ``warmup`` untimed calls;
* a figure and its reference are timed in the *same* rounds, alternating
  (:func:`interleaved`), and their ratio is the median of the per-round ratios,
  so a burst of load from another process hits both sides of a ratio;
* wall-clock time is what is reported; process CPU time is recorded beside it
  (with one thread, wall ≫ CPU means the process was waiting for a core).
  Growth with clip length is judged on CPU time: on a crowded machine a call
  shorter than a scheduler time slice often runs uninterrupted while a long
  one always pays the average wait, which makes wall time look superlinear.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMOSPEC_DATA", REPO.parent / "shared" / "data"))


@dataclass
class Timing:
    """Per-call wall and CPU seconds of each timed round."""

    wall_s: List[float]
    cpu_s: List[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def p95_s(self) -> float:
        return float(np.percentile(self.wall_s, 95))

    @property
    def cpu_median_s(self) -> float:
        return statistics.median(self.cpu_s)

    def summary(self) -> Dict[str, float]:
        return {"median_s": self.median_s, "p95_s": self.p95_s, "min_s": min(self.wall_s),
                "cpu_median_s": self.cpu_median_s, "rounds": len(self.wall_s)}


def time_calls(fn: Callable[[], object], *, repeat: int, warmup: int = 1, number: int = 1) -> Timing:
    """Time ``fn``: ``warmup`` untimed calls, then ``repeat`` rounds of ``number`` calls (seconds per call)."""
    return interleaved({"x": fn}, repeat=repeat, warmup=warmup, number=number)["x"]


def interleaved(fns: Dict[str, Callable[[], object]], *, repeat: int, warmup: int = 1, number: int = 1) -> Dict[str, Timing]:
    """Time several functions in alternating rounds (A B C A B C ...): seconds per call."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {k: Timing([], []) for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(number):
                fn()
            out[k].wall_s.append((time.perf_counter() - w0) / number)
            out[k].cpu_s.append((time.process_time() - c0) / number)
    return out


def paired_ratio(ref: Timing, other: Timing, *, cpu: bool = False) -> float:
    """Median over rounds of ``ref / other`` wall (or CPU) time (> 1: ``other`` is faster)."""
    a, b = (ref.cpu_s, other.cpu_s) if cpu else (ref.wall_s, other.wall_s)
    return statistics.median(r / o for r, o in zip(a, b))


@dataclass
class Row:
    """One line of the results table (and one object in the JSON)."""

    section: str
    case: str
    value: float
    unit: str
    ref: str = ""
    ratio: Optional[float] = None
    note: str = ""
    extra: Dict = field(default_factory=dict)

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["value"] = None if self.value != self.value else self.value  # NaN is not JSON
        return d


def skipped(section: str, case: str, why: str) -> Row:
    """A row that could not be measured here, with the reason."""
    return Row(section, case, float("nan"), "", note=f"skipped: {why}")


def fmt_value(v: float) -> str:
    if v != v:  # nan
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def table(rows: List[Row]) -> str:
    """The rows as one aligned text table (markdown pipe syntax)."""
    head = ["section", "case", "value", "unit", "vs", "ratio", "notes"]
    body = [[r.section, r.case, fmt_value(r.value), r.unit, r.ref,
             "" if r.ratio is None else f"{r.ratio:.2f}x", r.note] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status`` (reset by exec; ``ru_maxrss``
    would carry over the parent's peak into a child started by run.py).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine(threads: int) -> Dict:
    """What the numbers were measured on."""
    import librosa
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "librosa": librosa.__version__, "git_commit": commit, "loadavg_start": os.getloadavg(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def limit_threads(n: int) -> None:
    """One thread count for torch, BLAS/OpenMP pools (numpy, librosa) and child processes."""
    import torch
    from threadpoolctl import threadpool_limits

    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    threadpool_limits(n)


def ravdess_paths(n: Optional[int] = None, actors: Optional[int] = None) -> List[Path]:
    """Sorted RAVDESS FLAC paths: all, the first ``actors`` actors, or ``n`` spread evenly over the corpus."""
    paths = sorted((DATA / "ravdess").glob("Actor_*/*.flac"))
    if actors is not None:
        keep = {f"Actor_{i:02d}" for i in range(1, actors + 1)}
        paths = [p for p in paths if p.parent.name in keep]
    if n is not None and n < len(paths):
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, n)]
    return paths


def speech_of_length(duration_s: float, sr: int = 16000) -> np.ndarray:
    """``(duration_s · sr,)`` float32 real speech: RAVDESS clips (decoded) laid end to end, cut to length."""
    from emospec.audio import load

    need, parts, got = int(round(duration_s * sr)), [], 0
    for p in ravdess_paths():
        x = load(p, sr=sr)
        parts.append(x)
        got += x.size
        if got >= need:
            break
    return np.concatenate(parts)[:need].astype(np.float32)


def write_clip(folder: str | Path, duration_s: float, sr: int = 16000) -> Path:
    """A 16-bit mono WAV of ``duration_s`` seconds of real speech (see :func:`speech_of_length`)."""
    import soundfile as sf

    path = Path(folder) / f"speech-{duration_s:g}s.wav"
    sf.write(path, speech_of_length(duration_s, sr), sr, subtype="PCM_16")
    return path


def scaling_rows(rows: List[Row], timings: Dict[float, Timing]) -> List[Row]:
    """Fill in each scaling row's ratio: CPU cost per audio second relative to the 4 s clip's."""
    per_s = {d: t.cpu_median_s / d for d, t in timings.items()}
    ref = 4.0 if 4.0 in per_s else min(per_s)
    for r, d in zip(rows, timings):
        r.ref, r.ratio = f"{ref:g} s clip, CPU per audio s", per_s[d] / per_s[ref]
        r.note = f"wall {timings[d].median_s / d * 1e3:.2f} / CPU {per_s[d] * 1e3:.2f} ms per audio s" + (
            f"; {r.note}" if r.note else "")
    return rows
