"""Corpora, manifests and splits."""

from .labels import CLASSES4, FOUR_CLASS, parse_map, to_label4
from .manifest import MANIFEST_COLUMNS, Utterance, read_manifest, write_manifest

__all__ = [
    "CLASSES4",
    "FOUR_CLASS",
    "MANIFEST_COLUMNS",
    "Utterance",
    "parse_map",
    "read_manifest",
    "to_label4",
    "write_manifest",
]
