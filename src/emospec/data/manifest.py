"""One manifest row per utterance, and reading/writing manifests (CSV or JSON).

A manifest is a list of :class:`Utterance`; on disk it is a CSV with the
columns ``path, corpus, utterance_id, speaker, gender, label, label4,
duration_s``. ``label`` is the corpus's own label, ``label4`` the run's class
(neutral/happy/angry/sad by default) or empty when the utterance is outside them.

A user's own manifest needs only ``path`` and ``label`` (``speaker`` and the
rest are optional). It may be CSV, or JSON in either of two shapes::

    [{"path": "a.wav", "label": "angry", "speaker": "s1"}, ...]
    {"utt1": {"wav": "a.wav", "emo": "ang", "length": 2.1}, ...}   # SpeechBrain style

Accepted aliases: ``wav``/``file`` for ``path``, ``emo``/``emotion`` for
``label``, ``spk_id`` for ``speaker``, ``length``/``duration`` for ``duration_s``.
Relative paths are resolved against the manifest's folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import DataError
from ..files import atomic_write_bytes
from .labels import to_label4

__all__ = ["Utterance", "write_manifest", "read_manifest", "parse_manifest", "count_table", "MANIFEST_COLUMNS", "labels_of"]


@dataclass(frozen=True)
class Utterance:
    """One utterance: where its audio is and what it is labelled.

    ``duration_s`` is in seconds (``nan`` when unknown); ``gender`` is
    ``"f"``, ``"m"`` or ``""``; ``label4`` is ``""`` outside the run's classes.
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
_ALIASES = {"path": ("path", "wav", "file"), "label": ("label", "emo", "emotion"), "speaker": ("speaker", "spk_id"),
            "duration_s": ("duration_s", "length", "duration")}


def labels_of(rows: Sequence[Utterance], field: str = "label4") -> List[str]:
    """The label column ``field`` of ``rows`` as a list of strings."""
    return [getattr(r, field) for r in rows]


