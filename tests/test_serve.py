"""The REST API (FastAPI TestClient / httpx): results equal Recognizer's, limits, bad input, concurrency."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from hypothesis import given, settings, strategies as st

from conftest import SR, noise, run_cli, sine
from emospec import cli
from emospec.config import FeatureConfig, to_dict
from emospec.errors import CheckpointError, EmospecError
from emospec.features import extract
from emospec.predict import Recognizer, load
from emospec.serve import create_app
from emospec.serve.analysis import STATIC_RANGE_DB
from emospec.serve.process import serve_subprocess
from serve_support import LABELS, make_model, serve_process, wav_bytes

MB = 2**20


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def rec(model_path) -> Recognizer:
    return load(model_path, device="cpu")


@pytest.fixture(scope="module")
def client(rec) -> TestClient:
    with TestClient(create_app(rec, max_upload_mb=2, max_duration_s=30, max_concurrency=2)) as c:
        yield c


def voice(duration_s: float = 1.5, seed: int = 0) -> np.ndarray:
    """A 220 Hz tone plus seeded noise, ``(samples,)`` float32 at 16 kHz."""
    return (sine(220.0, duration_s, amp=0.3) + noise(duration_s, amp=0.05, seed=seed)).astype(np.float32)


def assert_error(r: httpx.Response, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == error, body
    assert body["detail"] and "\n" not in body["detail"]
    return body


# --------------------------------------------------------------------------- results
def test_predict_multipart_equals_recognizer(client, rec, tmp_path):
    path = tmp_path / "voice.wav"
    path.write_bytes(wav_bytes(voice()))
    want = rec.predict(path)
    with open(path, "rb") as f:
        r = client.post("/api/v1/predict", files={"file": ("voice.wav", f, "audio/wav")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["label"] == want.label
    assert list(got["scores"]) == LABELS
    np.testing.assert_allclose([got["scores"][c] for c in LABELS], [want.scores[c] for c in LABELS], atol=1e-6)
    assert sum(got["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert got["duration_s"] == pytest.approx(1.5)
    assert got["silent"] is False and got["source"] == "voice.wav"
    assert [p["label"] for p in got["predictions"]] == sorted(LABELS, key=lambda c: -want.scores[c])
    assert "embedding" not in got and "timeline" not in got and "features" not in got
    assert got["input"] == {"format": "WAV", "subtype": "PCM_16", "sample_rate_hz": 16000, "channels": 1,
                            "duration_s": 1.5}


def test_predict_raw_body_equals_recognizer(client, rec):
    data = wav_bytes(voice(seed=3), subtype="FLOAT")
    r = client.post("/api/v1/predict", content=data, headers={"content-type": "audio/wav"})
    assert r.status_code == 200, r.text
    want = rec.predict(data)
    assert r.json()["label"] == want.label
    assert r.json()["scores"] == pytest.approx(want.scores, abs=1e-6)
    assert r.json()["source"] == "<request body>"


def test_predict_real_clips_equal_recognizer(client, rec, ravdess_clips, shared_data):
    clips = ravdess_clips[:4] + sorted((shared_data / "ravdess-wav-sample" / "Actor_01").glob("*.wav"))[:1]
    for clip in clips:
        r = client.post("/api/v1/predict", files={"file": (clip.name, clip.read_bytes())})
        assert r.status_code == 200, r.text
        want = rec.predict(clip)
        assert r.json()["label"] == want.label, clip
        assert r.json()["scores"] == pytest.approx(want.scores, abs=1e-6)
        assert r.json()["duration_s"] == pytest.approx(want.duration_s)


def test_silent_clip_is_flagged_and_gets_no_emotion(client):
    r = client.post("/api/v1/predict", content=wav_bytes(np.zeros(SR, dtype=np.float32)))
    assert r.status_code == 200
    got = r.json()
    assert (got["silent"], got["label"], got["scores"], got["predictions"]) == (True, None, {}, [])
    assert got["duration_s"] == pytest.approx(1.0)


def test_ten_seconds_of_digital_silence_has_no_emotion_in_api_cli_and_rest(client, rec, model_path, tmp_path):
    """Silence is not an emotion: the same answer from Recognizer, ``emospec predict --json`` and the REST API."""
    path = tmp_path / "silence.wav"
    path.write_bytes(wav_bytes(np.zeros(10 * SR, dtype=np.float32)))
    voiced = tmp_path / "voice.wav"
    voiced.write_bytes(wav_bytes(voice()))
    api = rec.predict(path)
    assert (api.silent, api.label, api.scores, api.top()) == (True, None, {}, [])
    assert api.duration_s == 10.0 and len(api.embedding) == 256
    d = api.to_dict(top_k=2, embedding=False)
    assert (d["label"], d["scores"], d["predictions"], d["silent"]) == (None, {}, [], True)
    batch = rec.predict_batch([voiced, path, voiced], batch_size=3)  # batched with speech, still no emotion
    assert [b.label for b in batch] == [rec.predict(voiced).label, None, rec.predict(voiced).label]
    assert batch[0].label in LABELS and batch[1].scores == {}
    r = run_cli("-q", "predict", str(path), str(voiced), "--json", "--top-k", "4", "--model", str(model_path))
    assert r.returncode == 0, r.stderr.decode()
    cli_silent, cli_voice = json.loads(r.stdout)["results"]
    assert {k: cli_silent[k] for k in ("label", "scores", "predictions", "silent")} == {
        "label": None, "scores": {}, "predictions": [], "silent": True}
    assert cli_silent["duration_s"] == 10.0 and cli_voice["label"] in LABELS and len(cli_voice["predictions"]) == 4
    got = client.post("/api/v1/predict", files={"file": ("silence.wav", path.read_bytes())}).json()
    assert {k: got[k] for k in ("label", "scores", "predictions", "silent")} == {
        "label": None, "scores": {}, "predictions": [], "silent": True}
    assert got["duration_s"] == pytest.approx(10.0)


def test_timeline_equals_recognizer(client, rec):
    x = np.concatenate([voice(2.0, seed=1), 0.5 * sine(880.0, 3.0), voice(2.5, seed=2)])  # 7.5 s
    r = client.post("/api/v1/predict?timeline=1&window_s=2&hop_s=1", content=wav_bytes(x))
    assert r.status_code == 200, r.text
    got = r.json()["timeline"]
    want = rec.timeline(rec.waveform(wav_bytes(x)), window_s=2.0, hop_s=1.0, sr=SR).to_dict()
    assert got["labels"] == LABELS and got["window_s"] == 2.0 and got["hop_s"] == 1.0
    assert len(got["windows"]) == len(want["windows"]) == 7
    for g, w in zip(got["windows"], want["windows"]):
        assert (g["start_s"], g["end_s"], g["label"]) == (w["start_s"], w["end_s"], w["label"])
        assert g["scores"] == pytest.approx(w["scores"], abs=1e-6)


def test_embed_equals_recognizer(client, rec):
    data = wav_bytes(voice(seed=4))
    r = client.post("/api/v1/embed", files={"file": ("v.wav", data)})
    assert r.status_code == 200, r.text
    assert r.json()["dim"] == 256 and len(r.json()["embedding"]) == 256
    np.testing.assert_allclose(r.json()["embedding"], rec.embed(data), rtol=1e-5, atol=1e-6)


def test_features_image_is_the_pooled_3d_log_mel(client, rec):
    x = voice(2.0, seed=5)
    data = wav_bytes(x)
    r = client.post("/api/v1/features?max_frames=100", content=data)
    assert r.status_code == 200, r.text
    got = r.json()
    wave = rec.waveform(data)
    cfg = FeatureConfig()  # the serve test model's (serve_support.make_model): the default features, 64 bands
    feats = extract(torch.from_numpy(wave), cfg)
    assert (got["n_mels"], got["source_frames"], got["frames"]) == (cfg.n_mels, feats.shape[-1], 100)
    assert got["frame_s"] == pytest.approx(feats.shape[-1] * 0.01 / 100)
    pooled = F.adaptive_avg_pool1d(feats, 100).numpy()
    assert [c["name"] for c in got["channels"]] == ["static", "delta", "delta2"]
    for ch, want in zip(got["channels"], pooled):
        q = np.frombuffer(base64.b64decode(ch["data"]), dtype=np.uint8).reshape(cfg.n_mels, 100)
        lo, hi = ch["lo"], ch["hi"]
        decoded = lo + q / 255.0 * (hi - lo)
        inside = (want >= lo) & (want <= hi)
        assert inside.mean() > 0.9  # only the tails are clipped
        np.testing.assert_allclose(decoded[inside], want[inside], atol=(hi - lo) / 255 / 2 + 1e-4)
    static = got["channels"][0]
    assert static["hi"] == pytest.approx(pooled[0].max(), abs=1e-4)
    assert static["hi"] - static["lo"] == pytest.approx(min(STATIC_RANGE_DB, pooled[0].max() - pooled[0].min()), abs=1e-3)
    both = client.post("/api/v1/predict?features=1&max_frames=100", content=data).json()["features"]
    assert both == {k: v for k, v in got.items() if k not in ("source", "input")}


def test_health_model_card_page_and_docs(client, model_path):
    h = client.get("/api/v1/health").json()
    assert h["status"] == "ok" and h["model"] == "model.pt" and (h["busy"], h["capacity"]) == (0, 2)
    card = client.get("/api/v1/model").json()
    assert card["labels"] == LABELS and card["n_classes"] == 4 and card["sample_rate_hz"] == 16000
    assert card["feature_config"] == to_dict(FeatureConfig())
    assert card["model_config"]["n_classes"] == 4 and card["embedding_dim"] == 256
    assert card["meta"] == {"note": "serve test model", "seed": 0}
    assert card["limits"]["max_upload_mb"] == 2 and card["limits"]["max_duration_s"] == 30
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/app.js"' in page.text
    for name, ctype in (("app.js", "javascript"), ("style.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and ctype in r.headers["content-type"]
        for text in (r.text, page.text):  # no asset from the internet
            assert "https://" not in text and "http://" not in text and "//cdn" not in text
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "application/octet-stream" in body
    assert {"/api/v1/embed", "/api/v1/features", "/api/v1/health", "/api/v1/model"} <= set(spec["paths"])


# --------------------------------------------------------------------------- bad input and limits
def _nan_wav() -> bytes:
    x = voice(0.5)
    x[100] = np.nan
    return wav_bytes(x, subtype="FLOAT")


def _chunks(n_bytes: int, size: int = 64 * 1024):
    for _ in range(n_bytes // size):
        yield b"\0" * size


@pytest.mark.parametrize(
    "kwargs, status, error, in_detail",
    [
        ({"content": b""}, 422, "empty body", "0 bytes"),
        ({"files": {"file": ("e.wav", b"")}}, 422, "empty body", "e.wav"),
        ({"content": b"hello, this is not audio"}, 415, "unsupported media", "not a readable audio file"),
        ({"files": {"file": ("notes.txt", b"just text")}}, 415, "unsupported media", "notes.txt"),
        ({"files": {"audio": ("a.wav", b"RIFF")}}, 422, "missing file", "'audio'"),
        ({"data": {"file": "abc"}, "files": {"x": ("x", b"1")}}, 422, "missing file", "text field"),
        ({"content": b"--zz\r\nabc", "headers": {"content-type": "multipart/form-data"}},
         422, "malformed multipart body", "boundary"),
        ({"content": b"--zz\r\nContent-Type: text/plain\r\n\r\nabc\r\n--zz--\r\n",
          "headers": {"content-type": "multipart/form-data; boundary=zz"}},
         422, "malformed multipart body", "name"),
        ({"content": _nan_wav()}, 422, "undecodable audio", "NaN"),
        ({"content": wav_bytes(np.zeros(0, dtype=np.float32))}, 422, "undecodable audio", "no audio samples"),
        ({"content": b"\0" * (3 * MB)}, 413, "upload too large", "declared body"),
        ({"content": _chunks(3 * MB)}, 413, "upload too large", "request body"),
        ({"files": {"file": ("big.wav", b"\0" * (2 * MB + 1))}}, 413, "upload too large", "big.wav"),
        ({"content": wav_bytes(np.zeros(31 * 8000, dtype=np.float32), sr=8000)}, 413, "audio too long", "31.0 s"),
    ],
    ids=["empty", "empty-part", "text", "text-file", "no-file-part", "file-as-text", "no-boundary", "nameless-part", "nan",
         "zero-frames", "content-length", "chunked", "multipart-too-big", "too-long"],
)
def test_bad_input_gets_json_error(client, kwargs, status, error, in_detail):
    r = client.post("/api/v1/predict", **kwargs)
    assert in_detail in assert_error(r, status, error)["detail"]


def test_bad_parameters_and_routes(client):
    data = wav_bytes(voice())
    assert_error(client.post("/api/v1/predict?window_s=0", content=data), 422, "invalid parameter")
    assert "max_frames" in assert_error(client.post("/api/v1/features?max_frames=5", content=data), 422,
                                        "invalid parameter")["detail"]
    long = wav_bytes(np.zeros(25 * 8000, dtype=np.float32), sr=8000)
    assert "2000" in assert_error(client.post("/api/v1/predict?timeline=1&hop_s=0.01", content=long), 422,
                                  "too many timeline windows")["detail"]
    assert_error(client.get("/api/v1/nothing"), 404, "not found")
    r = client.get("/api/v1/predict")
    assert_error(r, 405, "method not allowed")
    assert r.headers["allow"] == "POST"


@settings(max_examples=40, deadline=None)
@given(prefix=st.sampled_from([b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS\x00\x02", b"FORM", b"ID3"]),
       body=st.binary(min_size=0, max_size=3000), multipart=st.booleans())
def test_random_bytes_never_crash_the_server(client, prefix, body, multipart):
    data = prefix + body
    r = (client.post("/api/v1/predict", files={"file": ("f.bin", data)}) if multipart
         else client.post("/api/v1/predict", content=data))
    assert r.status_code in (200, 413, 415, 422), r.text
    assert ("label" in r.json()) if r.status_code == 200 else (set(r.json()) == {"error", "detail"})


def _fds_under(folder: str) -> list:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(folder):
            out.append(target)
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open files")
def test_uploads_leave_no_files_behind(client, monkeypatch, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    made = []
    real = tempfile.TemporaryFile

    def counting(*args, **kwargs):
        made.append(kwargs.get("dir") or tempfile.gettempdir())
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", counting)
    ok = wav_bytes(np.tile(voice(1.0, seed=6), 20), subtype="FLOAT")  # 1.28 MB: past the 1 MB in-memory spool
    assert len(ok) > MB
    assert client.post("/api/v1/predict", files={"file": ("big.wav", ok)}).status_code == 200
    assert client.post("/api/v1/predict", files={"file": ("x.wav", b"\0" * (2 * MB + 10))}).status_code == 413
    assert client.post("/api/v1/predict", files={"file": ("t.txt", b"x" * (MB + 10))}).status_code == 415
    assert made == [str(spool)] * 3  # each upload went to a temp file there...
    assert list(spool.iterdir()) == [] and _fds_under(str(spool)) == []  # ...which is gone and closed


# --------------------------------------------------------------------------- concurrency
class _Probe(Recognizer):
    """Counts analyses running at once and records their threads; with ``meet=2`` calls meet in pairs."""

    def __init__(self, bundle, meet: int):
        super().__init__(bundle)
        self.lock, self.active, self.peak, self.threads = threading.Lock(), 0, 0, set()
        self.barrier = threading.Barrier(meet, timeout=30) if meet > 1 else None
        self._engine_run = self.engine.run
        self.engine.run = self._run  # every analysis (predict, embed, timeline) goes through engine.run

    def _run(self, waves):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(threading.get_ident())
        try:
            if self.barrier is not None:  # returns only when `meet` analyses run at the same time
                self.barrier.wait()
            return self._engine_run(waves)
        finally:
            with self.lock:
                self.active -= 1


@pytest.mark.parametrize("limit", [1, 2])
def test_inference_runs_in_threads_with_bounded_concurrency(rec, limit):
    probe = _Probe(rec.bundle, meet=limit)
    app = create_app(probe, max_concurrency=limit)
    data = wav_bytes(voice(0.5))
    loop_thread = {}

    async def main():
        loop_thread["id"] = threading.get_ident()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            results = [None] * 8

            async def one(i):
                results[i] = await c.post("/api/v1/predict", content=data)

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
            return results

    results = anyio.run(main)
    assert [r.status_code for r in results] == [200] * 8
    assert probe.peak == limit  # the barrier proves `limit` ran together; the limiter caps it there
    assert loop_thread["id"] not in probe.threads


# --------------------------------------------------------------------------- the CLI
def test_cli_serve_without_a_model_says_to_pass_model(monkeypatch, capsys):
    def no_bundle(model=None, device=None):
        if model is None:
            raise CheckpointError("no model given and no bundled model in this install (emospec/assets/model.pt)")
        return load(model, device=device)

    monkeypatch.setattr("emospec.serve.app.load", no_bundle)
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--model" in err and "no bundled model" in err


def test_cli_serve_bad_model_and_limits(tmp_path, capsys):
    assert cli.main(["serve", "--model", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.pt: file not found" in err
    assert cli.main(["serve", "--model", str(tmp_path / "x.pt"), "--max-upload-mb", "0"]) == 1
    assert "max_upload_mb=0" in capsys.readouterr().err
    r = run_cli("serve", "--help")
    assert r.returncode == 0 and b"--max-duration-s" in r.stdout and b"--max-upload-mb" in r.stdout


def test_serve_subprocess_reports_a_failed_start(tmp_path):
    with pytest.raises(EmospecError, match=r"exited with status 1: .*missing\.pt: file not found"):
        with serve_subprocess(tmp_path / "missing.pt"):
            pass


def test_cli_serve_answers_over_loopback(model_path, rec, ravdess_clips):
    clip = ravdess_clips[0]
    with serve_process(model_path, "--max-upload-mb", "1", "--max-duration-s", "20") as url:
        with open(clip, "rb") as f:
            r = httpx.post(f"{url}/api/v1/predict", files={"file": (clip.name, f)}, timeout=60)
        assert r.status_code == 200 and r.json()["label"] == rec.predict(clip).label
        r = httpx.post(f"{url}/api/v1/predict", content=b"\0" * (MB + 1), timeout=60)
        assert_error(r, 413, "upload too large")
        assert httpx.get(f"{url}/api/v1/model", timeout=10).json()["limits"]["max_duration_s"] == 20
