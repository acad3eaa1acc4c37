"""Manifests: CSV round trip, user CSV/JSON shapes, strict reading, the count table."""

from __future__ import annotations

import math

import pytest

from emospec.data.manifest import Utterance, count_table, parse_manifest, read_manifest, write_manifest
from emospec.errors import DataError

ROWS = [
    Utterance("/a/x.wav", "ravdess", "x", "ravdess_01", "m", "angry", "angry", 3.25),
    Utterance("/a/y.wav", "ravdess", "y", "ravdess_02", "f", "calm", "", float("nan")),
    Utterance("/a/z.wav", "ravdess", "z", "ravdess_02", "f", "sad", "sad", 1.0),
]


def test_csv_round_trip(tmp_path):
    write_manifest(tmp_path / "m.csv", ROWS)
    text = (tmp_path / "m.csv").read_text()
    assert text.splitlines()[0] == "path,corpus,utterance_id,speaker,gender,label,label4,duration_s"
    assert text.splitlines()[1] == "/a/x.wav,ravdess,x,ravdess_01,m,angry,angry,3.2500"
    back = read_manifest(tmp_path / "m.csv")
    assert back[0] == ROWS[0] and back[2] == ROWS[2]
    assert back[1].label4 == "" and math.isnan(back[1].duration_s)  # an empty label4 stays empty


def test_user_csv_minimal_columns_and_aliases(tmp_path):
    (tmp_path / "u.csv").write_text("wav,emotion\nclips/a.wav,Happiness\n/abs/b.flac,fru\n")
    rows = read_manifest(tmp_path / "u.csv")
    assert [(r.path, r.utterance_id, r.corpus, r.speaker, r.label, r.label4) for r in rows] == [
        (str(tmp_path / "clips/a.wav"), "a", "custom", "", "Happiness", "happy"), ("/abs/b.flac", "b", "custom", "", "fru", "")]


def test_bad_records_are_reported_or_strict(tmp_path):
    (tmp_path / "b.csv").write_text("path,label,duration_s\na.wav,sad,x\n,sad,1\nb.wav,sad,-1\nc.wav,sad,2\n")
    rows, problems = parse_manifest(tmp_path / "b.csv")
    assert [r.utterance_id for r in rows] == ["c"]
    assert [p.split(": ", 1)[1] for p in problems] == ["duration_s 'x' is not a number", "no audio path",
                                                       "duration_s '-1' is negative"]
    assert problems[0].startswith(f"{tmp_path / 'b.csv'}:2")
    with pytest.raises(DataError, match=r"b.csv:2: duration_s 'x' is not a number \(and 2 more\)"):
        read_manifest(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("file,speaker\na.wav,s\n")
    with pytest.raises(DataError, match="needs at least 'path' and 'label' columns"):
        read_manifest(tmp_path / "c.csv")
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(DataError, match="d.json: manifest is not valid JSON"):
        read_manifest(tmp_path / "d.json")
    (tmp_path / "e.csv").write_bytes(b"path,label\n\xff\xfe,sad\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_manifest(tmp_path / "e.csv")
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")


def test_json_shapes(tmp_path):
    (tmp_path / "l.json").write_text('[{"path": "a.wav", "label": "sad", "speaker": "s1", "gender": "Female"}]')
    (r,) = read_manifest(tmp_path / "l.json")
    assert (r.utterance_id, r.speaker, r.gender, r.label4) == ("a", "s1", "f", "sad")
    (tmp_path / "d.json").write_text('{"utt7": {"wav": "w/a.wav", "emo": "neu", "length": 2.5, "spk_id": "7"}}')
    (r,) = read_manifest(tmp_path / "d.json")
    assert (r.utterance_id, r.path, r.speaker, r.label, r.duration_s) == ("utt7", str(tmp_path / "w/a.wav"), "7", "neu", 2.5)
    (tmp_path / "n.json").write_text('"rows"')
    with pytest.raises(DataError, match="must be a list of objects or an object of objects"):
        read_manifest(tmp_path / "n.json")


def test_count_table():
    lines = count_table(ROWS, ("neutral", "happy", "angry", "sad")).splitlines()
    assert lines[0].split() == ["speaker", "total", "neutral", "happy", "angry", "sad", "-"]
    assert lines[2].split() == ["ravdess_01", "1", "0", "0", "1", "0", "0"]
    assert lines[3].split() == ["ravdess_02", "2", "0", "0", "0", "1", "1"]
    assert lines[-1].split() == ["all", "3", "0", "0", "1", "1", "1"]
