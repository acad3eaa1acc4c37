"""What every corpus loader shares: finding audio files, probing them, and the final checks.

A loader parses names/labels into :class:`~emospec.data.manifest.Utterance`
rows and collects ``path: reason`` lines for items it cannot use; then
:func:`finish` drops duplicate utterance ids, reads each file's header
(:func:`emospec.audio.info`: rate and frame count, no decoding) to fill
``duration_s``, drops missing / unreadable / zero-length files, and raises
:class:`~emospec.errors.DataError` when nothing, or only one class, is left.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Tuple

from ..audio import info
from ..errors import AudioError, DataError
from .manifest import Utterance

__all__ = ["AUDIO_EXTS", "audio_files", "require_dir", "parse_files", "probe", "drop_duplicates", "finish", "Scan"]

log = logging.getLogger(__name__)

AUDIO_EXTS = {".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3", ".opus", ".au", ".w64", ".caf"}
"""File extensions the loaders pick up (anything libsndfile reads; the container is sniffed on decode)."""

Scan = Tuple[List[Utterance], List[str]]


def require_dir(root: str | os.PathLike, corpus: str) -> Path:
    """``root`` as a Path; a :class:`DataError` naming it if it is not a folder."""
    p = Path(root)
    if not p.is_dir():
        raise DataError(f"{p}: {corpus} root is not a folder" + ("" if p.exists() else " (does not exist)"))
    return p


def audio_files(root: Path, pattern: str) -> List[Path]:
    """Files under ``root`` matching ``pattern`` with an audio extension, sorted; hidden files skipped.

    Broken symbolic links are kept (the probe reports them as missing audio).
    """
    out = []
    for p in root.glob(pattern):
        if p.name.startswith(".") or p.suffix.lower() not in AUDIO_EXTS:
            continue
        if p.is_dir():
            continue
        out.append(p)
    return sorted(out)


def parse_files(files: Iterable[Path], parse: Callable[[Path], Utterance]) -> Scan:
    """``parse`` each file into a row; a :class:`DataError` from it becomes a ``path: reason`` line."""
    rows, problems = [], []
    for p in files:
        try:
            rows.append(parse(p))
        except DataError as e:
            problems.append(f"{p}: {e}")
    return rows, problems


def probe(rows: Iterable[Utterance]) -> Scan:
    """Fill ``duration_s`` (s) from each file's header; drop missing, unreadable and zero-length files."""
    kept, problems = [], []
    for r in rows:
        if not os.path.exists(r.path):
            why = "broken symbolic link" if os.path.islink(r.path) else "file not found"
            problems.append(f"{r.path}: missing audio ({why})")
            continue
        try:
            head = info(r.path)
        except AudioError as e:
            problems.append(str(e))
            continue
        if head.frames <= 0:
            problems.append(f"{r.path}: zero-length audio (0 samples)")
            continue
        kept.append(replace(r, duration_s=head.duration_s))
    return kept, problems


def drop_duplicates(rows: Iterable[Utterance]) -> Scan:
    """Keep the first row of each ``(corpus, utterance_id)``; one problem line per later duplicate."""
    first: Dict[Tuple[str, str], str] = {}
    kept, problems = [], []
    for r in rows:
        key = (r.corpus, r.utterance_id)
        if key in first:
            problems.append(f"{r.path}: duplicate utterance id {r.utterance_id!r} (kept {first[key]})")
            continue
        first[key] = r.path
        kept.append(r)
    return kept, problems


def finish(corpus: str, root: str | os.PathLike, rows: List[Utterance], problems: List[str], *, layout: str,
           check_audio: bool = True) -> Scan:
    """The common tail of every loader: de-duplicate, probe audio, check something usable is left.

    Parameters
    ----------
    corpus
        Name for messages (``"RAVDESS"``).
    root
        The corpus root, for messages.
    rows, problems
        What the loader parsed, and the items it already skipped.
    layout
        The expected layout, for the "nothing found" message.
    check_audio
        Probe the files (default). ``False`` keeps rows as they are (label tables without audio).

    Raises
    ------
    DataError
        If no row is left, or every row has the same ``label``.
    """
    rows, dup = drop_duplicates(rows)
    problems = list(problems) + dup
    if check_audio:
        rows, bad = probe(rows)
        problems += bad
    for line in problems:
        log.info("skipped %s", line)
    if not rows:
        why = f"; {len(problems)} item(s) skipped, first: {problems[0]}" if problems else ""
        raise DataError(f"{root}: no usable {corpus} utterances (expected {layout}){why}")
    labels = sorted({r.label for r in rows})
    if len(labels) < 2:
        raise DataError(f"{root}: all {len(rows)} usable {corpus} utterances have one label ({labels[0]!r}); "
                        f"need at least 2 classes")
    return rows, problems
