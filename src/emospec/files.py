"""Files written so that a crash never leaves half of one: atomic bytes, JSON in and out.

Every run directory, checkpoint, cache and report goes through
:func:`atomic_write_bytes` (a temp file in the same folder, fsync, rename).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["atomic_write_bytes", "save_json", "load_json"]


def _file_mode(path: Path) -> int:
    """The permission bits for ``path``: its current ones, else what ``open(path, "w")`` would give."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename).

    The file gets the permissions a plain ``open(path, "w")`` would give it
    (or keeps its own when replaced), not the temp file's owner-only 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` (a dataclass or JSON-able value) as indented JSON, atomically."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`ConfigError` naming it."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from e
