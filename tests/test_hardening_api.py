"""The bad-input corpus through the REST API: every file gets its status, a one-line reason, or a result.

(Random bytes and schema fuzzing are in test_serve.py and test_fuzz.py; this
file checks the deliberate cases one by one.)
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import badinput as B
from emospec.config import FeatureConfig
from emospec.predict import load
from emospec.serve import create_app
from serve_support import LABELS, make_model

UPLOADABLE = [c for c in B.CASES if c.http is not None]


def _strict_json(text: str):
    """Parse JSON refusing NaN/Infinity (which browsers' JSON.parse rejects)."""

    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return B.build(tmp_path_factory.mktemp("bad") / "corpus", UPLOADABLE)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    rec = load(make_model(tmp_path_factory.mktemp("model") / "model.pt"), device="cpu")
    with TestClient(create_app(rec)) as c:  # the default limits: 25 MB, 300 s
        yield c


@pytest.mark.parametrize("case", UPLOADABLE, ids=[c.name for c in UPLOADABLE])
def test_upload(client, corpus, case):
    path = corpus[case.name]
    r = client.post("/api/v1/predict", files={"file": (path.name, path.read_bytes())})
    assert r.status_code == case.http, r.text
    body = _strict_json(r.text)
    if case.http != 200:
        assert set(body) == {"error", "detail"} and body["error"] == case.http_error, body
        assert "\n" not in body["detail"] and path.name in body["detail"], body
        if case.http_error in ("unsupported media", "undecodable audio"):  # the loader's own cause
            assert f"{path.name}: " in body["detail"] and case.error in body["detail"], body
        return
    if case.silent:  # silence is not an emotion: no label, no scores
        assert (body["label"], body["scores"], body["predictions"]) == (None, {}, [])
    else:
        assert body["label"] in LABELS and sum(body["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["silent"] is case.silent and body["source"] == path.name
    assert body["duration_s"] == pytest.approx(case.samples / B.SR)


@pytest.mark.parametrize("case", [c for c in UPLOADABLE if c.http != 200], ids=lambda c: c.name)
def test_raw_body_refusals_match_multipart(client, corpus, case):
    r = client.post("/api/v1/predict", content=corpus[case.name].read_bytes())
    assert r.status_code == case.http and r.json()["error"] == case.http_error, r.text


def test_embed_and_features_on_odd_but_valid_input(client, corpus):
    for name in ("one_sample", "ten_ms", "digital_silence", "dc_offset", "six_channels"):
        data = corpus[name].read_bytes()
        e = client.post("/api/v1/embed", content=data)
        assert e.status_code == 200 and e.json()["dim"] == 256, (name, e.text)
        f = client.post("/api/v1/features?max_frames=16", content=data)
        assert f.status_code == 200, (name, f.text)
        body = _strict_json(f.text)
        assert body["n_mels"] == FeatureConfig().n_mels and body["frames"] == min(16, body["source_frames"]) >= 1


def test_non_utf8_upload_name_is_answered(client, corpus):
    """A multipart file name in Latin-1 bytes (old clients send them raw): answered, the name kept printable."""
    data = corpus["wav_float"].read_bytes()
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"caf\xe9.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\n" + data + b"\r\n--b0undary--\r\n")
    r = client.post("/api/v1/predict", content=body, headers={"content-type": "multipart/form-data; boundary=b0undary"})
    assert r.status_code == 200, r.text
    assert r.json()["source"].startswith("caf") and r.json()["source"].endswith(".wav")
    assert r.json()["source"].isprintable()
