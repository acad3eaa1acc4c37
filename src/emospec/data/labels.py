"""The four-class mapping, in one table, and the per-run changes to it.

Every corpus loader keeps the corpus's own label (``label``: RAVDESS
``angry``, EMOVO ``anger``, IEMOCAP ``excited``, ...) and maps it through
:func:`to_label4` to one of the run's classes (``label4``; ``""`` when the
label is outside them). The mapping is :data:`FOUR_CLASS`; excited merges into
happy (as the paper does for IEMOCAP); calm (RAVDESS) stays out unless a run
maps it in with ``--map calm=neutral``. :data:`SYNONYMS` only normalises
spelling (``anger`` -> ``angry``, ``fear`` -> ``fearful``) so that a run with
more classes (``--classes neutral,happy,angry,sad,fearful``) finds the same
emotion under every corpus's word for it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError

__all__ = [
    "CLASSES4",
    "FOUR_CLASS",
    "SYNONYMS",
    "canonical",
    "to_label4",
    "parse_map",
    "parse_classes",
    "relabel",
]

CLASSES4: Tuple[str, ...] = ("neutral", "happy", "angry", "sad")

FOUR_CLASS: Dict[str, str] = {
    "neutral": "neutral",
    "happy": "happy",
    "excited": "happy",
    "angry": "angry",
    "sad": "sad",
}
"""Canonical emotion name -> four-class label: the one mapping table."""

SYNONYMS: Dict[str, str] = {
    "joy": "happy",
    "happiness": "happy",
    "anger": "angry",
    "sadness": "sad",
    "fear": "fearful",
    "surprise": "surprised",
    "pleasant_surprise": "surprised",
    "disgusted": "disgust",
    "boredom": "bored",
    "frustration": "frustrated",
}
"""A corpus's word for an emotion -> the canonical name (spelling only, no merging)."""


def canonical(label: str) -> str:
    """``'Pleasant Surprise'`` -> ``'surprised'``: lower-case, ``_`` for spaces/hyphens, synonyms."""
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    return SYNONYMS.get(key, key)


def to_label4(label: str, mapping: Optional[Mapping[str, str]] = None, classes: Sequence[str] = CLASSES4) -> str:
    """Map a corpus label to one of ``classes`` or ``""``.

    ``mapping`` entries (keys lower-case, as :func:`parse_map` gives them)
    override :data:`FOUR_CLASS`, looked up by the label as written and then by
    its canonical name; a label whose canonical name is itself in ``classes``
    maps to itself. Anything that does not land in ``classes`` gives ``""``.

    Examples
    --------
    >>> to_label4("excited"), to_label4("calm"), to_label4("calm", {"calm": "neutral"})
    ('happy', '', 'neutral')
    >>> to_label4("fear", classes=("neutral", "fearful"))
    'fearful'
    """
    raw = label.strip().lower()
    canon = canonical(label)
    if mapping:
        for key in (raw, raw.replace(" ", "_").replace("-", "_"), canon):
            if key in mapping:
                out = mapping[key]
                return out if out in classes else ""
    out = FOUR_CLASS.get(canon, canon)
    return out if out in classes else ""


def parse_map(text: str) -> Dict[str, str]:
    """Parse ``'calm=neutral,Angry=angry'`` into ``{'calm': 'neutral', 'angry': 'angry'}``.

    Keys and values are lower-cased; an empty value (``'surprised='``) drops that label.
    """
    out: Dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError(f"--map: {part!r} is not of the form LABEL=CLASS")
        k, v = part.split("=", 1)
        if not k.strip():
            raise ConfigError(f"--map: {part!r} has an empty label before '='")
        out[k.strip().lower()] = v.strip().lower()
    return out


def parse_classes(text: str) -> Tuple[str, ...]:
    """Parse ``'neutral,happy,angry,sad'`` into a tuple of at least two distinct class names."""
    names = [c.strip().lower() for c in text.split(",") if c.strip()]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ConfigError(f"--classes: {dup} listed more than once")
    if len(names) < 2:
        raise ConfigError(f"--classes: need at least two classes, got {names}")
    return tuple(names)


def relabel(rows: Sequence, mapping: Optional[Mapping[str, str]] = None, classes: Sequence[str] = CLASSES4) -> List:
    """``rows`` (manifest :class:`~emospec.data.manifest.Utterance`) with ``label4`` recomputed from ``label``."""
    return [replace(r, label4=to_label4(r.label, mapping, classes)) for r in rows]
