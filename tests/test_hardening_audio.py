"""The bad-input corpus through emospec.audio (load, info, stream_blocks) and Recognizer.predict."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import badinput as B
from emospec import audio
from emospec.errors import AudioError
from emospec.predict import Recognizer, load
from serve_support import LABELS, make_model

SMALL = [c for c in B.CASES if not c.heavy]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return B.build(tmp_path_factory.mktemp("bad") / "corpus")


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Recognizer:
    return load(make_model(tmp_path_factory.mktemp("model") / "model.pt"), device="cpu")


def expected_error(case: B.Case, path: Path):
    """The case's expected cause; a chmod-0 file is readable when the OS says so (root)."""
    if case.name == "unreadable" and os.access(path, os.R_OK):
        return None
    return case.error


def test_the_table_has_every_required_case():
    assert len(B.CASES) >= 30 and len(B.BY_NAME) == len(B.CASES)
    required = {"empty_0_bytes", "truncated_header", "truncated_data", "text_named_wav", "html_named_wav",
                "jpeg_named_wav", "aiff_named_wav", "mp3", "ogg_vorbis", "wav_u8", "wav_24bit", "wav_32bit_int",
                "wav_float", "rate_8k", "rate_96k", "six_channels", "nan_samples", "inf_samples",
                "digital_silence", "full_scale_clipping", "float_far_above_1", "dc_offset", "one_sample", "ten_ms",
                "ten_minutes", "directory_named_wav", "broken_symlink", "unreadable", "non_utf8_name"}
    assert required <= set(B.BY_NAME)
    for c in B.CASES:  # a file that loads says how long it is; an error says why
        assert (c.error is None) == (c.samples is not None), c.name


@pytest.mark.parametrize("case", B.CASES, ids=[c.name for c in B.CASES])
def test_load(corpus, case):
    path = corpus[case.name]
    error = expected_error(case, path)
    if error is not None:
        with pytest.raises(AudioError) as ei:
            audio.load(path)
        msg = str(ei.value)
        assert msg.startswith(f"{path}: ") and error in msg and "\n" not in msg, msg
        return
    x = audio.load(path)
    assert x.dtype == np.float32 and x.ndim == 1 and np.all(np.isfinite(x))
    assert float(np.max(np.abs(x))) <= 1.0
    if case.name != "unreadable":
        assert x.size == case.samples
    if case.check is not None:
        case.check(x)


@pytest.mark.parametrize("case", [c for c in SMALL if c.http is not None and c.error is None],
                         ids=lambda c: c.name)
def test_bytes_and_path_decode_alike(corpus, case):
    path = corpus[case.name]
    assert np.array_equal(audio.load(path.read_bytes()), audio.load(path))
    head = audio.info(path)
    assert head.frames >= 1 and head.sample_rate_hz in (8000, 16000, 96000)


def test_non_utf8_name_reads_header_and_streams(corpus):
    path = corpus["non_utf8_name"]
    assert path.name.encode("utf-8", "surrogateescape") == b"caf\xe9-\xff.wav"
    assert audio.info(path).frames == B.SR
    assert sum(b.size for _, b in audio.stream_blocks(path, B.SR, 0.4)) == B.SR


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    """Whoever runs the tests (root reads chmod-0 files), an open that fails gives a clear error."""
    path = tmp_path / "locked.wav"
    path.write_bytes(B.wav_bytes(B.tone()))
    real_open = open

    def deny(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(audio, "open", deny, raising=False)
    with pytest.raises(AudioError, match=r"locked\.wav: permission denied$"):
        audio.load(path)

    def io_error(file, *args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", os.fspath(file))

    monkeypatch.setattr(audio, "open", io_error, raising=False)
    with pytest.raises(AudioError, match=r"locked\.wav: cannot open \(Input/output error\)$"):
        audio.info(path)


def test_chmod_0_follows_the_operating_system(corpus):
    path = corpus["unreadable"]
    assert path.stat().st_mode & 0o777 == 0
    if os.access(path, os.R_OK):  # root: the OS lets us read it, so it loads
        assert audio.load(path).size == B.SR
    else:
        with pytest.raises(AudioError, match="permission denied"):
            audio.load(path)


def test_loud_float_warns_naming_the_file(corpus, caplog):
    with caplog.at_level(logging.WARNING, logger="emospec.audio"):
        audio.load(corpus["float_far_above_1"])
    assert any("loud.wav: peak 5e+05 exceeds full scale" in r.getMessage() for r in caplog.records)


def test_ten_minutes_loads_and_streams_in_bounded_blocks(corpus):
    path = corpus["ten_minutes"]
    head = audio.info(path)
    assert head.duration_s == B.LONG_S and head.frames == int(B.LONG_S * B.SR)
    x = audio.load(path, offset_s=599.0)  # a segment: the last second only
    assert x.size == B.SR and abs(B.peak_hz(x) - B.TONE_HZ) <= 1.0
    starts, sizes = [], set()
    for start, block in audio.stream_blocks(path, B.SR, 60.0):
        starts.append(start)
        sizes.add(block.size)
    assert starts == [60.0 * k for k in range(10)] and sizes == {60 * B.SR}
    assert audio.load(path).size == int(B.LONG_S * B.SR)


@pytest.mark.parametrize("case", SMALL, ids=[c.name for c in SMALL])
def test_predict(corpus, rec, case):
    """Everything that loads is predicted (short clips padded, silence flagged); the rest is an AudioError."""
    path = corpus[case.name]
    error = expected_error(case, path)
    if error is not None:
        with pytest.raises(AudioError, match=re.escape(error)):
            rec.predict(path)
        return
    p = rec.predict(path)
    if case.silent:  # silence is not an emotion: no label, no scores
        assert p.label is None and p.scores == {}
    else:
        assert p.label in LABELS and sum(p.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert p.duration_s == pytest.approx(audio.load(path).size / B.SR)
    assert p.silent is case.silent  # a Python bool, so the result serialises
    d = json.loads(json.dumps(p.to_dict()))
    assert d["silent"] is case.silent and d["label"] == p.label and len(d["embedding"]) == 256


def test_short_clips_are_padded_not_refused(corpus, rec):
    one, ten_ms = rec.predict(corpus["one_sample"]), rec.predict(corpus["ten_ms"])
    assert (one.duration_s, ten_ms.duration_s) == (1 / B.SR, 0.01)
    assert one.silent and not ten_ms.silent  # one sample holds no sound; 10 ms of a tone does
    # the same clip as an array with its rate gives the same numbers (silent: no scores, the same embedding)
    arr = rec.predict(np.array([0.25], dtype=np.float32), sr=B.SR)
    assert arr.scores == one.scores == {} and arr.embedding == pytest.approx(one.embedding, abs=1e-6)
    assert ten_ms.label in LABELS


def test_writing_nothing_next_to_the_inputs(corpus, rec):
    folder = corpus["wav_float"].parent
    before = B.tree(folder)
    for case in SMALL:
        try:
            rec.predict(corpus[case.name])
        except AudioError:
            pass
    assert B.tree(folder) == before


def test_multichannel_order_is_samples_by_channels(tmp_path):
    """A 6-channel file of 10 samples must not be mistaken for 10 channels of 6 samples."""
    p = tmp_path / "six_short.wav"
    sf.write(p, np.tile(np.linspace(-0.5, 0.5, 10)[:, None], (1, 6)), B.SR, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(p), np.linspace(-0.5, 0.5, 10), atol=1e-7)
