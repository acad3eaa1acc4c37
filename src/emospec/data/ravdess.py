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
from typing import List, Mapping, Optional, Tuple

from ..errors import DataError
from .labels import to_label4
from .manifest import Utterance

__all__ = ["EMOTIONS", "parse_name", "prepare"]

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
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
AUDIO_EXTS = {".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3", ".opus", ".au", ".w64", ".caf"}


def parse_name(stem: str) -> Tuple[str, str, str]:
    """``'03-01-05-01-02-01-12'`` -> ``(emotion, actor, gender)`` = ``('angry', '12', 'f')``.

    Raises
    ------
    DataError
        If the name does not follow the RAVDESS convention.
    """
    m = _NAME.match(stem)
    if not m or m.group(3) not in EMOTIONS:
        raise DataError(f"{stem}: not a RAVDESS file name (03-01-EE-II-SS-RR-AA)")
    actor = m.group(7)
    return EMOTIONS[m.group(3)], actor, ("m" if int(actor) % 2 == 1 else "f")


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Tuple[List[Utterance], List[str]]:
    """Scan ``root`` for RAVDESS speech files.

    Returns
    -------
    rows : list of Utterance
        One per file, sorted by path; ``duration_s`` is left unknown (nan).
    problems : list of str
        One line per skipped file (``path: reason``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: RAVDESS root is not a folder")
    rows, problems = [], []
    for p in sorted(root.glob("Actor_*/*")):
        if p.suffix.lower() not in AUDIO_EXTS:
            continue
        try:
            emotion, actor, gender = parse_name(p.stem)
        except DataError as e:
            problems.append(f"{p}: {e}")
            continue
        rows.append(
            Utterance(
                path=str(p),
                corpus="ravdess",
                utterance_id=p.stem,
                speaker=f"ravdess_{actor}",
                gender=gender,
                label=emotion,
                label4=to_label4(emotion, mapping),
            )
        )
    return rows, problems
