"""A folder-per-label tree, and a user's own manifest file, as corpora.

Folder tree: ``ROOT/<label>/[<speaker>/]<file>``, any folder names, any
depth below the label folder, any audio extension libsndfile reads. The label
is the first folder's name as written; ``label4`` maps it through
:func:`emospec.data.labels.to_label4` (``Angry`` finds ``angry`` by itself;
other names need ``--map 'Wut=angry,...'``). A file directly under a label
folder has no speaker; one level deeper, that folder is the speaker. The
utterance id is the path relative to ``ROOT`` without its extension.

Manifest: a CSV or JSON file with at least ``path,label`` (see
:mod:`emospec.data.manifest`); the audio it names is checked like a corpus.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

from ..errors import DataError
from .labels import relabel, to_label4
from .manifest import Utterance, parse_manifest
from .scan import Scan, audio_files, finish, parse_files, require_dir

__all__ = ["LAYOUT", "prepare", "prepare_manifest"]

LAYOUT = "<label>/[<speaker>/]<file>.wav"


def prepare(root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """Scan a folder-per-label tree: ``(rows, problems)``; files outside a label folder are problem lines."""
    root = require_dir(root, "folder-per-label")
    corpus = "folder"

    def row(p: Path) -> Utterance:
        rel = p.relative_to(root)
        if len(rel.parts) < 2:
            raise DataError(f"unknown label: file is not inside a label folder ({LAYOUT})")
        if any(part.startswith(".") for part in rel.parts[:-1]):
            raise DataError("inside a hidden folder")
        label = rel.parts[0]
        speaker = f"{corpus}_{rel.parts[1]}" if len(rel.parts) >= 3 else ""
        return Utterance(str(p), corpus, rel.with_suffix("").as_posix(), speaker, "", label, to_label4(label, mapping))

    rows, problems = parse_files(audio_files(root, "**/*"), row)
    return finish("folder-per-label", root, rows, problems, layout=LAYOUT)


def prepare_manifest(path: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None) -> Scan:
    """A user's manifest (CSV/JSON): rows whose audio exists and is readable, ``duration_s`` from the header.

    With ``mapping``, ``label4`` is recomputed from ``label``; otherwise a
    ``label4`` column is kept as written.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: manifest not found" if not p.exists() else f"{p}: manifest is not a file")
    rows, problems = parse_manifest(p)
    if mapping:
        rows = relabel(rows, mapping)
    return finish("manifest", p, rows, problems, layout="a CSV/JSON with path,label[,speaker]")
