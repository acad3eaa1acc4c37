"""IEMOCAP (Busso et al. 2008) in its release layout, or its flat label table.

Release layout::

    ROOT/SessionN/sentences/wav/<dialog>/<utt>.wav
    ROOT/SessionN/dialog/EmoEvaluation/<dialog>.txt

An EmoEvaluation file's summary lines look like
``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]``.
Utterance ids ``Ses01F_impro01_F000``: session 1-5, the session's lead actor
(F/M), the dialog, and the speaker of this turn in the last group's letter.
The speaker is therefore session + the turn's letter (ten speakers, e.g.
``iemocap_01M``), not the dialog's first letter. Labels ``neu hap exc ang sad
fru sur fea dis oth xxx``; excited merges into happy, which gives the paper's
5,531 four-class utterances.

The flat table (``df_iemocap.csv``: ``start_time,end_time,wav_file,emotion``)
is read by :func:`from_table`; without audio its rows keep the release-relative
path and ``duration_s = end - start``.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from ..errors import DataError
from .labels import to_label4
from .manifest import Utterance
from .scan import Scan, audio_files, finish

__all__ = ["CODES", "LAYOUT", "parse_utterance", "session_of", "read_evaluation", "from_table", "prepare"]

CODES = {
    "neu": "neutral", "hap": "happiness", "exc": "excited", "ang": "anger", "sad": "sadness", "fru": "frustration",
    "sur": "surprise", "fea": "fear", "dis": "disgust", "oth": "other", "xxx": "no_agreement",
}
"""EmoEvaluation code -> the label kept in the manifest."""

LAYOUT = "SessionN/sentences/wav/<dialog>/<utt>.wav + SessionN/dialog/EmoEvaluation/<dialog>.txt"
_UTT = re.compile(r"^Ses(0[1-5])([FM])_(.+)_([FM])(\d+\w*)$")
_LINE = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]\s+(\S+)\s+(\S+)\s+\[")

Label = Tuple[str, float, float, str]  # (code, start_s, end_s, where it was read)


def parse_utterance(utt: str) -> Tuple[str, str, str, str]:
    """``'Ses01F_impro01_M013'`` -> ``(session, speaker, gender, dialog)`` = ``('01', 'iemocap_01M', 'm', 'Ses01F_impro01')``.

    Raises
    ------
    DataError
        If ``utt`` is not an IEMOCAP utterance id.
    """
    m = _UTT.match(utt)
    if not m:
        raise DataError(f"{utt!r} is not an IEMOCAP utterance id (Ses0N[FM]_<dialog>_[FM]NNN)")
    sess, turn = m.group(1), m.group(4)
    return sess, f"iemocap_{sess}{turn}", turn.lower(), utt.rsplit("_", 1)[0]


def session_of(speaker: str) -> str:
    """``'iemocap_01M'`` -> ``'iemocap_01'``: the group for leave-one-session-out."""
    return speaker[:-1] if re.fullmatch(r"iemocap_0[1-5][FM]", speaker) else speaker


def _row(utt: str, path: str, label: Label, mapping: Optional[Mapping[str, str]]) -> Utterance:
    code, start, end, _ = label
    _, speaker, gender, _ = parse_utterance(utt)
    name = CODES[code]
    return Utterance(path, "iemocap", utt, speaker, gender, name, to_label4(name, mapping), round(end - start, 4))


def _add_label(labels: Dict[str, Label], problems: List[str], utt: str, code: str, start: float, end: float, where: str) -> None:
    """Record one labelled turn, or the reason it is skipped."""
    try:
        parse_utterance(utt)
    except DataError as e:
        problems.append(f"{where}: {e}")
        return
    if code not in CODES:
        problems.append(f"{where}: {utt}: unknown label {code!r} (IEMOCAP has {' '.join(CODES)})")
    elif utt in labels:
        problems.append(f"{where}: duplicate utterance id {utt!r} (kept {labels[utt][3]})")
    else:
        labels[utt] = (code, start, end, where)


def read_evaluation(path: str | os.PathLike, labels: Dict[str, Label], problems: List[str]) -> None:
    """Add the summary lines of one ``EmoEvaluation/<dialog>.txt`` to ``labels`` (utt -> label)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        problems.append(f"{path}: cannot read ({e.strerror or e})")
        return
    for n, line in enumerate(text.splitlines(), start=1):
        m = _LINE.match(line)
        if m:
            _add_label(labels, problems, m.group(3), m.group(4).lower(), float(m.group(1)), float(m.group(2)), f"{path}:{n}")


