"""The bad-input corpus through the command line: damaged model files, and batches that report and go on."""

from __future__ import annotations

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


@pytest.mark.parametrize("case", [c for c in B.MODEL_CASES if c.error], ids=lambda c: c.name)
def test_serve_refuses_a_bad_model_in_one_line(model_files, case, capsys):
    path = model_files[case.name]
    assert cli.main(["serve", "--model", str(path), "--port", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"emospec: error: {path}: ") and case.error in err, err


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
