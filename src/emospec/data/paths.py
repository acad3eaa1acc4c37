"""Where the corpora are: ``--data DIR``, ``$EMOSPEC_DATA`` or a ``shared/data`` nearby."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from ..errors import DataError

__all__ = ["candidate_roots", "find_data_root"]


def candidate_roots(explicit: Optional[str | os.PathLike] = None) -> List[Path]:
    """The folders searched for corpora, in order."""
    if explicit:
        return [Path(explicit)]
    out: List[Path] = []
    env = os.environ.get("EMOSPEC_DATA")
    if env:
        out.append(Path(env))
    cwd = Path.cwd()
    out += [cwd / "shared" / "data", cwd.parent / "shared" / "data"]
    here = Path(__file__).resolve()
    for up in here.parents:
        cand = up.parent / "shared" / "data"
        if cand not in out and (up / "pyproject.toml").exists():
            out.append(cand)
    return out


def find_data_root(explicit: Optional[str | os.PathLike] = None, *, corpus: str = "ravdess") -> Path:
    """The first candidate folder that holds ``corpus``.

    Raises
    ------
    DataError
        Saying every place looked and how to point elsewhere.
    """
    cands = candidate_roots(explicit)
    for c in cands:
        if (c / corpus).is_dir():
            return c
    looked = ", ".join(str(c / corpus) for c in cands)
    raise DataError(
        f"no {corpus} data found (looked in: {looked}); pass --data DIR (the folder holding {corpus}/) "
        f"or set EMOSPEC_DATA=DIR"
    )
