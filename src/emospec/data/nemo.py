"""nEMO (Christop 2024), Polish, in its release layout.

``ROOT/samples/<SPK>_<emotion>_<N>.wav`` plus ``ROOT/data.tsv``, a
tab-separated table with the columns ``file_id, emotion, raw_text,
normalized_text, speaker_id, gender, age``. Nine actors (``EB0 IC0 KD0 KS0
MK0 MP0 SM0 TP0 WR0``), six emotions: ``anger fear happiness neutral sadness
surprised``. The table's ``file_id`` ends in ``.wav`` even where the audio is
a converted copy (``.flac``), so audio and rows are matched on the file stem.
Label, speaker (``speaker_id``, padded with spaces in the release) and gender
come from the table.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

from ..errors import DataError
from .labels import to_label4
from .manifest import Utterance
from .scan import Scan, audio_files, finish, require_dir

__all__ = ["EMOTIONS", "GENDERS", "LAYOUT", "TABLE_COLUMNS", "Entry", "read_table", "prepare"]

EMOTIONS = ("anger", "fear", "happiness", "neutral", "sadness", "surprised")
GENDERS = {"female": "f", "male": "m"}
LAYOUT = "samples/<SPK>_<emotion>_<N>.wav + data.tsv"
TABLE_COLUMNS = ("file_id", "emotion", "speaker_id", "gender")
"""The columns of ``data.tsv`` the loader reads (the others are ignored)."""


class Entry(NamedTuple):
    """One usable ``data.tsv`` row: emotion, speaker id (stripped), gender ``f``/``m``/``""``, ``path:line``."""

    emotion: str
    speaker: str
    gender: str
    where: str


def _entry(rec: Dict[str, Optional[str]], where: str) -> Entry:
    """Check one table row; a :class:`DataError` names what is wrong with it."""
    emotion = (rec.get("emotion") or "").strip().lower()
    speaker = (rec.get("speaker_id") or "").strip()
    if emotion not in EMOTIONS:
        raise DataError(f"unknown label: emotion {rec.get('emotion')!r} (nEMO has {' '.join(EMOTIONS)})")
    if not speaker:
        raise DataError("empty speaker_id")
    return Entry(emotion, speaker, GENDERS.get((rec.get("gender") or "").strip().lower(), ""), where)


def read_table(path: str | os.PathLike) -> Tuple[Dict[str, Optional[Entry]], List[str]]:
    """Read nEMO's ``data.tsv``.

    Returns
    -------
    entries : dict
        File stem (``'EB0_anger_1'``, from ``file_id`` ``'EB0_anger_1.wav'``) -> :class:`Entry`,
        or ``None`` for a row already reported in ``problems`` (so its audio is not reported again).
    problems : list of str
        One ``data.tsv:LINE: reason`` line per row that is unusable: wrong
        number of fields, empty ``file_id``, unknown emotion, empty speaker,
        or a ``file_id`` whose stem an earlier row already had (the first is kept).

    Raises
    ------
    DataError
        If the file cannot be read as UTF-8 or lacks one of :data:`TABLE_COLUMNS`.
    """
    entries: Dict[str, Optional[Entry]] = {}
    where_of: Dict[str, str] = {}
    problems: List[str] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            head = [h.strip() for h in next(reader, [])]
            missing = [c for c in TABLE_COLUMNS if c not in head]
            if missing:
                raise DataError(f"{path}: nEMO table needs columns {list(TABLE_COLUMNS)}, lacks {missing}")
            col = head.index("file_id")
            for n, fields in enumerate(reader, start=2):
                where = f"{path}:{n}"
                if not any(v.strip() for v in fields):
                    continue
                stem = Path(fields[col].strip()).stem if len(fields) > col else ""
                if not stem:
                    problems.append(f"{where}: empty file_id")
                    continue
                if stem in entries:
                    problems.append(f"{where}: duplicate utterance id {stem!r} (kept {where_of[stem]})")
                    continue
                where_of[stem], entries[stem] = where, None
                if len(fields) != len(head):
                    problems.append(f"{where}: {stem}: {len(fields)} fields, the header has {len(head)}")
                    continue
                try:
                    entries[stem] = _entry(dict(zip(head, fields)), where)
                except DataError as e:
                    problems.append(f"{where}: {stem}: {e}")
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the nEMO table ({e})") from e
    return entries, problems


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """Scan an nEMO release at ``root``: ``(rows, problems)`` as :func:`emospec.data.ravdess.prepare`.

    Every table row with audio becomes a row (``label4`` empty for fear and
    surprised unless ``mapping`` says otherwise). Audio without a table row, a
    table row without audio (under any audio extension) and bad table rows
    are problem lines, one per item (a bad row's audio is not reported
    again); a stem present as both ``.wav`` and ``.flac`` keeps the first
    (a duplicate line).

    Raises
    ------
    DataError
        If ``root`` is not a folder, ``samples/`` or ``data.tsv`` is missing,
        the table is unreadable, or nothing (or only one label) is left.
    """
    root = require_dir(root, "nEMO")
    table = root / "data.tsv"
    if not table.is_file():
        raise DataError(f"{table}: nEMO table not found (expected {LAYOUT})")
    if not (root / "samples").is_dir():
        raise DataError(f"{root / 'samples'}: nEMO audio folder not found (expected {LAYOUT})")
    entries, problems = read_table(table)
    rows: List[Utterance] = []
    seen = set()
    for p in audio_files(root / "samples", "*"):
        if p.stem not in entries:
            problems.append(f"{p}: unknown label: no row for {p.stem} in {table}")
            continue
        seen.add(p.stem)
        e = entries[p.stem]
        if e is None:  # its row is already a problem line
            continue
        rows.append(Utterance(str(p), "nemo", p.stem, f"nemo_{e.speaker}", e.gender, e.emotion,
                              to_label4(e.emotion, mapping)))
    unheard = {s: e for s, e in entries.items() if e is not None and s not in seen}
    for stem, e in sorted(unheard.items()):
        problems.append(f"{root / 'samples' / stem}.wav: missing audio (labelled in {e.where})")
    return finish("nEMO", root, rows, problems, layout=LAYOUT)
