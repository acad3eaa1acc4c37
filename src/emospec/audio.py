"""Decode any audio libsndfile reads into a mono float32 waveform at a target rate.

Decoding uses :mod:`soundfile` (WAV of any bit depth, FLAC, OGG/Vorbis, Opus,
MP3 where the libsndfile build has it, AIFF — the container is sniffed from the
bytes, so an AIFF named ``.wav`` loads), channels are averaged to mono, and the
rate is converted with :mod:`soxr` (VHQ). Every failure is an
:class:`~emospec.errors.AudioError` whose one-line message names the file and
the cause.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

__all__ = ["AudioInfo", "load", "info", "resample", "to_mono", "stream_blocks", "describe_source"]

log = logging.getLogger(__name__)

Source = Union[str, os.PathLike, BinaryIO, bytes]


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds without decoding it: rate (Hz), channels, frames, duration (s)."""

    path: str
    sample_rate_hz: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / float(self.sample_rate_hz) if self.sample_rate_hz else 0.0


def describe_source(source: Source) -> str:
    """A printable name for a path, file object or bytes (for error messages)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, (str, bytes)) else "<file object>"


class _LenientSeek:
    """A file object whose failing seeks leave the position unchanged (as ``lseek`` does).

    libsndfile asks for negative offsets on some malformed files; a file
    object's ``seek`` then raises inside soundfile's C callback, where the
    exception can only be printed. Here the seek fails quietly, the position
    stays put, and libsndfile sees that the seek did not land.
    """

    def __init__(self, f: BinaryIO):
        self._f = f

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._f.seek(offset, whence)
        except (OSError, ValueError):
            return self._f.tell()

    def __getattr__(self, name: str):
        return getattr(self._f, name)


def _open_target(source: Source):
    """Return something soundfile can open, checking paths first for clear errors."""
    name = describe_source(source)
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise AudioError(f"{name}: empty input (0 bytes)")
        return _LenientSeek(io.BytesIO(bytes(source)))
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_symlink() and not p.exists():
            raise AudioError(f"{name}: broken symbolic link")
        if not p.exists():
            raise AudioError(f"{name}: file not found")
        if p.is_dir():
            raise AudioError(f"{name}: is a directory, not an audio file")
        try:  # really open it (os.access answers for the real uid, and root passes it regardless)
            with open(p, "rb") as f:
                size = os.fstat(f.fileno()).st_size
        except PermissionError as e:
            raise AudioError(f"{name}: permission denied") from e
        except OSError as e:
            raise AudioError(f"{name}: cannot open ({e.strerror or e})") from e
        if size == 0:
            raise AudioError(f"{name}: empty file (0 bytes)")
        # bytes: soundfile encodes str paths as strict UTF-8, which fails on names that are not UTF-8
        return os.fsencode(p)
    return _LenientSeek(source)


def _sf_error(name: str, e: Exception) -> AudioError:
    msg = str(e).replace("\n", " ").strip()
    # soundfile repeats the path (or b'path') in its message: keep only the cause.
    msg = re.sub(r"^Error opening .*?: (?=\S)", "", msg, count=1) if msg.startswith("Error opening ") else msg
    return AudioError(f"{name}: not a readable audio file ({msg})")


def info(source: Source) -> AudioInfo:
    """Read a file's header: sample rate, channels, frames, duration.

    An MP3 whose header claims more audio than its bytes can hold (a damaged
    Xing header: :data:`MP3_MAX_S_PER_BYTE`) is decoded once, a block at a
    time, and its frames counted, so ``duration_s`` is what :func:`load` returns.

    Raises
    ------
    AudioError
        If the file is missing, unreadable or not audio.
    """
    name = describe_source(source)
    target = _open_target(source)
    try:
        with sf.SoundFile(target) as f:
            frames = int(f.frames)
            if f.format == "MP3" and frames / max(f.samplerate, 1) > MP3_MAX_S_PER_BYTE * _byte_size(source):
                log.warning("%s: the MP3 header claims %.0f s, more than its bytes can hold; counting the frames",
                            name, frames / f.samplerate)
                frames = _count_frames(f)
            return AudioInfo(name, int(f.samplerate), int(f.channels), frames, f.format, f.subtype)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _sf_error(name, e) from e


MP3_MAX_S_PER_BYTE = 2 * 8 / 8000
"""Seconds of audio an MP3 byte can carry, at most: twice the lowest MPEG bit rate's (8 kbit/s, MPEG-2.5)."""


def _byte_size(source: Source) -> int:
    """The size of ``source`` in bytes (a file object's from its end; its position is kept)."""
    if isinstance(source, (bytes, bytearray)):
        return len(source)
    if isinstance(source, (str, os.PathLike)):
        return os.stat(source).st_size
    pos = source.tell()
    try:
        return source.seek(0, io.SEEK_END)
    finally:
        source.seek(pos)


