"""An on-disk feature cache: one file per (audio content, feature config).

Layout::

    <cache dir>/v1-<config hash>/config.json        the FeatureConfig, for people
    <cache dir>/v1-<config hash>/<ab>/<audio sha256>.feat

* The key is the SHA-256 of the audio file's **bytes** plus a hash of the
  :class:`~emospec.config.FeatureConfig`; renaming or moving a file keeps its
  entry, editing the audio or changing any feature setting misses.
* A ``.feat`` file is a 48-byte header (8-byte magic ``EMOSPECF``, 8-byte
  little-endian payload length, 32-byte SHA-256 of the payload) and then the
  features as a ``.npy`` payload: ``(3, n_mels, frames)`` float32 dB. A read
  checks the magic, the length, the checksum, the dtype and the shape, and a
  file that fails any check (truncated, corrupted, foreign) is deleted and
  reported as a miss, so it is recomputed, never loaded.
* Writes go to a temporary file in the same folder and are renamed into
  place (:func:`emospec.config.atomic_write_bytes`), so any number of worker
  processes (or machines sharing the folder) may fill one cache: a reader sees
  a whole entry or none, and two writers of one key write the same bytes.

Filling one cache from n machines (``emospec prepare --shard i/n``): mount
one cache folder on every machine (the corpus may sit at any path, keys are
content hashes) and run, on machine i of n::

    emospec prepare ravdess /data/ravdess --features --cache /shared/cache --shard i/n --workers 8

Each computes one of n disjoint round-robin slices of the utterances sorted by
``(corpus, utterance_id)`` (:func:`emospec.data.dataset.shard`); afterwards
``emospec train --cache /shared/cache`` finds every clip cached.

The default folder is ``$EMOSPEC_CACHE`` or ``~/.cache/emospec/features``.
Entries are about ``12 · n_mels · frames`` bytes (RAVDESS: ~0.6 MB a clip);
delete the folder (or one ``v1-*`` subfolder) to reclaim the space.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..config import FeatureConfig, to_dict
from ..errors import AudioError, DataError
from ..files import atomic_write_bytes

__all__ = ["FeatureCache", "default_cache_dir", "audio_digest", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MAGIC = b"EMOSPECF"
_HEADER = struct.Struct("<8sQ32s")  # magic, payload length, sha256(payload)


def default_cache_dir() -> Path:
    """``$EMOSPEC_CACHE`` if set, else ``~/.cache/emospec/features``."""
    env = os.environ.get("EMOSPEC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emospec" / "features"


def audio_digest(path: str | os.PathLike) -> Tuple[str, bytes]:
    """``(sha256 hex, bytes)`` of an audio file's content.

    Raises
    ------
    AudioError
        If the file cannot be read (missing, a directory, permission denied).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as e:
        raise AudioError(f"{path}: file not found") from e
    except IsADirectoryError as e:
        raise AudioError(f"{path}: is a directory, not an audio file") from e
    except OSError as e:
        raise AudioError(f"{path}: cannot read ({e.strerror or e})") from e
    return hashlib.sha256(data).hexdigest(), data


@dataclass(frozen=True)
class FeatureCache:
    """Features on disk, keyed by audio content and :class:`FeatureConfig`.

    Parameters
    ----------
    root
        Cache folder (created on first write).
    config
        The feature configuration every entry in this view was computed with.
    """

    root: Path
    config: FeatureConfig = FeatureConfig()

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser())
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"{self.root}: cache location exists and is not a folder")

    @property
    def config_hash(self) -> str:
        """16 hex digits of SHA-256 over the config's JSON (sorted keys) and the format version."""
        blob = json.dumps({"format": FORMAT_VERSION, **to_dict(self.config)}, sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def folder(self) -> Path:
        """Where this config's entries live: ``root/v1-<config hash>``."""
        return self.root / f"v{FORMAT_VERSION}-{self.config_hash}"

    def entry(self, digest: str) -> Path:
        """The file for audio content ``digest`` (sha256 hex)."""
        return self.folder / digest[:2] / f"{digest}.feat"

    def load(self, digest: str) -> Optional[np.ndarray]:
        """The cached ``(3, n_mels, frames)`` float32 dB array, or ``None`` (absent, or corrupt and deleted)."""
        path = self.entry(digest)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("%s: cache entry unreadable (%s); recomputing", path, e)
            return None
        try:
            return self._decode(blob)
        except ValueError as e:
            log.warning("%s: corrupt cache entry (%s); deleted, recomputing", path, e)
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def _decode(self, blob: bytes) -> np.ndarray:
        if len(blob) < _HEADER.size:
            raise ValueError(f"{len(blob)} bytes, shorter than the {_HEADER.size}-byte header")
        magic, n, digest = _HEADER.unpack_from(blob)
        payload = blob[_HEADER.size:]
        if magic != _MAGIC:
            raise ValueError("not an emospec feature file (bad magic)")
        if len(payload) != n:
            raise ValueError(f"payload is {len(payload)} bytes, header says {n} (truncated?)")
        if hashlib.sha256(payload).digest() != digest:
            raise ValueError("checksum mismatch")
        try:
            arr = np.load(io.BytesIO(payload), allow_pickle=False)
        except (OSError, EOFError) as e:
            raise ValueError(f"payload is not a .npy array ({e})") from e
        want = (3, self.config.n_mels)
        if arr.dtype != np.float32 or arr.ndim != 3 or arr.shape[:2] != want or arr.shape[2] < 1:
            raise ValueError(f"holds {arr.dtype} {arr.shape}, expected float32 (3, {self.config.n_mels}, frames)")
        return arr

    def store(self, digest: str, feats: np.ndarray) -> Path:
        """Write ``feats`` (``(3, n_mels, frames)`` float32 dB) for audio ``digest``, atomically."""
        arr = np.ascontiguousarray(feats, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[:2] != (3, self.config.n_mels):
            raise DataError(f"cache: features of shape {arr.shape} do not match (3, {self.config.n_mels}, frames)")
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        payload = buf.getvalue()
        path = self.entry(digest)
        cfg_file = self.folder / "config.json"
        if not cfg_file.exists():
            atomic_write_bytes(cfg_file, (json.dumps(to_dict(self.config), indent=2) + "\n").encode("utf-8"))
        atomic_write_bytes(path, _HEADER.pack(_MAGIC, len(payload), hashlib.sha256(payload).digest()) + payload)
        return path