def write_manifest(path: str | os.PathLike, rows: Iterable[Utterance]) -> None:
    """Write ``rows`` as CSV (atomically); ``duration_s`` with 4 decimals, empty when unknown."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        d = asdict(r)
        d["duration_s"] = "" if d["duration_s"] != d["duration_s"] else f"{d['duration_s']:.4f}"
        w.writerow(d)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _get(rec: Mapping[str, Any], key: str) -> str:
    for k in _ALIASES.get(key, (key,)):
        v = rec.get(k)
        if v is not None and str(v).strip() != "":
            return str(v).strip()
    return ""


def _record(rec: Mapping[str, Any], where: str, base_dir: Path, uid: str = "") -> Utterance:
    """One manifest record -> :class:`Utterance`; a :class:`DataError` names ``where`` and the cause."""
    audio, label = _get(rec, "path"), _get(rec, "label")
    if not audio:
        raise DataError(f"{where}: no audio path")
    if not label:
        raise DataError(f"{where}: {audio}: unknown label (empty)")
    if not os.path.isabs(audio):
        audio = str(base_dir / audio)
    dur = _get(rec, "duration_s")
    try:
        duration = float(dur) if dur else float("nan")
    except ValueError as e:
        raise DataError(f"{where}: duration_s {dur!r} is not a number") from e
    if not (math.isnan(duration) or duration >= 0):
        raise DataError(f"{where}: duration_s {dur!r} is negative")
    return Utterance(
        path=audio,
        corpus=_get(rec, "corpus") or "custom",
        utterance_id=_get(rec, "utterance_id") or uid or Path(audio).stem,
        speaker=_get(rec, "speaker"),
        gender=_get(rec, "gender").lower()[:1],
        label=label,
        label4=str(rec.get("label4") or "").strip() if "label4" in rec else to_label4(label),
        duration_s=duration,
    )


def _json_records(p: Path) -> List[Tuple[str, str, Mapping[str, Any]]]:
    """``(where, uid, record)`` for a JSON list of objects or an ``{utt_id: object}`` mapping."""
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: manifest is not valid JSON ({e})") from e
    if isinstance(data, list):
        items = [(f"{p}[{i}]", "", rec) for i, rec in enumerate(data)]
    elif isinstance(data, dict):
        items = [(f"{p}[{k!r}]", str(k), rec) for k, rec in data.items()]
    else:
        raise DataError(f"{p}: JSON manifest must be a list of objects or an object of objects, got {type(data).__name__}")
    bad = next((w for w, _, rec in items if not isinstance(rec, dict)), None)
    if bad:
        raise DataError(f"{bad}: manifest entry is not a JSON object")
    return items


def _csv_records(p: Path) -> List[Tuple[str, str, Mapping[str, Any]]]:
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not (cols & set(_ALIASES["path"]) and cols & set(_ALIASES["label"])):
            raise DataError(f"{p}: manifest needs at least 'path' and 'label' columns, has {sorted(cols)}")
        return [(f"{p}:{i}", "", rec) for i, rec in enumerate(reader, start=2)]


def parse_manifest(path: str | os.PathLike, *, base: Optional[str | os.PathLike] = None) -> Tuple[List[Utterance], List[str]]:
    """Read a manifest (CSV, or JSON when the name ends in ``.json``): ``(rows, problems)``.

    Relative ``path`` entries are resolved against ``base`` (default: the
    manifest's folder). ``label4`` is taken as written when the column exists,
    otherwise mapped from ``label`` with :func:`emospec.data.labels.to_label4`.
    A record without path or label, or with a bad duration, is a problem line.

    Raises
    ------
    DataError
        If the file is missing, not UTF-8, not CSV/JSON of the shape above, or
        lacks the ``path``/``label`` columns.
    """
    p = Path(path)
    base_dir = Path(base) if base is not None else p.parent
    try:
        items = _json_records(p) if p.suffix.lower() == ".json" else _csv_records(p)
    except FileNotFoundError as e:
        raise DataError(f"{p}: manifest not found") from e
    except IsADirectoryError as e:
        raise DataError(f"{p}: manifest is a directory, not a file") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: manifest is not UTF-8 text ({e.reason})") from e
    except csv.Error as e:
        raise DataError(f"{p}: manifest is not valid CSV ({e})") from e
    rows: List[Utterance] = []
    problems: List[str] = []
    for where, uid, rec in items:
        try:
            rows.append(_record(rec, where, base_dir, uid))
        except DataError as e:  # a quoted field may hold line breaks: keep the report one line per item
            problems.append(str(e).replace("\r", "\\r").replace("\n", "\\n"))
    return rows, problems


def read_manifest(path: str | os.PathLike, *, base: Optional[str | os.PathLike] = None) -> List[Utterance]:
    """Read a manifest strictly: like :func:`parse_manifest`, but any bad record is a :class:`DataError`."""
    rows, problems = parse_manifest(path, base=base)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    return rows



def count_table(rows: Sequence[Utterance], classes: Sequence[str]) -> str:
    """Counts per speaker and class as plain text, with an ``all`` line (``-``: outside ``classes``)."""
    cols = list(classes) + ["-"]
    by_spk: Dict[str, List[str]] = {}
    for r in rows:
        by_spk.setdefault(r.speaker or "(none)", []).append(r.label4 if r.label4 in classes else "-")
    every = [c for labs in by_spk.values() for c in labs]
    width = max([len("speaker"), *(len(s) for s in by_spk)])

    def line(name: str, labs: List[str]) -> str:
        return f"{name:<{width}}  {len(labs):>6}" + "".join(f"  {labs.count(c):>8}" for c in cols)

    head = f"{'speaker':<{width}}  {'total':>6}" + "".join(f"  {c:>8}" for c in cols)
    rule = "-" * len(head)
    return "\n".join([head, rule, *(line(s, by_spk[s]) for s in sorted(by_spk)), rule, line("all", every)])
