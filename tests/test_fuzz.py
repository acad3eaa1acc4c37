"""Abuse: the audio loader on random and mutated bytes (hypothesis), the API against its schema (schemathesis).

The loader may refuse anything, but only with an :class:`AudioError` (one
line); what it returns is always mono float32, finite, within [-1, 1]. The
server is a real ``emospec serve`` on 127.0.0.1: no generated request may get
a 5xx, and the process must still be alive and healthy afterwards.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings, strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

import badinput as B
from emospec import audio
from emospec.errors import AudioError
from serve_support import make_model, serve_process

HEADERS = [b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00",
           b"RF64", b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"FORM\x00\x00\x00\x00AIFF", b"FORM\x00\x00\x00\x00AIFC",
           b"ID3\x04\x00\x00", b"\xff\xfb\x90\x64", b".snd", b"caff", b"NIST_1A\n   1024\n", b"MATLAB 5.0"]
"""Magic numbers of formats libsndfile sniffs, so random tails reach the format parsers."""

SEEDS = {
    "pcm16": B.wav_bytes(B.tone(0.05)),
    "float_stereo": B.wav_bytes(np.stack([B.tone(0.05), B.tone(0.05)], 1), subtype="FLOAT"),
    "flac": B.wav_bytes(B.tone(0.05), fmt="FLAC"),
    "aiff": B.wav_bytes(B.tone(0.05), fmt="AIFF"),
    "ogg": B.wav_bytes(B.tone(0.05), fmt="OGG", subtype="VORBIS") if B.VORBIS_OK else b"OggS",
    "mp3": B.wav_bytes(B.tone(0.1), fmt="MP3", subtype="MPEG_LAYER_III") if B.MP3_OK else b"ID3",
}
"""Small valid files of each container, to be mutated."""


def _loads_or_refuses(data: bytes) -> None:
    try:
        x = audio.load(data)
    except AudioError as e:
        msg = str(e)
        assert msg.startswith(f"<{len(data)} bytes>: ") and "\n" not in msg, msg
        return
    assert x.dtype == np.float32 and x.ndim == 1 and x.size >= 1
    assert np.all(np.isfinite(x)) and float(np.max(np.abs(x))) <= 1.0


@pytest.mark.skipif(not B.MP3_OK, reason="this libsndfile has no MP3 support")
def test_info_counts_the_frames_of_an_mp3_whose_header_claims_more_than_its_bytes_hold(monkeypatch, tmp_path):
    """The same damaged MP3: its header says 603,980 s in 1,476 bytes. ``info`` (what the REST API's duration
    limit and ``timeline`` read) reports the frames ``load`` decodes, for bytes, a path and a file object."""
    import io

    blob = bytearray(SEEDS["mp3"])
    blob[21] = 1
    path = tmp_path / "damaged.mp3"
    path.write_bytes(bytes(blob))
    decoded = audio.load(bytes(blob), sr=B.SR).size
    assert 0.05 * B.SR < decoded < 0.2 * B.SR
    for source in (bytes(blob), path, io.BytesIO(bytes(blob))):
        head = audio.info(source)
        assert head.frames == decoded and head.duration_s == pytest.approx(decoded / B.SR)
    monkeypatch.setattr(audio, "_count_frames", lambda f: pytest.fail("an intact MP3 was decoded"))
    assert audio.info(SEEDS["mp3"]).frames == audio.load(SEEDS["mp3"], sr=B.SR).size  # the header is believed


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.sampled_from(HEADERS), tail=st.binary(max_size=2048))
def test_random_bytes_load_or_raise_audio_error(header, tail):
    _loads_or_refuses(header + tail)


@pytest.mark.skipif(not B.MP3_OK, reason="this libsndfile has no MP3 support")
def test_an_mp3_whose_header_claims_billions_of_frames_loads_what_is_there(monkeypatch):
    """Found by the test below: byte 21 of a 0.1 s MP3 set to 1 makes its Xing header claim 9.7e9 frames, and
    one read of "all frames" asked numpy for 36 GiB. Reading in blocks returns the audio that is there."""
    import io

    import soundfile as sf

    blob = bytearray(SEEDS["mp3"])
    blob[21] = 1
    with sf.SoundFile(io.BytesIO(bytes(blob))) as f:
        assert f.frames > 10**9  # the damaged claim
    asked = []
    read = sf.SoundFile.read
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, frames=-1, **kw: asked.append(frames) or read(self, frames, **kw))
    x = audio.load(bytes(blob))
    assert x.dtype == np.float32 and 0.05 * B.SR < x.size < 0.2 * B.SR  # about the 0.1 s that was encoded
    assert asked and all(0 < a <= audio.READ_BLOCK_FRAMES for a in asked)  # never "every frame the header claims"
    pcm, segment = audio.load(SEEDS["pcm16"]), audio.load(SEEDS["pcm16"], offset_s=0.01, duration_s=0.023)
    monkeypatch.setattr(audio, "READ_BLOCK_FRAMES", 100)  # many blocks: the same samples, in order
    np.testing.assert_array_equal(audio.load(SEEDS["pcm16"]), pcm)
    np.testing.assert_array_equal(audio.load(SEEDS["pcm16"], offset_s=0.01, duration_s=0.023), segment)
    assert segment.size == round(0.023 * B.SR)
    # mpg123 decodes in float: block sizes move the last bit of a few samples
    np.testing.assert_allclose(audio.load(bytes(blob)), x, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_files_load_or_raise_audio_error(seed, data):
    """Real files with bytes overwritten, and cut short: the cases a parser is most likely to trip on."""
    blob = bytearray(SEEDS[seed])
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=8))
    for pos, value in edits:
        blob[pos] = value
    cut = data.draw(st.integers(0, len(blob)))
    _loads_or_refuses(bytes(blob[:cut]) if cut else bytes(blob))


@settings(max_examples=100, deadline=None)
@given(header=st.sampled_from(HEADERS), tail=st.binary(max_size=512))
def test_random_bytes_header_or_audio_error(header, tail):
    try:
        head = audio.info(header + tail)
    except AudioError:
        return
    assert head.channels >= 1 and head.sample_rate_hz >= 1 and head.frames >= 0


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_files_stream_or_raise_audio_error(seed, data):
    """The streaming reader (long recordings, timelines) obeys the same rule, block by block."""
    blob = bytearray(SEEDS[seed])
    for pos, value in data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=8)):
        blob[pos] = value
    try:
        for start, block in audio.stream_blocks(bytes(blob), B.SR, 0.01):
            assert start >= 0.0 and block.dtype == np.float32 and np.all(np.isfinite(block))
            assert float(np.max(np.abs(block), initial=0.0)) <= 1.0
    except AudioError as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".csv", ".json"]),
       head=st.sampled_from([b"", b"path,label\n", b"path,label,speaker,duration_s\n", b"[", b"{", b'[{"path": ']),
       body=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass"))))
@example(suffix=".csv", head=b"path,label\n", body=b'"a\nb",\n"c.wav",angry\n')  # a line break inside a quoted field
def test_random_manifests_parse_or_raise_data_error(tmp_path_factory, suffix, head, body):
    """A label file of any bytes: rows and one-line problems, or a one-line DataError naming it; nothing else."""
    from emospec.data.manifest import parse_manifest
    from emospec.errors import DataError

    path = tmp_path_factory.mktemp("m") / f"labels{suffix}"
    path.write_bytes(head + body)
    try:
        rows, problems = parse_manifest(path)
    except DataError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e), str(e)
        return
    assert all("\n" not in p for p in problems)
    for r in rows:
        assert r.path and r.label and not (r.duration_s < 0)


# --------------------------------------------------------------------------- the API, against its own schema
@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    model = make_model(tmp_path_factory.mktemp("fuzz") / "model.pt")
    with serve_process(model, "--max-upload-mb", "1", "--max-duration-s", "20", "--max-concurrency", "2") as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(server_url):
    return schemathesis.openapi.from_url(f"{server_url}/openapi.json")


def test_api_never_answers_5xx(api_schema, server_url):
    """Requests generated from the server's own OpenAPI document, valid and invalid, to every operation.

    (Drawn with ``schema.as_strategy`` inside one hypothesis test: schemathesis's
    ``from_fixture`` parametrisation does not run under pytest 9.)
    """
    ops = {f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations()}
    assert {"POST /api/v1/predict", "POST /api/v1/embed", "POST /api/v1/features", "GET /api/v1/health",
            "GET /api/v1/model"} <= ops
    seen: dict = {}
    strategy = st.one_of(api_schema.as_strategy(GenerationMode.POSITIVE), api_schema.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=strategy)
    def run(case):
        response = case.call(timeout=60)
        seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500, response.text

    run()
    assert set(seen) == ops  # every operation was exercised...
    assert {415, 422} <= set().union(*seen.values())  # ...with bodies refused for the right reasons


def test_server_survives_the_fuzzing(server_url):
    """Runs after the schema tests (file order): the same process still answers, with valid results."""
    h = httpx.get(f"{server_url}/api/v1/health", timeout=10)
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["busy"] == 0
    r = httpx.post(f"{server_url}/api/v1/predict", content=B.wav_bytes(B.tone(0.5)), timeout=60)
    assert r.status_code == 200 and r.json()["silent"] is False