def from_table(table: str | os.PathLike, *, audio_root: Optional[str | os.PathLike] = None,
               mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """Rows from the flat label table ``start_time,end_time,wav_file,emotion``.

    With ``audio_root`` each row points at the release audio and is probed (a
    missing file is a problem line); without it, rows keep the release-relative
    path and ``duration_s = end_time - start_time``.
    """
    labels: Dict[str, Label] = {}
    problems: List[str] = []
    try:
        with open(table, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            need = {"start_time", "end_time", "wav_file", "emotion"}
            if not need <= set(reader.fieldnames or []):
                raise DataError(f"{table}: IEMOCAP table needs columns {sorted(need)}, has {reader.fieldnames}")
            for n, rec in enumerate(reader, start=2):
                try:
                    start, end = float(rec["start_time"]), float(rec["end_time"])
                except (TypeError, ValueError):
                    problems.append(f"{table}:{n}: start/end time is not a number")
                    continue
                _add_label(labels, problems, rec["wav_file"].strip(), rec["emotion"].strip().lower(), start, end, f"{table}:{n}")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{table}: cannot read the IEMOCAP label table ({e})") from e
    rows = []
    for utt in sorted(labels):
        sess, _, _, dialog = parse_utterance(utt)
        rel = Path(f"Session{int(sess)}", "sentences", "wav", dialog, f"{utt}.wav")
        rows.append(_row(utt, str(Path(audio_root) / rel if audio_root else rel), labels[utt], mapping))
    return finish("IEMOCAP", table, rows, problems, layout="start_time,end_time,wav_file,emotion",
                  check_audio=audio_root is not None)


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None,
            table: Optional[str | os.PathLike] = None) -> Scan:
    """Scan an IEMOCAP release at ``root`` (or read the label table if ``root`` is a CSV file).

    Every labelled turn becomes a row (``label4`` empty outside the classes);
    a labelled turn without audio, audio without a label, an unknown code and
    a repeated utterance id are problem lines. With ``table``, labels come
    from that CSV and audio from ``root``.
    """
    root = Path(root)
    if root.is_file():
        return from_table(root, mapping=mapping)
    if table is not None:
        return from_table(table, audio_root=root, mapping=mapping)
    if not root.is_dir():
        raise DataError(f"{root}: IEMOCAP root is not a folder or a label table")
    labels: Dict[str, Label] = {}
    problems: List[str] = []
    for ev in sorted(root.glob("Session[1-5]/dialog/EmoEvaluation/*.txt")):
        if not ev.name.startswith("."):
            read_evaluation(ev, labels, problems)
    audio: Dict[str, Path] = {}
    for p in audio_files(root, "Session[1-5]/sentences/wav/*/*"):
        if p.stem in audio:
            problems.append(f"{p}: duplicate utterance id {p.stem!r} (kept {audio[p.stem]})")
        elif p.stem not in labels:
            problems.append(f"{p}: unknown label: no summary line for {p.stem} in Session*/dialog/EmoEvaluation")
        else:
            audio[p.stem] = p
    rows = []
    for utt in sorted(labels):
        if utt not in audio:
            problems.append(f"{root}/Session{int(utt[3:5])}/sentences/wav/{utt.rsplit('_', 1)[0]}/{utt}.wav: "
                            f"missing audio (labelled in {labels[utt][3]})")
            continue
        rows.append(_row(utt, str(audio[utt]), labels[utt], mapping))
    return finish("IEMOCAP", root, rows, problems, layout=LAYOUT)
