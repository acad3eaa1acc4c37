"""Splits: the one fold builder (paper 90/10, speaker folds with IEMOCAP by session, LOSO, all), saved and reused."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from emospec.data.corpora import four_class, prepare_corpus
from emospec.data.labels import CLASSES4
from emospec.data.manifest import Utterance
from emospec.data.splits import Fold, groups_of, load_folds, make_folds, paper_split, save_folds, speaker_kfold
from emospec.errors import ConfigError, DataError


def _rows(n_spk=8, per=12, corpus="toy"):
    """``n_spk`` speakers x ``per`` clips, classes cycling through the four."""
    return [Utterance(f"/x/{s}_{i}.wav", corpus, f"s{s}_{i}", f"{corpus}_s{s}", "fm"[s % 2], CLASSES4[i % 4], CLASSES4[i % 4])
            for s in range(n_spk) for i in range(per)]


def _same(a, b):
    return all(x.name == y.name and np.array_equal(x.train, y.train) and np.array_equal(x.test, y.test) for x, y in zip(a, b))


def _check_partition(rows, folds):
    """Each fold: train and test disjoint, cover all rows; no speaker (or group) on both sides; tests tile the set."""
    tested = []
    groups = groups_of(rows)
    for f in folds:
        assert f.speaker_independent
        assert len(np.intersect1d(f.train, f.test)) == 0 and len(f.train) + len(f.test) == len(rows)
        assert not {rows[i].speaker for i in f.train} & {rows[i].speaker for i in f.test}, f.name
        assert not {groups[i] for i in f.train} & {groups[i] for i in f.test}, f.name
        tested += f.test.tolist()
    assert sorted(tested) == list(range(len(rows)))


def test_paper_split_on_iemocap_5531(shared_data):
    rows, _ = prepare_corpus("iemocap", shared_data / "labels/iemocap/df_iemocap.csv")
    rows = four_class(rows, CLASSES4)
    (fold,) = make_folds("paper", rows, folds=1, seed=0)
    assert fold.name == "paper_90_10" and (len(fold.train), len(fold.test)) == (4978, 553)
    test = Counter(rows[i].label4 for i in fold.test)
    full = Counter(r.label4 for r in rows)
    assert all(abs(test[c] - 0.1 * full[c]) <= 1 for c in CLASSES4)  # stratified
    assert not fold.speaker_independent and len({rows[i].speaker for i in fold.test}) == 10


def test_iemocap_speaker_protocol_is_leave_one_session_out(shared_data):
    rows, _ = prepare_corpus("iemocap", shared_data / "labels/iemocap/df_iemocap.csv")
    rows = four_class(rows, CLASSES4)
    folds = make_folds("speaker", rows, seed=3)  # default k = min(6, 5 sessions): one session a fold, dealt by the seed
    assert [f.name for f in folds] == [f"fold_0{j}" for j in range(1, 6)]
    assert [sorted({rows[i].speaker for i in f.test}) for f in folds] == [
        [f"iemocap_0{s}F", f"iemocap_0{s}M"] for s in (5, 3, 2, 4, 1)]
    assert [len(f.test) for f in folds] == [1241, 1151, 1023, 1031, 1085]  # sessions 1-5: 1085, 1023, 1151, 1031, 1241
    _check_partition(rows, folds)
    assert [sorted({rows[i].speaker[-3:-1] for i in f.test}) for f in make_folds("speaker", rows, seed=0)] == [
        ["03"], ["05"], ["04"], ["01"], ["02"]]


def test_ravdess_speaker_folds_and_loso(shared_data):
    rows, _ = prepare_corpus("ravdess", shared_data / "ravdess")
    rows = four_class(rows, CLASSES4)
    folds = make_folds("speaker", rows, seed=0)  # the README's RAVDESS 6 folds (seed 0)
    assert [f.name for f in folds] == [f"fold_0{j}" for j in range(1, 7)]
    assert [sorted({rows[i].speaker[-2:] for i in f.test}) for f in folds] == [
        ["02", "13", "20", "21"], ["03", "06", "08", "19"], ["07", "11", "14", "16"],
        ["09", "10", "22", "23"], ["05", "12", "17", "18"], ["01", "04", "15", "24"]]
    assert all(Counter(rows[i].gender for i in f.test) == {"f": 56, "m": 56} for f in folds)  # 2 F + 2 M actors x 28 clips
    _check_partition(rows, folds)
    loso = make_folds("loso", rows)
    assert len(loso) == 24 and [len(f.test) for f in loso] == [28] * 24
    _check_partition(rows, loso)


@pytest.mark.parametrize("protocol", ["paper", "speaker", "loso"])
def test_same_seed_same_split(protocol):
    rows = _rows()
    k = {} if protocol == "loso" else {"folds": 4}  # LOSO: one fold per speaker, no k
    a = make_folds(protocol, rows, seed=7, **k)
    assert _same(a, make_folds(protocol, rows, seed=7, **k))
    if protocol != "loso":  # LOSO has no randomness
        assert not _same(a, make_folds(protocol, rows, seed=8, **k))


def test_speaker_folds_synthetic_and_errors():
    rows = _rows(n_spk=10)
    _check_partition(rows, make_folds("speaker", rows, folds=3, seed=1))
    with pytest.raises(DataError, match=r"need 2 <= folds <= 3 \(the number of speakers\), got 5"):
        make_folds("speaker", _rows(n_spk=3), folds=5)
    with pytest.raises(DataError, match=r"need 2 <= folds <= 10 \(the number of speakers\), got 1"):
        speaker_kfold([r.speaker for r in rows], None, 1)
    nameless = [Utterance(r.path, r.corpus, r.utterance_id, "", "", r.label, r.label4) for r in rows]
    for protocol in ("loso", "speaker"):
        with pytest.raises(DataError, match="120 utterance\\(s\\) have no speaker"):
            make_folds(protocol, nameless)
    assert len(make_folds("paper", nameless, folds=1)[0].test) == 12
    (everything,) = make_folds("all", rows)
    assert everything.name == "all" and len(everything.train) == 120 and len(everything.test) == 0
    with pytest.raises(ConfigError, match="unknown protocol 'random'; known: speaker, loso, paper, all"):
        make_folds("random", rows)
    with pytest.raises(ConfigError, match="--folds does not apply to --protocol loso"):
        make_folds("loso", rows, folds=3)


def test_tiny_paper_split_keeps_every_class_on_both_sides():
    labels = [c for c in CLASSES4 for _ in range(4)]
    tr, te = paper_split(labels, test_fraction=0.1, seed=0)
    assert len(te) == 4 and sorted(labels[i] for i in te) == sorted(CLASSES4)
    assert sorted(set(labels[i] for i in tr)) == sorted(CLASSES4)


def test_save_and_reuse(tmp_path):
    rows = _rows() + _rows(n_spk=2, corpus="other")
    folds = make_folds("speaker", rows, folds=4, seed=2)
    save_folds(tmp_path / "splits.json", rows, folds, protocol="speaker", seed=2)
    data = json.loads((tmp_path / "splits.json").read_text())
    assert data["protocol"] == "speaker" and data["folds"][0]["test"][0].count(":") == 1
    # reused on the same manifest in another order: the same utterances on each side
    shuffled = rows[::-1]
    again = load_folds(tmp_path / "splits.json", shuffled)
    for f, g in zip(folds, again):
        assert sorted(rows[i].utterance_id for i in f.test) == sorted(shuffled[i].utterance_id for i in g.test)
        assert g.speaker_independent
    with pytest.raises(DataError, match="not in this manifest"):
        load_folds(tmp_path / "splits.json", rows[:-5])
    gone = {f"{r.corpus}:{r.utterance_id}" for r in rows[-5:]}
    assert sum(len(f.test) for f in load_folds(tmp_path / "splits.json", rows[:-5], ignore=gone)) == len(rows) - 5


def test_reuse_a_runs_split_json(tmp_path):
    rows = _rows()
    (tmp_path / "split.json").write_text(json.dumps({
        "name": "speaker", "speaker_independent": True, "train": ["s0_0", "s1_0"], "val": ["s2_0"], "test": ["s3_0", "s3_1"]}))
    (fold,) = load_folds(tmp_path / "split.json", rows)
    assert isinstance(fold, Fold) and fold.speaker_independent
    assert [rows[i].utterance_id for i in fold.train] == ["s0_0", "s1_0", "s2_0"]
    assert [rows[i].utterance_id for i in fold.test] == ["s3_0", "s3_1"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="not a split file"):
        load_folds(tmp_path / "bad.json", rows)
    with pytest.raises(DataError, match="file not found"):
        load_folds(tmp_path / "nope.json", rows)


def test_speaker_holdout_fold():
    rows = _rows(n_spk=8)
    (fold,) = make_folds("speaker", rows, test_speakers=2, seed=4)
    held = {rows[i].speaker for i in fold.test}
    assert fold.name == "holdout" and len(held) == 2 and len(fold.test) == 24
    assert sorted(rows[i].gender for i in fold.test[::12]) == ["f", "m"]  # one of each gender
    assert not held & {rows[i].speaker for i in fold.train}
    (again,) = make_folds("speaker", rows, test_speakers=2, seed=4)
    assert np.array_equal(again.test, fold.test)
