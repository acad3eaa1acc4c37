"""The four-class mapping, in one table.

Every corpus loader maps its own label through :data:`FOUR_CLASS` to one of
:data:`CLASSES4` (or to ``""`` when the label is outside them). Excited merges
into happy (as the paper does for IEMOCAP); calm (RAVDESS) stays out unless a
run maps it in with ``--map calm=neutral``.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

from ..errors import ConfigError

__all__ = ["CLASSES4", "FOUR_CLASS", "to_label4", "parse_map"]

CLASSES4 = ("neutral", "happy", "angry", "sad")

FOUR_CLASS: Dict[str, str] = {
    # canonical English names used by the loaders
    "neutral": "neutral",
    "happy": "happy",
    "excited": "happy",
    "joy": "happy",
    "happiness": "happy",
    "angry": "angry",
    "anger": "angry",
    "sad": "sad",
    "sadness": "sad",
}


def to_label4(label: str, mapping: Optional[Mapping[str, str]] = None) -> str:
    """Map a corpus label (canonical English name) to a four-class label or ``""``.

    ``mapping`` entries override :data:`FOUR_CLASS` (e.g. ``{"calm": "neutral"}``).
    """
    key = label.strip().lower()
    if mapping and key in mapping:
        return mapping[key]
    return FOUR_CLASS.get(key, "")


def parse_map(text: str) -> Dict[str, str]:
    """Parse ``'calm=neutral,Angry=angry'`` into ``{'calm': 'neutral', 'angry': 'angry'}``.

    Keys are lower-cased; an empty value (``'surprised='``) drops that label.
    """
    out: Dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError(f"--map: {part!r} is not of the form LABEL=CLASS")
        k, v = part.split("=", 1)
        out[k.strip().lower()] = v.strip().lower()
    return out
