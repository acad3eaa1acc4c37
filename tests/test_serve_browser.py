"""The page in a real browser: Debian's headless Chromium driven by Playwright against `emospec serve`.

The server runs as a real ``python -m emospec serve`` process on a free
loopback port; the browser uploads real RAVDESS clips and records from
Chromium's fake microphone, and the tests compare what the page shows with
the JSON the page received (and with Recognizer.predict for the same clip).
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emospec.config import FeatureConfig
from emospec.predict import load
from serve_support import LABELS, make_model, serve_process

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def server(model_path):
    with serve_process(model_path, "--max-duration-s", "60") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the server's ``/``; records every URL it requests in ``page.requested``."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    pg = context.new_page()
    pg.requested = []
    pg.on("request", lambda r: pg.requested.append(r.url))
    pg.goto(server + "/")
    pg.wait_for_selector("#model-info:has-text('neutral')", timeout=TIMEOUT_MS)
    yield pg
    context.close()


def _analyse(pg, action):
    """Run ``action`` (which makes the page post a clip) and return the predict response's JSON."""
    with pg.expect_response(lambda r: "/api/v1/predict" in r.url, timeout=TIMEOUT_MS) as resp:
        action()
    pg.wait_for_selector("#status:not(.busy):has-text('Analysed')", timeout=TIMEOUT_MS)
    return resp.value.json()


def _check_result(pg, result):
    """The label and one bar per class, each as wide (relative to its track) as its score."""
    assert pg.inner_text("#label").strip().lower() == result["label"]
    rows = pg.locator(".bar-row")
    assert rows.count() == len(LABELS)
    for i, label in enumerate(LABELS):
        row = rows.nth(i)
        assert row.get_attribute("data-label") == label
        fill, track = row.locator(".bar-fill").bounding_box(), row.locator(".bar-track").bounding_box()
        assert fill["width"] / track["width"] == pytest.approx(result["scores"][label], abs=0.01)
        assert row.locator(".bar-value").inner_text() == f"{100 * result['scores'][label]:.1f}%"
    assert pg.locator(".bar-row.best").get_attribute("data-label") == result["label"]


def _distinct_colours(png: bytes) -> int:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return len(np.unique(img.reshape(-1, 3), axis=0))


def test_upload_shows_label_bars_and_spectrogram(page, server, model_path, ravdess_clips, tmp_path):
    clip = ravdess_clips[3]
    result = _analyse(page, lambda: page.set_input_files("#file-input", str(clip)))
    assert result["label"] == load(model_path, device="cpu").predict(clip).label
    _check_result(page, result)
    assert clip.name in page.inner_text("#meta")
    panels = page.locator("#spectrogram .panel")
    assert [panels.nth(i).get_attribute("data-channel") for i in range(3)] == ["static", "delta", "delta2"]
    for i in range(3):
        image = panels.nth(i).locator("canvas.image")
        assert image.get_attribute("width") == str(result["features"]["frames"])
        assert image.get_attribute("height") == str(FeatureConfig().n_mels)  # the test model's: the default features
        assert _distinct_colours(image.screenshot()) > 50  # drawn, not blank
    assert page.locator("#timeline-card").is_hidden()  # a 3-4 s clip has too few windows
    assert all(u.startswith(server) or u.startswith("blob:") for u in page.requested), page.requested
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)
    assert (tmp_path / "upload.png").stat().st_size > 10_000


def _drop(pg, path: Path) -> None:
    """Drop ``path`` onto the drop zone as a user dragging a file from the desktop would."""
    transfer = pg.evaluate_handle(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: "audio/wav" }));
            return dt;
        }""", [base64.b64encode(path.read_bytes()).decode("ascii"), path.name])
    pg.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    pg.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def test_long_clip_dropped_shows_timeline(page, model_path, ravdess_clips, tmp_path):
    x = np.concatenate([sf.read(c, dtype="float32")[0] for c in ravdess_clips[:4]])
    long = tmp_path / "four_clips.wav"
    sf.write(long, x, 16000, subtype="PCM_16")
    result = _analyse(page, lambda: _drop(page, long))
    assert result["label"] == load(model_path, device="cpu").predict(long).label
    assert "four_clips.wav" in page.inner_text("#meta")
    _check_result(page, result)
    n = len(result["timeline"]["windows"])
    assert n == int(np.ceil((len(x) / 16000 - 3.0) / 1.0)) + 1 >= 10
    page.wait_for_selector("#timeline-card:not([hidden])", timeout=TIMEOUT_MS)
    assert page.locator("#timeline").get_attribute("data-windows") == str(n)
    assert page.inner_text("#timeline-hint").startswith(f"{n} windows of 3 s every 1 s")
    assert [s.strip() for s in page.locator("#timeline-legend span").all_inner_texts()] == LABELS
    assert _distinct_colours(page.locator("#timeline").screenshot()) > 20
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)


def test_microphone_recording_is_sent_as_wav(page, tmp_path):
    page.click("#record-btn")
    page.wait_for_selector("#record-btn.recording", timeout=TIMEOUT_MS)
    page.wait_for_selector("#record-time:has-text('0:02')", timeout=TIMEOUT_MS)
    result = _analyse(page, lambda: page.click("#record-btn"))
    # Chromium records webm/opus, which libsndfile cannot read: the page sent 16-bit mono WAV instead
    assert {k: result["input"][k] for k in ("format", "subtype", "sample_rate_hz", "channels")} == {
        "format": "WAV", "subtype": "PCM_16", "sample_rate_hz": 16000, "channels": 1}
    _check_result(page, result)
    assert result["source"] == "recording.wav" and 1.5 < result["duration_s"] < 10
    assert re.match(r"\d+\.\d\d s · recording\.wav", page.inner_text("#meta"))
    page.screenshot(path=str(tmp_path / "microphone.png"), full_page=True)


def test_non_audio_file_shows_the_server_error(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio at all")
    page.set_input_files("#file-input", str(bad))
    page.wait_for_selector("#status.error", timeout=TIMEOUT_MS)
    text = page.inner_text("#status")
    assert "Could not analyse notes.txt: unsupported media" in text and "not a readable audio file" in text
    assert page.locator("#result").is_hidden()
