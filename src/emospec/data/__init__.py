"""Corpora, manifests, splits and the feature cache.

Loaders (one module per corpus, all reached through
:func:`emospec.data.corpora.prepare_corpus`) return ``(rows, problems)``:
manifest rows and one ``path: reason`` line per skipped item. Splits live in
:mod:`emospec.data.splits`, the feature cache in :mod:`emospec.data.cache`
and feature computation in :mod:`emospec.data.dataset`; they are not imported
here, so ``import emospec.data`` stays light (no torch, no scikit-learn).
"""

from .cache import FeatureCache, default_cache_dir
from .labels import CLASSES4, FOUR_CLASS, parse_classes, parse_map, relabel, to_label4
from .manifest import MANIFEST_COLUMNS, Utterance, parse_manifest, read_manifest, write_manifest

__all__ = [
    "CLASSES4",
    "FOUR_CLASS",
    "MANIFEST_COLUMNS",
    "FeatureCache",
    "Utterance",
    "default_cache_dir",
    "parse_classes",
    "parse_manifest",
    "parse_map",
    "read_manifest",
    "relabel",
    "to_label4",
    "write_manifest",
]
