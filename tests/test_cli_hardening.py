"""The bad-input corpus through the command line: damaged model files, and batches that report and go on."""

from __future__ import annotations

import json
import os

import pytest

import badinput as B
from conftest import run_cli
from emospec import cli
from emospec.errors import CheckpointError
from emospec.predict import load
from serve_support import make_model


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def model_files(good_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {c.name: c.make(good_model, folder) for c in B.MODEL_CASES}


@pytest.mark.parametrize("case", B.MODEL_CASES, ids=[c.name for c in B.MODEL_CASES])
def test_model_file(model_files, case):
    path = model_files[case.name]
    if case.error is None:
        rec = load(path, device="cpu")
        assert rec.feature_config.hop_ms == 20.0  # its own feature settings travel with it and are used
        p = rec.predict(B.tone(0.5).astype("float32"), sr=B.SR)
        assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-5)
        return
    with pytest.raises(CheckpointError) as ei:
        load(path, device="cpu")
    msg = str(ei.value)
    assert msg.startswith(f"{path}: ") and case.error in msg and "\n" not in msg, msg


@pytest.mark.parametrize("command", ["serve", "predict", "evaluate"])
@pytest.mark.parametrize("case", [c for c in B.MODEL_CASES if c.error], ids=lambda c: c.name)
def test_commands_refuse_a_bad_model_in_one_line(model_files, case, command, tmp_path, capsys):
    path = model_files[case.name]
    clip = tmp_path / "clip.wav"
    clip.write_bytes(B.wav_bytes(B.tone(0.3)))
    (tmp_path / "m.csv").write_text(f"path,label\n{clip},angry\n")
    argv = {"serve": ["serve", "--model", str(path), "--port", "1"],
            "predict": ["-q", "predict", str(clip), "--model", str(path)],
            "evaluate": ["-q", "evaluate", "--model", str(path), "--manifest", str(tmp_path / "m.csv")]}[command]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"emospec: error: {path}: ") and case.error in err, err
    assert captured.out == ""


@pytest.mark.parametrize("content, cause", [(b"", "not a readable ONNX model"), (b"not a model\n", "not a readable ONNX model")],
                         ids=["empty", "text"])
