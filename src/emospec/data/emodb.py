"""EMO-DB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005), in its release layout.

``ROOT/wav/03a01Fa.wav`` (or the clips directly in ``ROOT``): speaker (first
two digits: 03 08 09 10 11 12 13 14 15 16), text code (``a01``-``b10``),
emotion letter (German initials: ``W`` Ärger/anger, ``L`` Langeweile/boredom,
``E`` Ekel/disgust, ``A`` Angst/fear, ``F`` Freude/happiness, ``T``
Trauer/sadness, ``N`` neutral) and a version letter. 535 clips.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Optional, Tuple

from ..errors import DataError
from .labels import to_label4
from .manifest import Utterance
from .scan import Scan, audio_files, finish, parse_files, require_dir

__all__ = ["EMOTIONS", "GENDERS", "LAYOUT", "parse_name", "prepare"]

EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
GENDERS = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f", "14": "f", "15": "m", "16": "f"}
LAYOUT = "wav/03a01Fa.wav"
_NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")


def parse_name(stem: str) -> Tuple[str, str, str]:
    """``'03a01Fa'`` -> ``(emotion, speaker, gender)`` = ``('happiness', '03', 'm')``.

    Raises
    ------
    DataError
        If the name does not follow the convention or the emotion letter is unknown.
    """
    m = _NAME.match(stem)
    if not m:
        raise DataError(f"not an EMO-DB file name ({LAYOUT})")
    if m.group(3) not in EMOTIONS:
        raise DataError(f"unknown label: emotion letter {m.group(3)!r} (EMO-DB has {' '.join(EMOTIONS)})")
    return EMOTIONS[m.group(3)], m.group(1), GENDERS.get(m.group(1), "")


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """Scan an EMO-DB release: ``(rows, problems)`` as :func:`emospec.data.ravdess.prepare`."""
    root = require_dir(root, "EMO-DB")
    clips = root / "wav" if (root / "wav").is_dir() else root

    def row(p: Path) -> Utterance:
        emotion, spk, gender = parse_name(p.stem)
        return Utterance(str(p), "emodb", p.stem, f"emodb_{spk}", gender, emotion, to_label4(emotion, mapping))

    rows, problems = parse_files(audio_files(clips, "*"), row)
    return finish("EMO-DB", root, rows, problems, layout=LAYOUT)
