"""CREMA-D (Cao et al. 2014) in its release layout, with optional crowd voice votes.

``ROOT/AudioWAV/1001_DFA_ANG_XX.wav`` (or the clips directly in ``ROOT``):
actor 1001-1091, sentence code (12 sentences), emotion ``ANG DIS FEA HAP NEU
SAD``, level ``LO MD HI XX``. The speaker is the actor; gender comes from
``VideoDemographics.csv`` when it is found (``ROOT`` or its parent).

The acted label differs from what listeners hear for many clips. With
``votes=True`` the label is the crowd's voice-only vote from
``processedResults/summaryTable.csv`` (column ``VoiceVote``, letters
``A D F H N S``; ties such as ``N:S`` are skipped as ambiguous).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

from ..errors import DataError
from .labels import to_label4
from .manifest import Utterance
from .scan import Scan, audio_files, finish, parse_files, require_dir

__all__ = ["EMOTIONS", "VOTES", "SENTENCES", "LAYOUT", "parse_name", "read_votes", "read_demographics", "prepare"]

EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
VOTES = {"A": "anger", "D": "disgust", "F": "fear", "H": "happy", "N": "neutral", "S": "sad"}
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")
LAYOUT = "AudioWAV/1001_DFA_ANG_XX.wav"
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def parse_name(stem: str) -> Tuple[str, str]:
    """``'1001_DFA_ANG_XX'`` -> ``(acted emotion, actor)`` = ``('anger', '1001')``.

    Raises
    ------
    DataError
        If the name does not follow the convention or the emotion code is unknown.
    """
    m = _NAME.match(stem)
    if not m or m.group(2) not in SENTENCES or m.group(4) not in LEVELS:
        raise DataError(f"not a CREMA-D file name ({LAYOUT})")
    if m.group(3) not in EMOTIONS:
        raise DataError(f"unknown label: emotion code {m.group(3)!r} (CREMA-D has {' '.join(EMOTIONS)})")
    return EMOTIONS[m.group(3)], m.group(1)


def read_votes(path: str | os.PathLike) -> Tuple[Dict[str, Tuple[str, ...]], List[str]]:
    """The voice-only vote of each clip in ``summaryTable.csv``.

    Returns
    -------
    votes : dict
        File stem -> winning emotion names (one; several when the crowd tied),
        e.g. ``{'1001_IEO_NEU_XX': ('neutral',), '1001_DFA_SAD_XX': ('neutral', 'sad')}``.
    problems : list of str
        One line per row whose vote is empty or has an unknown letter.
    """
    votes: Dict[str, Tuple[str, ...]] = {}
    problems: List[str] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"FileName", "VoiceVote"} <= set(reader.fieldnames or []):
                raise DataError(f"{path}: needs columns FileName and VoiceVote, has {reader.fieldnames}")
            for n, rec in enumerate(reader, start=2):
                letters = [v.strip() for v in (rec["VoiceVote"] or "").split(":") if v.strip()]
                bad = [v for v in letters if v not in VOTES]
                if not letters or bad:
                    problems.append(f"{path}:{n}: unknown label: voice vote {rec['VoiceVote']!r}")
                    continue
                votes[rec["FileName"].strip()] = tuple(VOTES[v] for v in letters)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the CREMA-D summary table ({e})") from e
    return votes, problems


def read_demographics(path: str | os.PathLike) -> Dict[str, str]:
    """``VideoDemographics.csv`` -> actor id -> ``'m'``/``'f'`` (``''`` when not given)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return {r["ActorID"].strip(): {"male": "m", "female": "f"}.get((r.get("Sex") or "").strip().lower(), "")
                    for r in csv.DictReader(f)}
    except (OSError, UnicodeDecodeError, KeyError) as e:
        raise DataError(f"{path}: cannot read CREMA-D demographics ({e!r})") from e


def _first(*cands: Path) -> Optional[Path]:
    return next((c for c in cands if c.is_file()), None)


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None,
            votes: Union[bool, str, os.PathLike] = False) -> Scan:
    """Scan a CREMA-D release: ``(rows, problems)``.

    Parameters
    ----------
    root
        Folder holding ``AudioWAV/`` (or the clips themselves).
    votes
        ``False``: the acted label. ``True``: the voice vote from
        ``ROOT/processedResults/summaryTable.csv`` (or ``ROOT/summaryTable.csv``);
        a path: that table. Clips without a vote, or with a tied vote, are problem lines.
    """
    root = require_dir(root, "CREMA-D")
    clips = root / "AudioWAV" if (root / "AudioWAV").is_dir() else root
    table: Dict[str, Tuple[str, ...]] = {}
    problems: List[str] = []
    if votes:
        src = Path(votes) if not isinstance(votes, bool) else _first(root / "processedResults" / "summaryTable.csv",
                                                                      root / "summaryTable.csv")
        if src is None:
            raise DataError(f"{root}: voice votes asked for but no processedResults/summaryTable.csv found")
        table, problems = read_votes(src)
    demo_path = _first(root / "VideoDemographics.csv", root.parent / "VideoDemographics.csv")
    genders = read_demographics(demo_path) if demo_path else {}

    def row(p: Path) -> Utterance:
        emotion, actor = parse_name(p.stem)
        if votes:
            won = table.get(p.stem)
            if won is None:
                raise DataError(f"unknown label: no voice vote for {p.stem} in the summary table")
            if len(won) > 1:
                raise DataError(f"voice vote is a tie ({':'.join(won)}); skipped as ambiguous")
            emotion = won[0]
        return Utterance(str(p), "crema-d", p.stem, f"crema-d_{actor}", genders.get(actor, ""), emotion,
                         to_label4(emotion, mapping))

    rows, bad = parse_files(audio_files(clips, "*"), row)
    return finish("CREMA-D", root, rows, problems + bad, layout=LAYOUT)