def test_predict_refuses_a_bad_onnx_file(tmp_path, content, cause, capsys):
    (tmp_path / "model.onnx").write_bytes(content)
    (tmp_path / "clip.wav").write_bytes(B.wav_bytes(B.tone(0.3)))
    assert cli.main(["-q", "predict", str(tmp_path / "clip.wav"), "--model", str(tmp_path / "model.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"emospec: error: {tmp_path / 'model.onnx'}: {cause}"), err


# --------------------------------------------------------------------------- emospec prepare
SCAN_SKIPPED = {  # refused from the header while scanning (emospec.audio.info), with the cause printed
    "empty_0_bytes": "empty file (0 bytes)",
    "truncated_header": B.NOT_AUDIO,
    "header_only": "zero-length audio (0 samples)",
    "text_named_wav": B.NOT_AUDIO,
    "html_named_wav": B.NOT_AUDIO,
    "jpeg_named_wav": B.NOT_AUDIO,
    "raw_pcm_named_wav": B.NOT_AUDIO,
    "broken_symlink": "missing audio (broken symbolic link)",
    "non_utf8_name": "file name is not valid UTF-8, so no manifest can hold it (rename the file)",
}
FEATURES_FAILED = {  # the header reads, the samples do not: reported by --features
    "nan_samples": "1 sample(s) are NaN or infinite",
    "inf_samples": "2 sample(s) are NaN or infinite",
    "truncated_flac": B.NOT_AUDIO,
}
DUPLICATES = {"ogg_vorbis": "duplicate utterance id 'angry/tone' (kept ", "ogg_opus": "duplicate utterance id 'angry/tone' (kept "}
"""tone.mp3, tone.ogg and tone.opus are one utterance id (the path without extension): the first is kept."""


@pytest.fixture(scope="module")
def folder_corpus(tmp_path_factory):
    """``angry/``: the bad-input corpus (less the 10-minute file and the missing path); ``neutral/``: three good clips."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("prepare") / "corpus"
    cases = [c for c in B.CASES if not c.heavy and c.name != "missing"]
    paths = B.build(root / "angry", cases)
    (root / "neutral").mkdir()
    for i in range(3):
        sf.write(root / "neutral" / f"n{i}.wav", B.tone(0.5, amp=0.1 * (i + 1)), B.SR)
    return root, paths


def _skipped_lines(err: str) -> list:
    return [line[len("skipped: "):] for line in err.splitlines() if line.startswith("skipped: ")]


def test_prepare_reports_every_bad_file_and_goes_on(folder_corpus, tmp_path, monkeypatch):
    root, paths = folder_corpus
    if os.access(paths["unreadable"], os.R_OK):
        scan_skipped = SCAN_SKIPPED
    else:
        scan_skipped = {**SCAN_SKIPPED, "unreadable": "permission denied"}
    monkeypatch.chdir(tmp_path)
    before, cwd_before = B.tree(root), B.tree(tmp_path)
    r = run_cli("-q", "prepare", "folder", str(root), "--out", "out/manifest.csv", "--features", "--cache", "out/cache",
                cwd=tmp_path)
    out, err = r.stdout.decode(), r.stderr.decode("utf-8", "backslashreplace")
    assert r.returncode == 0, err
    lines = _skipped_lines(err)
    for name, cause in {**scan_skipped, **DUPLICATES, **FEATURES_FAILED}.items():
        shown = str(paths[name]).encode("utf-8", "backslashreplace").decode()  # as stderr writes it
        assert any(line.startswith(f"{shown}: ") and cause in line for line in lines), (name, cause, lines)
    assert len(lines) == len(scan_skipped) + len(DUPLICATES) + len(FEATURES_FAILED)
    n_rows = len(paths) + 3 - 1 - len(scan_skipped) - len(DUPLICATES)  # x.wav is a folder, not a file
    assert f"folder at {root}: {n_rows} utterances, 0 speakers, {len(scan_skipped) + len(DUPLICATES)} skipped" in out
    assert f"features: {n_rows} clips, 0 cached, {n_rows - len(FEATURES_FAILED)} computed, {len(FEATURES_FAILED)} failed" in out
    manifest = (tmp_path / "out" / "manifest.csv").read_text(encoding="utf-8").splitlines()
    assert len(manifest) == 1 + n_rows
    assert B.tree(root) == before  # the corpus is only read
    assert set(B.tree(tmp_path)) - set(cwd_before) <= {"out", "out/manifest.csv", "out/cache"} | {
        k for k in B.tree(tmp_path) if k.startswith("out/cache/")}


def test_prepare_label_file_with_typo_duplicates_and_missing_files(tmp_path):
    import soundfile as sf

    for i in range(4):
        sf.write(tmp_path / f"c{i}.wav", B.tone(0.3, amp=0.1 * (i + 1)), B.SR)
    (tmp_path / "labels.csv").write_text(
        "path,label,speaker,utterance_id\n"
        "c0.wav,neutral,s1,u1\nc1.wav,angry,s2,u2\nc2.wav,angyr,s1,u3\nc3.wav,neutral,s2,u2\nmissing.wav,sad,s1,u4\n")
    r = run_cli("-q", "prepare", "manifest", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "m.csv"))
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "warning: label 'angyr' (1 utterance(s)) maps to no class; did you mean 'angry'? (or --map 'angyr=angry')" in err
    assert _skipped_lines(err) == [f"{tmp_path / 'c3.wav'}: duplicate utterance id 'u2' (kept {tmp_path / 'c1.wav'})",
                                   f"{tmp_path / 'missing.wav'}: missing audio (file not found)"]
    assert "3 utterances, 2 speakers, 2 skipped" in r.stdout.decode()
    fixed = run_cli("-q", "prepare", "manifest", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "m.csv"),
                    "--map", "angyr=angry")
    assert fixed.returncode == 0 and "warning" not in fixed.stderr.decode()
    assert "all           3         1         0         2         0         0" in fixed.stdout.decode()


@pytest.mark.parametrize("layout, error", [
    ({}, "no usable folder-per-label utterances (expected <label>/[<speaker>/]<file>.wav)"),
    ({"angry/a.wav": 1, "angry/b.wav": 2}, "all 2 usable folder-per-label utterances have one label ('angry'); "
                                           "need at least 2 classes"),
    ({"angry/a.txt": 0, "neutral/.hidden.wav": 1}, "no usable folder-per-label utterances"),
], ids=["empty-folder", "one-class", "no-audio-files"])
def test_prepare_unusable_corpus_is_one_line(tmp_path, layout, error):
    import soundfile as sf

    root = tmp_path / "corpus"
    root.mkdir()
    for rel, seed in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, B.tone(0.2, amp=0.1 * (seed + 1)), B.SR, format="WAV")
    r = run_cli("-q", "prepare", "folder", str(root), "--out", str(tmp_path / "m.csv"))
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"emospec: error: {root}: ") and error in err, err
    assert not (tmp_path / "m.csv").exists()


# --------------------------------------------------------------------------- emospec predict FOLDER
STRICT_UTF8 = {"PYTHONIOENCODING": "utf-8"}
"""stdout as in a UTF-8 locale (errors='strict'), where a non-UTF-8 file name would crash a plain print."""


@pytest.fixture(scope="module")
def clips_folder(tmp_path_factory):
    """The bad-input corpus (less the 10-minute file and the missing path) in one folder."""
    cases = [c for c in B.CASES if not c.heavy and c.name != "missing"]
    return cases, B.build(tmp_path_factory.mktemp("predict") / "clips", cases)


def _expected(cases, paths):
    """``(files that predict: {path: case}, files that fail: {path: cause})``; x.wav is a folder, not listed."""
    good, bad = {}, {}
    for c in cases:
        p = str(paths[c.name])
        if c.name == "directory_named_wav":
            continue
        if c.error is None or (c.name == "unreadable" and os.access(p, os.R_OK)):
            good[p] = c
        else:
            bad[p] = c.error
    return good, bad


def test_predict_folder_reports_every_bad_file_and_goes_on(clips_folder, good_model, tmp_path):
    cases, paths = clips_folder
    folder = paths["wav_float"].parent
    good, bad = _expected(cases, paths)
    r = run_cli("-q", "predict", str(folder), "--model", str(good_model), "--json", env=STRICT_UTF8)
    assert r.returncode == 1, r.stderr.decode()  # 1: some files failed (all the others were done)
    body = json.loads(r.stdout)
    results = {d["source"]: d for d in body["results"]}
    assert set(results) == set(good)
    for p, d in results.items():
        assert d["silent"] is good[p].silent, p
        if d["silent"]:  # silence is not an emotion: no label, no scores
            assert (d["label"], d["scores"], d["predictions"]) == (None, {}, []), p
        else:
            assert sum(d["scores"].values()) == pytest.approx(1.0, abs=1e-4), p
        if good[p].samples is not None:
            assert d["duration_s"] == pytest.approx(good[p].samples / B.SR), p
    failed = {d["file"]: d["error"] for d in body["failed"]}
    assert set(failed) == set(bad)
    for p, cause in bad.items():
        assert failed[p].startswith(f"{p}: ") and cause in failed[p] and "\n" not in failed[p], (p, failed[p])
    err = r.stderr.decode("utf-8", "surrogateescape").splitlines()
    assert sorted(line for line in err if line.startswith("error: ")) == sorted(f"error: {m}" for m in failed.values())
    assert err[-1] == f"{len(good)} of {len(good) + len(bad)} file(s) done, {len(bad)} failed"


def test_predict_folder_table_and_csv_write_only_the_csv(clips_folder, good_model, tmp_path):
    cases, paths = clips_folder
    folder = paths["wav_float"].parent
    good, _ = _expected(cases, paths)
    before, cwd_before = B.tree(folder), B.tree(tmp_path)
    r = run_cli("-q", "predict", str(folder), "--model", str(good_model), "--csv", "out/p.csv", cwd=tmp_path,
                env=STRICT_UTF8)
    assert r.returncode == 1, r.stderr.decode()
    name = os.fsencode(paths["non_utf8_name"])  # a non-UTF-8 name prints and is written as its own bytes
    assert sum(line.startswith(name + b" ") for line in r.stdout.splitlines()) == 1
    csv_rows = (tmp_path / "out" / "p.csv").read_bytes().splitlines()
    assert len(csv_rows) == 1 + len(good) and sum(row.startswith(name + b",") for row in csv_rows) == 1
    assert B.tree(folder) == before
    assert set(B.tree(tmp_path)) - set(cwd_before) == {"out", "out/p.csv"}


def test_predict_folder_timeline_reports_and_goes_on(clips_folder, good_model):
    """The streaming path (``--timeline``) meets the same files: the same ones fail, the rest get windows."""
    cases, paths = clips_folder
    folder = paths["wav_float"].parent
    good, bad = _expected(cases, paths)
    r = run_cli("-q", "predict", str(folder), "--model", str(good_model), "--timeline", "--window-s", "0.5",
                "--hop-s", "0.5", "--json", env=STRICT_UTF8)
    assert r.returncode == 1, r.stderr.decode()
    body = json.loads(r.stdout)
    assert {d["file"] for d in body["failed"]} == set(bad)
    done = {d["source"]: d for d in body["results"]}
    assert set(done) == set(good)
    for p, d in done.items():
        n = max(1, -(-round(d["duration_s"] * 1000 - 500) // 500) + 1)  # 1 + ceil((duration - window) / hop)
        assert len(d["windows"]) == n, (p, d["duration_s"], len(d["windows"]))


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`emospec info | head -1`: the pipe closes before the output is written; exit 141 quietly, like Unix tools."""
    import subprocess
    import sys

    from conftest import REPO

    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    p = subprocess.Popen([sys.executable, "-m", "emospec", "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err
