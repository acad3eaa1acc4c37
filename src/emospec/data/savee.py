"""SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson 2009), in its release layout.

``ROOT/AudioData/<speaker>/<code><nn>.wav`` (or ``ROOT/<speaker>/...``): four
male speakers ``DC JE JK KL``; codes ``a`` anger, ``d`` disgust, ``f`` fear,
``h`` happiness, ``n`` neutral, ``sa`` sadness, ``su`` surprise. 120 clips a
speaker (30 neutral, 15 of each other emotion).
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

__all__ = ["EMOTIONS", "LAYOUT", "parse_name", "prepare"]

EMOTIONS = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral", "sa": "sadness", "su": "surprise"}
LAYOUT = "<speaker>/<code><nn>.wav"
_NAME = re.compile(r"^([a-z]+)(\d\d)$")


def parse_name(stem: str) -> Tuple[str, str]:
    """``'sa03'`` -> ``(emotion, number)`` = ``('sadness', '03')``.

    Raises
    ------
    DataError
        If the name is not ``<code><nn>`` or the code is unknown.
    """
    m = _NAME.match(stem.lower())
    if not m:
        raise DataError(f"not a SAVEE file name ({LAYOUT})")
    if m.group(1) not in EMOTIONS:
        raise DataError(f"unknown label: emotion code {m.group(1)!r} (SAVEE has {' '.join(EMOTIONS)})")
    return EMOTIONS[m.group(1)], m.group(2)


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """Scan a SAVEE release: ``(rows, problems)``; the utterance id is ``<speaker>_<code><nn>``."""
    root = require_dir(root, "SAVEE")
    clips = root / "AudioData" if (root / "AudioData").is_dir() else root

    def row(p: Path) -> Utterance:
        emotion, _ = parse_name(p.stem)
        spk = p.parent.name
        return Utterance(str(p), "savee", f"{spk}_{p.stem.lower()}", f"savee_{spk}", "m", emotion, to_label4(emotion, mapping))

    rows, problems = parse_files(audio_files(clips, "*/*"), row)
    return finish("SAVEE", root, rows, problems, layout=LAYOUT)