def _count_frames(f: sf.SoundFile) -> int:
    """Decode ``f`` from its start ``READ_BLOCK_FRAMES`` at a time and count the frames (memory: one block)."""
    f.seek(0)
    n = 0
    while True:
        got = len(f.read(frames=READ_BLOCK_FRAMES, dtype="float32", always_2d=True))
        n += got
        if got < READ_BLOCK_FRAMES:
            return n


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average channels: ``(samples, channels)`` or ``(samples,)`` -> ``(samples,)`` float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise AudioError(f"<waveform>: expected 1-D or 2-D samples, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``(samples,)`` float32 from ``sr_in`` to ``sr_out`` Hz with soxr (VHQ)."""
    if int(sr_in) == int(sr_out) or x.size == 0:
        return np.asarray(x, dtype=np.float32)
    if sr_in <= 0:
        raise AudioError(f"<waveform>: invalid sample rate {sr_in}")
    min_in = math.ceil(sr_in / sr_out)  # fewer input samples would resample to none: pad with silence
    if x.size < min_in:
        x = np.pad(np.asarray(x, dtype=np.float32), (0, min_in - x.size))
    return soxr.resample(np.asarray(x, dtype=np.float32), int(sr_in), int(sr_out), quality="VHQ").astype(
        np.float32, copy=False
    )


def _sanitise(x: np.ndarray, name: str) -> np.ndarray:
    """Reject NaN/Inf; scale down float audio that exceeds full scale.

    Runs on the decoded ``(samples, channels)`` block before channels are
    averaged, so huge float samples cannot overflow the mean.
    """
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(f"{name}: {bad} sample(s) are NaN or infinite")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        log.warning("%s: peak %.3g exceeds full scale; scaled to [-1, 1]", name, peak)
        x = x / peak
    return x


READ_BLOCK_FRAMES = 1 << 20
"""The most frames one read asks soundfile for (about 65 s at 16 kHz, 22 s at 48 kHz)."""


def _read_blocks(f: sf.SoundFile, n: int, dtype: str) -> np.ndarray:
    """Up to ``n`` frames of ``f`` from where it stands (all when ``n < 0``): ``(frames, channels)``.

    soundfile allocates every frame a read asks for, and the frame count comes from the header, which a
    damaged file can get wrong by billions (an MP3 whose Xing count claims a week of audio). Reading
    ``READ_BLOCK_FRAMES`` at a time keeps memory bounded by the audio that is really there, and the
    first short read ends it. (``SoundFile.blocks`` counts down the header's claim instead: on the
    damaged MP3 of ``tests/test_fuzz.py`` it yields a full block of frames per step, 53 M in 51 steps.)
    """
    parts = []
    left = n if n >= 0 else None
    while left is None or left > 0:
        want = READ_BLOCK_FRAMES if left is None else min(READ_BLOCK_FRAMES, left)
        block = f.read(frames=want, dtype=dtype, always_2d=True)
        if len(block):
            parts.append(block)
        if len(block) < want:
            break
        if left is not None:
            left -= len(block)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros((0, f.channels), dtype=dtype)


def load(source: Source, sr: int = 16000, *, offset_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """Decode ``source`` to mono float32 at ``sr`` Hz.

    Parameters
    ----------
    source
        A path, an open binary file object or the file's bytes.
    sr
        Target sample rate in Hz (default 16000).
    offset_s, duration_s
        Optional segment to read, in seconds of the file's own time line.

    Returns
    -------
    np.ndarray
        ``(samples,)`` float32 in [-1, 1].

    Raises
    ------
    AudioError
        One line naming the file and the cause: missing, empty, a directory,
        permission denied, not audio, truncated, NaN/Inf samples.
    """
    name = describe_source(source)
    target = _open_target(source)
    try:
        with sf.SoundFile(target) as f:
            file_sr = int(f.samplerate)
            start = int(round(max(0.0, offset_s) * file_sr))
            if start:
                f.seek(min(start, f.frames))
            n = -1 if duration_s is None else int(round(duration_s * file_sr))
            # float64 files may hold values past float32's range: scale them before narrowing
            dtype = "float64" if f.subtype == "DOUBLE" else "float32"
            data = _read_blocks(f, n, dtype)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _sf_error(name, e) from e
    if data.size == 0 and duration_s is None and offset_s == 0.0:
        raise AudioError(f"{name}: no audio samples (zero-length stream)")
    x = to_mono(_sanitise(data, name))
    return resample(x, file_sr, sr)


def stream_blocks(path: Source, sr: int, block_s: float, *, overlap_s: float = 0.0) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(start_s, block)`` pieces of a long file without loading it whole.

    Each block is ``(samples,)`` float32 mono at ``sr`` Hz covering
    ``block_s + overlap_s`` seconds (the last may be shorter); consecutive blocks
    start ``block_s`` seconds apart. Memory stays bounded by one block.
    """
    name = describe_source(path)
    target = _open_target(path)
    try:
        with sf.SoundFile(target) as f:
            file_sr = int(f.samplerate)
            step = max(1, int(round(block_s * file_sr)))
            extra = int(round(overlap_s * file_sr))
            start = 0
            dtype = "float64" if f.subtype == "DOUBLE" else "float32"  # as in load()
            while start < f.frames:
                f.seek(start)
                data = f.read(frames=step + extra, dtype=dtype, always_2d=True)
                if data.size == 0:
                    break
                x = to_mono(_sanitise(data, name))
                yield start / file_sr, resample(x, file_sr, sr)
                start += step
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _sf_error(name, e) from e
