"""Run ``emospec serve`` in a child process on loopback and wait until it answers (tests, benchmarks).

>>> with serve_subprocess("runs/demo/speaker") as server:     # doctest: +SKIP
...     urllib.request.urlopen(server.url + "/api/v1/health")
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from ..errors import EmospecError

__all__ = ["RunningServer", "free_port", "serve_subprocess"]

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class RunningServer:
    """A started server: its base URL (no trailing slash) and process id."""

    url: str
    pid: int


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve_subprocess(model: str | os.PathLike, *args: str, port: Optional[int] = None,
                     timeout_s: float = 120.0) -> Iterator[RunningServer]:
    """Start ``python -m emospec -q serve --model MODEL --host 127.0.0.1 ARGS`` and stop it on exit.

    The child imports this same emospec (its folder goes first on
    ``PYTHONPATH``) and listens on loopback only, on ``port`` or a free one;
    its stderr goes to an anonymous temp file (never a pipe that could fill
    and block it), whose last line is quoted if it fails to start.

    Raises
    ------
    EmospecError
        The server exited or did not answer ``/api/v1/health`` within ``timeout_s``.
    """
    port = port or free_port()
    src = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "emospec", "-q", "serve", "--model", os.fspath(model), "--host", LOOPBACK,
           "--port", str(port), *args]
    url = f"http://{LOOPBACK}:{port}"
    with tempfile.TemporaryFile() as log, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                                           stderr=log) as proc:
        try:
            deadline = time.monotonic() + timeout_s
            while not _healthy(url):
                if proc.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
                    raise EmospecError(f"emospec serve exited with status {proc.returncode}: {' '.join(tail)}")
                if time.monotonic() > deadline:
                    raise EmospecError(f"emospec serve did not answer on {url} within {timeout_s:g} s")
                time.sleep(0.2)
            yield RunningServer(url=url, pid=proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
