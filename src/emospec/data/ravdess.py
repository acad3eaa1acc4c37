"""RAVDESS speech (Livingstone & Russo 2018) in its release layout.

``ROOT/Actor_XX/03-01-EE-II-SS-RR-AA.<ext>``: modality, channel, emotion EE
(01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
08 surprised), intensity, statement, repetition, actor AA (odd male, even
female). The speaker is the actor. Any audio extension libsndfile reads is
accepted (the release is 48 kHz WAV; ``../shared`` holds 16 kHz FLAC).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Mapping, Optional, Tuple

from ..errors import DataError
from .labels import to_label4
from .manifest import Utterance
from .scan import AUDIO_EXTS, Scan, audio_files, finish, parse_files, require_dir

__all__ = ["EMOTIONS", "AUDIO_EXTS", "LAYOUT", "parse_name", "prepare"]

log = logging.getLogger(__name__)

EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
LAYOUT = "Actor_XX/03-01-EE-II-SS-RR-AA.wav"
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def parse_name(stem: str) -> Tuple[str, str, str]:
    """``'03-01-05-01-02-01-12'`` -> ``(emotion, actor, gender)`` = ``('angry', '12', 'f')``.

    Raises
    ------
    DataError
        If the name does not follow the RAVDESS convention or the emotion code is unknown.
    """
    m = _NAME.match(stem)
    if not m:
        raise DataError(f"not a RAVDESS file name ({LAYOUT})")
    if m.group(3) not in EMOTIONS:
        raise DataError(f"unknown label: emotion code {m.group(3)} (RAVDESS has 01-08)")
    actor = m.group(7)
    return EMOTIONS[m.group(3)], actor, ("m" if int(actor) % 2 == 1 else "f")


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """Scan ``root`` for RAVDESS speech files.

    Returns
    -------
    rows : list of Utterance
        One per usable file, sorted by path, ``duration_s`` from the header.
    problems : list of str
        One line per skipped file (``path: reason``): unknown label, duplicate
        id, missing, unreadable or zero-length audio.

    Raises
    ------
    DataError
        If ``root`` is not a folder, or no file (or a single class) is usable.
    """
    root = require_dir(root, "RAVDESS")

    def row(p: Path) -> Utterance:
        emotion, actor, gender = parse_name(p.stem)
        return Utterance(path=str(p), corpus="ravdess", utterance_id=p.stem, speaker=f"ravdess_{actor}",
                         gender=gender, label=emotion, label4=to_label4(emotion, mapping))

    rows, problems = parse_files(audio_files(root, "Actor_*/*"), row)
    return finish("RAVDESS", root, rows, problems, layout=LAYOUT)
