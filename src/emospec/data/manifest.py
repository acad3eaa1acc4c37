"""One manifest row per utterance, and CSV read/write.

A manifest is a list of :class:`Utterance`; on disk it is a CSV with the
columns ``path, corpus, utterance_id, speaker, gender, label, label4,
duration_s``. ``label`` is the corpus's own label, ``label4`` the four-class
label (neutral/happy/angry/sad) or empty when the utterance is outside them.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from ..config import atomic_write_bytes
from ..errors import DataError

__all__ = ["Utterance", "write_manifest", "read_manifest", "MANIFEST_COLUMNS", "labels_of"]


@dataclass(frozen=True)
class Utterance:
    """One utterance: where its audio is and what it is labelled.

    ``duration_s`` is in seconds (``nan`` when unknown); ``gender`` is
    ``"f"``, ``"m"`` or ``""``; ``label4`` is ``""`` outside the four classes.
    """

    path: str
    corpus: str
    utterance_id: str
    speaker: str
    gender: str
    label: str
    label4: str
    duration_s: float = float("nan")


MANIFEST_COLUMNS = tuple(f.name for f in fields(Utterance))


def labels_of(rows: Sequence[Utterance], field: str = "label4") -> List[str]:
    """The label column ``field`` of ``rows`` as a list of strings."""
    return [getattr(r, field) for r in rows]


def write_manifest(path: str | os.PathLike, rows: Iterable[Utterance]) -> None:
    """Write ``rows`` as CSV (atomically)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        d = asdict(r)
        d["duration_s"] = "" if d["duration_s"] != d["duration_s"] else f"{d['duration_s']:.4f}"
        w.writerow(d)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def read_manifest(path: str | os.PathLike, *, base: Optional[str | os.PathLike] = None) -> List[Utterance]:
    """Read a manifest CSV written by :func:`write_manifest`.

    Relative ``path`` entries are resolved against ``base`` (default: the
    manifest's folder). Missing optional columns get defaults; a missing
    ``path`` or ``label`` column is a :class:`DataError`.
    """
    p = Path(path)
    base_dir = Path(base) if base is not None else p.parent
    try:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or [])
            if not {"path", "label"} <= cols:
                raise DataError(f"{p}: manifest needs at least 'path' and 'label' columns, has {sorted(cols)}")
            rows = []
            for i, rec in enumerate(reader, start=2):
                audio = rec["path"]
                if audio and not os.path.isabs(audio):
                    audio = str(base_dir / audio)
                dur = rec.get("duration_s") or ""
                try:
                    duration = float(dur) if dur else float("nan")
                except ValueError as e:
                    raise DataError(f"{p}:{i}: duration_s {dur!r} is not a number") from e
                rows.append(
                    Utterance(
                        path=audio,
                        corpus=rec.get("corpus") or "custom",
                        utterance_id=rec.get("utterance_id") or Path(audio).stem,
                        speaker=rec.get("speaker") or "",
                        gender=rec.get("gender") or "",
                        label=rec["label"],
                        label4=rec.get("label4") if rec.get("label4") is not None else rec["label"],
                        duration_s=duration,
                    )
                )
    except FileNotFoundError as e:
        raise DataError(f"{p}: manifest not found") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: manifest is not UTF-8 text ({e})") from e
    return rows
