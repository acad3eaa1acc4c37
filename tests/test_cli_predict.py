"""``emospec predict``, ``export`` and ``info`` from the command line."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import LABELS4, SR, run_cli


@pytest.fixture(scope="module")
def folder(ravdess_clips, tmp_path_factory):
    """Three real clips, a broken .wav, a README (ignored), and a sub-folder with one more clip."""
    d = tmp_path_factory.mktemp("predict_in")
    for p in ravdess_clips[:3]:
        shutil.copy(p, d / p.name)
    (d / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (d / "README.txt").write_text("not audio\n")
    (d / "sub").mkdir()
    shutil.copy(ravdess_clips[3], d / "sub" / ravdess_clips[3].name)
    return d


def test_folder_with_a_bad_file(folder, random_model_path):
    r = run_cli("-q", "predict", str(folder), "--model", str(random_model_path), "--top-k", "2", "--batch-size", "2")
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 1, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["file", "label", "top-2", "duration_s"]
    assert len(lines) == 4 and all(".flac" in ln for ln in lines[1:])  # the 3 good clips, not README, not sub/
    assert all(ln.split()[1] in LABELS4 for ln in lines[1:])
    bad = [ln for ln in err.splitlines() if "broken.wav" in ln]
    assert len(bad) == 1 and bad[0].startswith(f"error: {folder / 'broken.wav'}: not a readable audio file")
    assert "3 of 4 file(s) done, 1 failed" in err


def test_json_and_recursive(folder, random_model_path):
    r = run_cli("-q", "predict", str(folder), "--recursive", "--json", "--top-k", "3", "--model", str(random_model_path))
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["backend"] == "torch" and len(doc["results"]) == 4 and len(doc["failed"]) == 1
    assert doc["failed"][0]["file"].endswith("broken.wav") and "not a readable audio file" in doc["failed"][0]["error"]
    for res in doc["results"]:
        assert len(res["predictions"]) == 3 and res["predictions"][0]["label"] == res["label"]
        assert sum(res["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert "embedding" not in res
    assert any("/sub/" in res["source"] for res in doc["results"])


def test_csv_and_exit_zero_when_all_ok(ravdess_clips, random_model_path, tmp_path):
    out = tmp_path / "res.csv"
    r = run_cli("-q", "predict", *map(str, ravdess_clips[:2]), "--csv", str(out), "--model", str(random_model_path))
    assert r.returncode == 0, r.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [row["file"] for row in rows] == [str(p) for p in ravdess_clips[:2]]
    for row in rows:
        probs = [float(row[f"p_{c}"]) for c in LABELS4]
        assert sum(probs) == pytest.approx(1.0, abs=1e-3) and row["label"] == LABELS4[int(np.argmax(probs))]
        assert float(row["duration_s"]) > 2


def test_silent_clip_has_no_emotion_in_table_and_csv(ravdess_clips, random_model_path, tmp_path):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(10 * SR, np.float32), SR, subtype="PCM_16")
    out = tmp_path / "res.csv"
    r = run_cli("-q", "predict", str(silence), str(ravdess_clips[0]), "--csv", str(out), "--top-k", "2",
                "--model", str(random_model_path))
    assert r.returncode == 0, r.stderr.decode()
    table = {ln.split()[0]: ln.split()[1:] for ln in r.stdout.decode().strip().splitlines()[1:]}
    assert table[str(silence)] == ["(silent)", "no", "emotion", "10.00"]
    assert table[str(ravdess_clips[0])][0] in LABELS4
    rows = {row["file"]: row for row in csv.DictReader(io.StringIO(out.read_text()))}
    assert {k: v for k, v in rows[str(silence)].items() if k != "file"} == {
        "label": "", "score": "", "duration_s": "10.00", "silent": "true", **{f"p_{c}": "" for c in LABELS4}}
    voiced = rows[str(ravdess_clips[0])]
    assert voiced["silent"] == "false" and voiced["label"] in LABELS4 and float(voiced["score"]) > 0.25


def test_timeline_json_and_plot(ravdess_clips, random_model_path, tmp_path):
    wave = np.concatenate([sf.read(p, dtype="float32")[0] for p in ravdess_clips[:4]])[: 12 * SR]
    path = tmp_path / "twelve.flac"
    sf.write(path, wave, SR)
    png = tmp_path / "tl.png"
    r = run_cli("-q", "predict", str(path), "--timeline", "--window-s", "4", "--hop-s", "2", "--plot", str(png), "--json",
                "--model", str(random_model_path))
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    windows = doc["results"][0]["windows"]
    assert [w["start_s"] for w in windows] == [0, 2, 4, 6, 8] and windows[-1]["end_s"] == 12.0
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = run_cli("-q", "predict", str(path), "--plot", str(png))
    assert r.returncode == 1 and "--plot needs --timeline" in r.stderr.decode()


def test_onnx_model_gives_the_same_labels(ravdess_clips, random_model_path, onnx_features_path):
    args = ["-q", "predict", *map(str, ravdess_clips[:4]), "--json"]
    a = json.loads(run_cli(*args, "--model", str(random_model_path)).stdout)
    b = json.loads(run_cli(*args, "--model", str(onnx_features_path)).stdout)
    assert b["backend"] == "onnx"
    for x, y in zip(a["results"], b["results"]):
        assert x["label"] == y["label"]
        assert max(abs(x["scores"][c] - y["scores"][c]) for c in LABELS4) < 1e-4


@pytest.mark.slow
def test_export_command(random_model_path, tmp_path):
    out = tmp_path / "m.onnx"
    r = run_cli("export", "--onnx", str(out), "--model", str(random_model_path))
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode()
    assert f"wrote {out}" in text and "dynamic batch and time axes" in text
    diff = float(text.split("max |dp| ")[1].split(",")[0])
    assert diff < 1e-4 and out.stat().st_size > 1e6


def test_info_bundled_and_other_models(random_model_path, onnx_features_path):
    r = run_cli("info")
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode()
    for needle in ("labels: neutral, happy, angry, sad", "RAVDESS", "EMOVO", "CC BY-NC-SA 4.0", "non-commercial",
                   "share-alike", "research use", "UA ", "WA ", "features: 3D log-Mel", "versions: emospec",
                   "the same folds trained with other seeds", "mean over seeds and corpora"):
        assert needle in text, needle
    card = json.loads(run_cli("info", "--json").stdout)
    assert card["labels"] == LABELS4 and card["licence"]["summary"].startswith("CC BY-NC-SA 4.0")
    other = run_cli("info", "--model", str(random_model_path)).stdout.decode()
    assert "labels: neutral, happy, angry, sad" in other and "evaluation: none recorded" in other
    assert "onnx" in run_cli("info", "--model", str(onnx_features_path)).stdout.decode().lower()
    bad = run_cli("info", "--model", str(onnx_features_path.with_name("nope.pt")))
    assert bad.returncode == 1 and "nope.pt: file not found" in bad.stderr.decode()


def test_timeline_windows_of_silence_get_no_emotion(ravdess_clips, random_model_path, tmp_path):
    """Speech, 6 s of digital silence, speech: the windows inside the silence have no label, in JSON and CSV."""
    speech = sf.read(ravdess_clips[0], dtype="float32")[0][SR // 2 : 5 * SR // 2]  # 2 s, mostly voiced
    path = tmp_path / "gap.wav"
    sf.write(path, np.concatenate([speech, np.zeros(6 * SR, np.float32), speech]), SR, subtype="FLOAT")
    r = run_cli("-q", "predict", str(path), "--timeline", "--window-s", "2", "--hop-s", "2", "--json", "--model", str(random_model_path))
    assert r.returncode == 0, r.stderr.decode()
    windows = json.loads(r.stdout)["results"][0]["windows"]
    assert [w["start_s"] for w in windows] == [0, 2, 4, 6, 8]
    assert [w["silent"] for w in windows] == [False, True, True, True, False]  # 2-4, 4-6, 6-8 s are all zeros
    for w in windows:
        assert (w["label"] is None) == w["silent"] and (w["scores"] == {}) == w["silent"]
        assert w["silent"] or sum(w["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    out = tmp_path / "tl.csv"
    assert run_cli("-q", "predict", str(path), "--timeline", "--window-s", "2", "--hop-s", "2", "--csv", str(out),
                   "--model", str(random_model_path)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [row["label"] == "" for row in rows] == [False, True, True, True, False]
    assert all(row[f"p_{c}"] == "" for row in rows[1:4] for c in LABELS4)
