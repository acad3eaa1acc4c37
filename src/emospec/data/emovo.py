"""EMOVO (Costantini et al. 2014), Italian, in its release layout.

``ROOT/<spk>/<emo>-<spk>-<sent>.<ext>``: emotion ``dis`` disgust, ``gio`` joy,
``neu`` neutral, ``pau`` fear, ``rab`` anger, ``sor`` surprise, ``tri``
sadness; speaker ``f1 f2 f3 m1 m2 m3``; sentence ``b1 b2 d1 d2 l1-l4 n1-n5``.
84 files per emotion, 588 in all.
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

EMOTIONS = {"dis": "disgust", "gio": "joy", "neu": "neutral", "pau": "fear", "rab": "anger", "sor": "surprise", "tri": "sadness"}
LAYOUT = "<spk>/<emo>-<spk>-<sent>.wav"
_NAME = re.compile(r"^([a-z]{3})-([fm]\d)-([a-z]\d)$")


def parse_name(stem: str) -> Tuple[str, str, str]:
    """``'rab-f1-b1'`` -> ``(emotion, speaker, gender)`` = ``('anger', 'f1', 'f')``.

    Raises
    ------
    DataError
        If the name does not follow ``emo-spk-sent`` or the emotion code is unknown.
    """
    m = _NAME.match(stem.lower())
    if not m:
        raise DataError(f"not an EMOVO file name ({LAYOUT})")
    if m.group(1) not in EMOTIONS:
        raise DataError(f"unknown label: emotion code {m.group(1)!r} (EMOVO has {', '.join(sorted(EMOTIONS))})")
    return EMOTIONS[m.group(1)], m.group(2), m.group(2)[0]


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """Scan ``root`` for EMOVO files: ``(rows, problems)`` as :func:`emospec.data.ravdess.prepare`."""
    root = require_dir(root, "EMOVO")

    def row(p: Path) -> Utterance:
        emotion, spk, gender = parse_name(p.stem)
        if spk != p.parent.name.lower():
            raise DataError(f"speaker {spk!r} in the name differs from its folder {p.parent.name!r}")
        return Utterance(str(p), "emovo", p.stem.lower(), f"emovo_{spk}", gender, emotion, to_label4(emotion, mapping))

    rows, problems = parse_files(audio_files(root, "*/*"), row)
    return finish("EMOVO", root, rows, problems, layout=LAYOUT)
