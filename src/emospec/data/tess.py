"""TESS, the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller 2010), in its release layout.

``ROOT/{OAF,YAF}_<emotion>/<speaker>_<word>_<emotion>.wav``: two actresses
(OAF, aged 64; YAF, aged 26) say "Say the word ___" for 200 words in seven
emotions: ``angry disgust fear happy neutral ps sad`` (``ps`` = pleasant
surprise). Folder names vary between copies (``OAF_Pleasant_surprise``,
``YAF_pleasant_surprised``), so the label and speaker come from the file name. One file of
the release drops a letter of its speaker (``OAF_neutral/OA_bite_neutral.wav``);
where the name's speaker is the folder's with one letter missing, the folder's
speaker is taken (:func:`speaker_fix`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Tuple

from ..errors import DataError
from .labels import to_label4
from .manifest import Utterance
from .scan import Scan, audio_files, finish, parse_files, require_dir

__all__ = ["EMOTIONS", "SPEAKERS", "LAYOUT", "parse_name", "speaker_fix", "prepare"]

EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "neutral": "neutral",
            "ps": "pleasant_surprise", "sad": "sad"}
SPEAKERS = ("OAF", "YAF")
LAYOUT = "{OAF,YAF}_<emotion>/<speaker>_<word>_<emotion>.wav"


def parse_name(stem: str) -> Tuple[str, str, str]:
    """``'OAF_back_angry'`` -> ``(emotion, speaker, word)`` = ``('angry', 'OAF', 'back')``.

    Raises
    ------
    DataError
        If the name is not ``<speaker>_<word>_<emotion>`` or the emotion is unknown.
    """
    parts = stem.split("_")
    if len(parts) < 3 or parts[0].upper() not in SPEAKERS:
        raise DataError(f"not a TESS file name ({LAYOUT})")
    emo = parts[-1].lower()
    if emo not in EMOTIONS:
        raise DataError(f"unknown label: emotion {parts[-1]!r} (TESS has {' '.join(EMOTIONS)})")
    return EMOTIONS[emo], parts[0].upper(), "_".join(parts[1:-1]).lower()


def speaker_fix(stem: str, folder: str) -> str:
    """``stem`` with its speaker taken from ``folder`` when the name's speaker is the folder's minus one letter.

    >>> speaker_fix("OA_bite_neutral", "OAF_neutral"), speaker_fix("OAF_back_angry", "YAF_angry")
    ('OAF_bite_neutral', 'OAF_back_angry')
    """
    name_spk, _, rest = stem.partition("_")
    folder_spk = folder.split("_", 1)[0].upper()
    if name_spk.upper() in SPEAKERS or folder_spk not in SPEAKERS or not rest:
        return stem
    one_off = {folder_spk[:i] + folder_spk[i + 1:] for i in range(len(folder_spk))}
    return f"{folder_spk}_{rest}" if name_spk.upper() in one_off else stem


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """Scan ``root`` for TESS files: ``(rows, problems)`` as :func:`emospec.data.ravdess.prepare`.

    The speaker comes from the file name, or from the folder when the name
    lacks one of its letters (:func:`speaker_fix`).
    """
    root = require_dir(root, "TESS")

    def row(p: Path) -> Utterance:
        emotion, spk, word = parse_name(speaker_fix(p.stem, p.parent.name))
        uid = f"{spk}_{word}_{p.stem.rsplit('_', 1)[1].lower()}"
        return Utterance(str(p), "tess", uid, f"tess_{spk}", "f", emotion, to_label4(emotion, mapping))

    rows, problems = parse_files(audio_files(root, "*_*/*"), row)
    return finish("TESS", root, rows, problems, layout=LAYOUT)
