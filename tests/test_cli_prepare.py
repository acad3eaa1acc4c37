"""``emospec prepare`` and the data options of ``emospec train``, end to end."""

from __future__ import annotations

import csv
import re

from conftest import run_cli
from corpus_fixtures import LAYOUTS, add_bad_items


def _out(res):
    return res.stdout.decode(), res.stderr.decode()


def test_prepare_counts_manifest_and_problems(tmp_path):
    LAYOUTS["emovo"].make(tmp_path / "emovo")
    bad = add_bad_items(tmp_path / "emovo", LAYOUTS["emovo"])
    res = run_cli("-q", "prepare", "emovo", str(tmp_path / "emovo"), "--out", str(tmp_path / "m.csv"))
    out, err = _out(res)
    assert res.returncode == 0, err
    assert f"emovo at {tmp_path / 'emovo'}: 6 utterances, 2 speakers, 5 skipped" in out
    table = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.startswith(("emovo_", "all "))}
    assert table == {"emovo_f1": ["3", "1", "0", "1", "1", "0"], "emovo_m2": ["3", "1", "0", "1", "1", "0"],
                     "all": ["6", "2", "0", "2", "2", "0"]}
    assert "4 classes (neutral, happy, angry, sad): 6 utterances; 0 outside them" in out.splitlines()
    assert f"skipped: {bad['unreadable']}: not a readable audio file" in err
    assert "skipped 5 item(s) in all" in err
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert len(rows) == 6 and {r["label4"] for r in rows} == {"neutral", "angry", "sad"}
    assert all(float(r["duration_s"]) == 0.1 for r in rows)


def test_prepare_map_and_classes(tmp_path):
    LAYOUTS["folder"].make(tmp_path / "tree")
    res = run_cli("-q", "prepare", "folder", str(tmp_path / "tree"), "--out", str(tmp_path / "m.csv"),
                  "--map", "Calm=neutral,Sad=", "--classes", "neutral,angry,sad")
    out, err = _out(res)
    assert res.returncode == 0, err
    head = next(ln for ln in out.splitlines() if ln.startswith("speaker"))
    assert head.split() == ["speaker", "total", "neutral", "angry", "sad", "-"]
    assert next(ln for ln in out.splitlines() if ln.startswith("all ")).split() == ["all", "6", "2", "2", "0", "2"]
    assert "3 classes (neutral, angry, sad): 4 utterances; 2 outside them" in out.splitlines()


def test_prepare_writes_a_manifest_only_where_out_says(tmp_path):
    LAYOUTS["folder"].make(tmp_path / "tree")
    work = tmp_path / "work"
    work.mkdir()
    res = run_cli("-q", "prepare", "folder", str(tmp_path / "tree"), cwd=work)
    out, err = _out(res)
    assert res.returncode == 0, err
    assert "manifest: not written (add --out FILE to write one)" in out.splitlines()
    assert list(work.iterdir()) == [] and not (tmp_path / "manifest.csv").exists()
    res = run_cli("-q", "prepare", "folder", str(tmp_path / "tree"), "--out", "sub/m.csv", cwd=work)
    assert res.returncode == 0, _out(res)[1]
    assert "manifest: sub/m.csv" in _out(res)[0].splitlines()
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == ["sub", "sub/m.csv"]
    assert len(list(csv.DictReader(open(work / "sub/m.csv")))) == 6


def test_prepare_real_nemo_and_iemocap_print_the_class_totals(shared_data, tmp_path):
    res = run_cli("-q", "prepare", "nemo", str(shared_data / "nemo"), "--out", str(tmp_path / "nemo.csv"))
    out, err = _out(res)
    assert res.returncode == 0 and err == "", err
    assert f"nemo at {shared_data / 'nemo'}: 3076 utterances, 9 speakers, 0 skipped" in out
    assert next(ln for ln in out.splitlines() if ln.startswith("all ")).split() == ["all", "3076", "809", "749", "749", "769", "0"]
    assert "4 classes (neutral, happy, angry, sad): 3076 utterances; 0 outside them" in out.splitlines()
    res = run_cli("-q", "prepare", "iemocap", str(shared_data / "labels/iemocap/df_iemocap.csv"), "--out", str(tmp_path / "i.csv"))
    assert res.returncode == 0, _out(res)[1]
    assert "4 classes (neutral, happy, angry, sad): 5531 utterances; 4508 outside them" in _out(res)[0].splitlines()


def test_prepare_features_fill_cache_in_shards(tmp_path):
    LAYOUTS["savee"].make(tmp_path / "savee")
    cache = str(tmp_path / "cache")
    common = ["-q", "prepare", "savee", str(tmp_path / "savee"), "--out", str(tmp_path / "m.csv"), "--features", "--cache", cache]
    got = []
    for part in ("1/2", "2/2"):
        res = run_cli(*common, "--shard", part)
        out, err = _out(res)
        assert res.returncode == 0, err
        got.append(re.search(r"features \(shard (\d)/2\): (\d+) clips, 0 cached, (\d+) computed, 0 failed", out).groups())
    assert got == [("1", "4", "4"), ("2", "4", "4")]  # 8 clips dealt round-robin, disjoint
    res = run_cli(*common)
    assert "features: 8 clips, 8 cached, 0 computed, 0 failed" in res.stdout.decode()
    assert len(list((tmp_path / "cache").glob("v1-*/*/*.feat"))) == 8


def test_prepare_errors_are_one_line(tmp_path):
    res = run_cli("prepare", "nosuch", str(tmp_path))
    assert res.returncode == 1
    assert res.stderr.decode().strip() == ("emospec: error: unknown corpus 'nosuch'; known: ravdess, emovo, nemo, iemocap, "
                                           "crema-d, crema-d-votes, tess, emodb, savee, folder, manifest")
    res = run_cli("prepare", "tess", str(tmp_path))
    assert res.returncode == 1
    assert res.stderr.decode().strip().startswith(f"emospec: error: {tmp_path}: no usable TESS utterances")
    res = run_cli("prepare", "savee", str(tmp_path), "--features", "--shard", "4/3")
    assert res.returncode == 1 and "--shard '4/3': need 1 <= I <= N" in res.stderr.decode()
