"""One entry point for every corpus loader: ``prepare_corpus(name, root)``, and several corpora at once.

Corpus names (``emospec prepare NAME ROOT``, ``emospec train --corpus NAME[:ROOT]``):

=================  ==========================================================
``ravdess``        ``Actor_XX/03-01-EE-II-SS-RR-AA.wav``
``emovo``          ``<spk>/<emo>-<spk>-<sent>.wav``
``nemo``           ``samples/<SPK>_<emotion>_<N>.wav`` + ``data.tsv`` (matched on the stem)
``iemocap``        ``SessionN/...`` release, or the ``df_iemocap.csv`` label table
``crema-d``        ``AudioWAV/1001_DFA_ANG_XX.wav``, acted labels
``crema-d-votes``  the same clips labelled by the crowd's voice-only vote
``tess``           ``{OAF,YAF}_<emotion>/<speaker>_<word>_<emotion>.wav``
``emodb``          ``wav/03a01Fa.wav``
``savee``          ``<speaker>/<code><nn>.wav``
``folder``         ``<label>/[<speaker>/]<file>`` (any names; ``--map`` them)
``manifest``       a CSV/JSON file with at least ``path,label[,speaker]``
=================  ==========================================================
"""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import DataError
from . import cremad, emodb, emovo, folder, iemocap, nemo, ravdess, savee, tess
from .labels import CLASSES4, relabel
from .manifest import Utterance
from .paths import find_data_root
from .scan import drop_duplicates

__all__ = ["LOADERS", "DEFAULT_DIRS", "prepare_corpus", "four_class", "parse_spec", "parse_named_spec", "load_corpora"]

Loader = Callable[..., Tuple[List[Utterance], List[str]]]

LOADERS: Dict[str, Loader] = {
    "ravdess": ravdess.prepare,
    "emovo": emovo.prepare,
    "nemo": nemo.prepare,
    "iemocap": iemocap.prepare,
    "crema-d": cremad.prepare,
    "crema-d-votes": partial(cremad.prepare, votes=True),
    "tess": tess.prepare,
    "emodb": emodb.prepare,
    "savee": savee.prepare,
    "folder": folder.prepare,
    "manifest": folder.prepare_manifest,
}
ALIASES = {"cremad": "crema-d", "crema_d": "crema-d", "emo-db": "emodb", "custom": "manifest"}
DEFAULT_DIRS = {"crema-d-votes": "crema-d"}
"""Folder under the data root for a corpus name, where it is not the name itself."""


def _key(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in LOADERS:
        raise DataError(f"unknown corpus {name!r}; known: {', '.join(LOADERS)}")
    return key


def prepare_corpus(name: str, root: str | os.PathLike, *, mapping: Optional[Mapping[str, str]] = None,
                   classes: Sequence[str] = CLASSES4) -> Tuple[List[Utterance], List[str]]:
    """Scan corpus ``name`` at ``root``: ``(rows, problems)`` (one ``path: reason`` line per skipped item).

    ``label4`` is mapped with ``mapping`` into ``classes`` (default the four classes).
    """
    rows, problems = LOADERS[_key(name)](root, mapping=mapping)
    if tuple(classes) != CLASSES4:
        rows = relabel(rows, mapping, classes)
    return rows, problems


def four_class(rows: List[Utterance], classes: Sequence[str]) -> List[Utterance]:
    """Rows whose ``label4`` is one of ``classes``; a DataError if fewer than two classes remain."""
    kept = [r for r in rows if r.label4 in classes]
    present = sorted({r.label4 for r in kept})
    if not kept:
        raise DataError(f"no utterances with a label in {list(classes)}")
    if len(present) < 2:
        raise DataError(f"only one class ({present[0]}) among {len(kept)} utterances; need at least 2")
    return kept


def parse_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``'ravdess:/data/RAVDESS'`` -> ``('ravdess', '/data/RAVDESS')``; ``'emovo'`` -> ``('emovo', None)``."""
    name, _, root = spec.partition(":")
    return _key(name.strip()), (root or None)


_SET_NAME = re.compile(r"^[\w.-]+$")


def parse_named_spec(spec: str) -> Tuple[str, str, Optional[str]]:
    """``[NAME=]LOADER[:ROOT]`` -> ``(name, loader, root)``: a corpus spec that also names its data set.

    Without ``NAME=`` a ``folder`` (or ``manifest``) set is named after its
    folder (file stem), any other after its loader, so that several folder
    sets get distinct names. The name is used in reports and file names.

    Examples
    --------
    >>> parse_named_spec("folder:/data/calls"), parse_named_spec("emovo"), parse_named_spec("it=emovo:/x")
    (('calls', 'folder', '/data/calls'), ('emovo', 'emovo', None), ('it', 'emovo', '/x'))

    Raises
    ------
    DataError
        If the loader is unknown or ``NAME`` is empty or not made of letters, digits, ``.``, ``_`` and ``-``.
    """
    head, _, root = spec.partition(":")
    given, eq, loader = head.rpartition("=")
    name, root_or_none = _key(loader.strip()), (root or None)
    if eq:
        if not _SET_NAME.match(given.strip()):
            raise DataError(f"{spec!r}: data set name {given.strip()!r} must be letters, digits, '.', '_' or '-'")
        return given.strip(), name, root_or_none
    if name in ("folder", "manifest") and root_or_none:
        path = Path(root_or_none).resolve()
        default = re.sub(r"[^\w.-]+", "_", path.stem if name == "manifest" else path.name).strip("_")
        return default or name, name, root_or_none
    return name, name, root_or_none


def load_corpora(specs: Sequence[str], *, data: Optional[str | os.PathLike] = None,
                 mapping: Optional[Mapping[str, str]] = None,
                 classes: Sequence[str] = CLASSES4) -> Tuple[List[Utterance], List[str]]:
    """Load several corpora into one manifest.

    Parameters
    ----------
    specs
        ``NAME[:ROOT]`` each; ROOT defaults to ``<data>/<name>`` where
        ``data`` is found by :func:`emospec.data.paths.find_data_root`.
    data, mapping, classes
        The data root, and the label mapping applied to every corpus.

    Returns
    -------
    rows, problems
        All rows in the order given (a ``(corpus, utterance_id)`` seen twice is
        a problem line), and every skipped item.
    """
    if not specs:
        raise DataError("no corpus given")
    rows: List[Utterance] = []
    problems: List[str] = []
    for spec in specs:
        name, root = parse_spec(spec)
        if root is None:
            if name in ("folder", "manifest"):
                raise DataError(f"--corpus {name} needs a path: {name}:PATH")
            sub = DEFAULT_DIRS.get(name, name)
            root = str(find_data_root(data, corpus=sub) / sub)
        r, p = prepare_corpus(name, Path(root), mapping=mapping, classes=classes)
        rows += r
        problems += p
    rows, dup = drop_duplicates(rows)
    return rows, problems + dup
