"""EMOVO (Costantini et al. 2014), Italian, in its release layout.

``ROOT/<spk>/<emo>-<spk>-<sent>.<ext>``: emotion ``dis`` disgust, ``gio`` joy,
``neu`` neutral, ``pau`` fear, ``rab`` anger, ``sor`` surprise, ``tri``
sadness; speaker ``f1 f2 f3 m1 m2 m3``; sentence ``b1 b2 d1 d2 l1-l4 n1-n5``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

from ..errors import DataError
from .labels import to_label4
from .manifest import Utterance
from .ravdess import AUDIO_EXTS

__all__ = ["EMOTIONS", "parse_name", "prepare"]

EMOTIONS = {"dis": "disgust", "gio": "joy", "neu": "neutral", "pau": "fear", "rab": "anger", "sor": "surprise", "tri": "sadness"}
_NAME = re.compile(r"^([a-z]{3})-([fm]\d)-([a-z]\d)$")


def parse_name(stem: str) -> Tuple[str, str, str]:
    """``'rab-f1-b1'`` -> ``(emotion, speaker, gender)`` = ``('anger', 'f1', 'f')``."""
    m = _NAME.match(stem.lower())
    if not m or m.group(1) not in EMOTIONS:
        raise DataError(f"{stem}: not an EMOVO file name (emo-spk-sent)")
    return EMOTIONS[m.group(1)], m.group(2), m.group(2)[0]


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Tuple[List[Utterance], List[str]]:
    """Scan ``root`` for EMOVO files: ``(rows, problems)``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: EMOVO root is not a folder")
    rows, problems = [], []
    for p in sorted(root.glob("*/*")):
        if p.suffix.lower() not in AUDIO_EXTS:
            continue
        try:
            emotion, spk, gender = parse_name(p.stem)
        except DataError as e:
            problems.append(f"{p}: {e}")
            continue
        rows.append(Utterance(str(p), "emovo", p.stem, f"emovo_{spk}", gender, emotion, to_label4(emotion, mapping)))
    return rows, problems
