"""Every corpus loader on a tiny fixture in its exact release layout, bad items included."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from corpus_fixtures import LAYOUTS, NEMO_HEADER, SR, add_bad_items, clip, empty_wav, garbage, make_nemo, nemo_row
from emospec.data import cremad, iemocap, tess
from emospec.data.corpora import load_corpora, prepare_corpus
from emospec.errors import DataError


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_loader_reads_release_layout(tmp_path, name):
    expected = LAYOUTS[name].make(tmp_path)
    rows, problems = prepare_corpus(name, tmp_path)
    assert problems == []
    assert {r.utterance_id: (r.label, r.speaker) for r in rows} == expected
    assert all(r.corpus == name for r in rows)
    assert all(r.duration_s == pytest.approx(0.1) for r in rows)  # from the header: 1600 frames at 16 kHz


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_loader_reports_and_skips_bad_items(tmp_path, name):
    layout = LAYOUTS[name]
    expected = layout.make(tmp_path)
    bad = add_bad_items(tmp_path, layout)
    rows, problems = prepare_corpus(name, tmp_path)
    # every good item survives (the duplicate keeps one copy of its id), no bad one does
    assert sorted(r.utterance_id for r in rows) == sorted(expected)
    kept = {r.path for r in rows}
    assert not kept & {bad["unreadable"], bad["zero-length"], bad["missing"], bad["unknown label"]}
    assert len(problems) == 5, problems

    def reason(path: str) -> str:
        lines = [p for p in problems if p.startswith(path + ":")]
        assert len(lines) == 1, (path, problems)
        return lines[0]

    assert "not a readable audio file" in reason(bad["unreadable"])
    assert "zero-length audio" in reason(bad["zero-length"])
    assert "missing audio (broken symbolic link)" in reason(bad["missing"])
    assert "unknown label" in reason(bad["unknown label"])
    dup = [p for p in problems if "duplicate utterance id" in p]
    assert len(dup) == 1
    original = str(tmp_path / layout.duplicate_of)
    assert {bad["duplicate"], original} - kept == {dup[0].split(": duplicate")[0]}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_loader_empty_and_single_class_are_errors(tmp_path, name):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no usable"):
        prepare_corpus(name, tmp_path / "empty")
    full = tmp_path / "full"
    expected = LAYOUTS[name].make(full)
    first_label = sorted(expected.values())[0][0]
    rows, _ = prepare_corpus(name, full)
    for r in rows:
        if r.label != first_label:
            Path(r.path).unlink()
    with pytest.raises(DataError, match=f"one label \\('{first_label}'\\)"):
        prepare_corpus(name, full)
    with pytest.raises(DataError, match="not a folder"):
        prepare_corpus(name, tmp_path / "nowhere")


def test_any_libsndfile_extension_and_rate(tmp_path):
    clip(tmp_path / "Actor_03/03-01-01-01-01-01-03.flac", sr=48000, seconds=0.25, fmt="FLAC")
    clip(tmp_path / "Actor_03/03-01-05-01-01-01-03.ogg", sr=22050, seconds=0.5, fmt="OGG")
    (tmp_path / "Actor_03/notes.txt").write_text("ignored")
    rows, problems = prepare_corpus("ravdess", tmp_path)
    assert problems == []
    assert [(r.label, round(r.duration_s, 3), r.gender) for r in rows] == [("neutral", 0.25, "m"), ("angry", 0.5, "m")]


def test_mapping_and_classes_per_run(tmp_path):
    LAYOUTS["folder"].make(tmp_path)
    rows, _ = prepare_corpus("folder", tmp_path)
    assert sorted({(r.label, r.label4) for r in rows}) == [("Angry", "angry"), ("Calm", ""), ("Sad", "sad")]
    rows, _ = prepare_corpus("folder", tmp_path, mapping={"calm": "neutral"})
    assert sorted({(r.label, r.label4) for r in rows}) == [("Angry", "angry"), ("Calm", "neutral"), ("Sad", "sad")]
    rows, _ = prepare_corpus("folder", tmp_path, mapping={"angry": "", "calm": "calm"}, classes=("calm", "sad"))
    assert sorted({(r.label, r.label4) for r in rows}) == [("Angry", ""), ("Calm", "calm"), ("Sad", "sad")]


def test_cremad_voice_votes(tmp_path):
    LAYOUTS["crema-d"].make(tmp_path)
    (tmp_path / "processedResults").mkdir()
    (tmp_path / "processedResults/summaryTable.csv").write_text(
        '"","FileName","VoiceVote","VoiceLevel"\n'
        '"1","1001_DFA_ANG_XX","A","80"\n"2","1001_IEO_HAP_LO","N","71.67"\n"3","1001_TIE_NEU_XX","N:S","50"\n'
        '"4","1002_DFA_ANG_XX","D","60"\n"5","1002_IEO_HAP_LO","Q","1"\n', encoding="utf-8")
    acted, _ = prepare_corpus("crema-d", tmp_path)
    voted, problems = prepare_corpus("crema-d-votes", tmp_path)
    assert {r.utterance_id: r.label for r in acted}["1001_IEO_HAP_LO"] == "happy"
    assert {r.utterance_id: (r.label, r.label4, r.gender) for r in voted} == {
        "1001_DFA_ANG_XX": ("anger", "angry", "m"), "1001_IEO_HAP_LO": ("neutral", "neutral", "m"),
        "1002_DFA_ANG_XX": ("disgust", "", "f")}
    assert len(problems) == 4
    assert any("1001_TIE_NEU_XX.wav: voice vote is a tie (neutral:sad)" in p for p in problems)
    assert any(":6: unknown label: voice vote 'Q'" in p for p in problems)
    assert sum("no voice vote" in p for p in problems) == 2  # 1002_IEO_HAP_LO (its row was bad), 1002_TIE_NEU_XX


def _iemocap_release(root):
    """Two dialogs of session 1 and one of session 2 in the release layout."""
    turns = {
        "Ses01F_impro01": [("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "exc"), ("Ses01F_impro01_F001", "xxx")],
        "Ses01F_script01_1": [("Ses01F_script01_1_M003", "ang"), ("Ses01F_script01_1_F002", "sad")],
        "Ses02M_impro03": [("Ses02M_impro03_F000", "hap"), ("Ses02M_impro03_M001", "fru")],
    }
    for dialog, utts in turns.items():
        sess = int(dialog[3:5])
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for k, (utt, code) in enumerate(utts):
            lines += [f"[{k * 3 + 1.5:.4f} - {k * 3 + 2.5:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.0000]",
                      "C-E2:\tNeutral;\t()", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
            clip(root / f"Session{sess}/sentences/wav/{dialog}/{utt}.wav", seconds=0.2, seed=k)
        ev = root / f"Session{sess}/dialog/EmoEvaluation/{dialog}.txt"
        ev.parent.mkdir(parents=True, exist_ok=True)
        ev.write_text("\n".join(lines), encoding="utf-8")
    (root / "Session1/dialog/EmoEvaluation/Categorical").mkdir()
    return turns


def test_iemocap_release_layout(tmp_path):
    _iemocap_release(tmp_path)
    rows, problems = prepare_corpus("iemocap", tmp_path)
    assert problems == []
    got = {r.utterance_id: (r.speaker, r.gender, r.label, r.label4) for r in rows}
    assert got == {
        "Ses01F_impro01_F000": ("iemocap_01F", "f", "neutral", "neutral"),
        "Ses01F_impro01_M000": ("iemocap_01M", "m", "excited", "happy"),
        "Ses01F_impro01_F001": ("iemocap_01F", "f", "no_agreement", ""),
        "Ses01F_script01_1_M003": ("iemocap_01M", "m", "anger", "angry"),
        "Ses01F_script01_1_F002": ("iemocap_01F", "f", "sadness", "sad"),
        "Ses02M_impro03_F000": ("iemocap_02F", "f", "happiness", "happy"),  # the turn's letter, not the dialog's
        "Ses02M_impro03_M001": ("iemocap_02M", "m", "frustration", ""),
    }
    assert all(r.duration_s == pytest.approx(0.2) for r in rows)


def test_iemocap_release_bad_items(tmp_path):
    _iemocap_release(tmp_path)
    wav = tmp_path / "Session1/sentences/wav"
    (wav / "Ses01F_impro01/Ses01F_impro01_F000.wav").unlink()  # labelled, no audio
    clip(wav / "Ses01F_impro01/Ses01F_impro01_F009.wav")  # audio, no label
    garbage(wav / "Ses01F_script01_1/Ses01F_script01_1_M003.wav")
    empty_wav(wav / "Ses01F_script01_1/Ses01F_script01_1_F002.wav")
    ev = tmp_path / "Session2/dialog/EmoEvaluation/Ses02M_impro03.txt"
    ev.write_text(ev.read_text() + "\n[9.0000 - 9.5000]\tSes02M_impro03_F000\tneu\t[1, 1, 1]\n"
                  "[9.5000 - 9.9000]\tSes02M_impro03_M002\tzzz\t[1, 1, 1]\n", encoding="utf-8")
    clip(tmp_path / "Session2/sentences/wav/Ses02M_impro03/Ses02M_impro03_M002.wav")
    rows, problems = prepare_corpus("iemocap", tmp_path)
    assert sorted(r.utterance_id for r in rows) == ["Ses01F_impro01_F001", "Ses01F_impro01_M000",
                                                    "Ses02M_impro03_F000", "Ses02M_impro03_M001"]
    assert len(problems) == 7, problems
    text = "\n".join(problems)
    assert "Ses01F_impro01_F000.wav: missing audio (labelled in" in text
    assert "Ses01F_impro01_F009.wav: unknown label: no summary line" in text
    assert "Ses01F_script01_1_M003.wav: not a readable audio file" in text
    assert "Ses01F_script01_1_F002.wav: zero-length audio" in text
    assert "duplicate utterance id 'Ses02M_impro03_F000'" in text
    assert "Ses02M_impro03_M002: unknown label 'zzz'" in text
    assert "Ses02M_impro03_M002.wav: unknown label: no summary line" in text


def test_iemocap_table_with_audio_root(tmp_path):
    _iemocap_release(tmp_path / "release")
    table = tmp_path / "labels.csv"
    table.write_text("start_time,end_time,wav_file,emotion\n1.5,2.5,Ses01F_impro01_F000,neu\n"
                     "4.5,5.5,Ses01F_impro01_M000,exc\n1,2,Ses03F_impro01_F000,sad\n1,2,Ses01F_x_F000,ang\n", encoding="utf-8")
    rows, problems = iemocap.prepare(tmp_path / "release", table=table)
    assert [(r.utterance_id, round(r.duration_s, 3)) for r in rows] == [("Ses01F_impro01_F000", 0.2), ("Ses01F_impro01_M000", 0.2)]
    assert len(problems) == 2 and all("missing audio (file not found)" in p for p in problems)
    rows, problems = iemocap.prepare(table)  # labels only: duration = end - start
    got = {r.utterance_id: (r.duration_s, r.path) for r in rows}
    assert len(got) == 4
    assert got["Ses03F_impro01_F000"] == (1.0, "Session3/sentences/wav/Ses03F_impro01/Ses03F_impro01_F000.wav")


def test_manifest_loader_csv_and_json(tmp_path):
    a = clip(tmp_path / "audio/a.wav")
    clip(tmp_path / "audio/b.wav", seconds=0.3)
    garbage(tmp_path / "audio/c.wav")
    (tmp_path / "m.csv").write_text("path,label,speaker\naudio/a.wav,Angry,s1\naudio/b.wav,joy,s2\n"
                                    "audio/c.wav,sad,s1\naudio/d.wav,sad,s2\naudio/a.wav,,s3\n"
                                    f"{a},neutral,s1\n", encoding="utf-8")
    rows, problems = prepare_corpus("manifest", tmp_path / "m.csv")
    assert [(r.utterance_id, r.label, r.label4, r.speaker, round(r.duration_s, 2)) for r in rows] == [
        ("a", "Angry", "angry", "s1", 0.1), ("b", "joy", "happy", "s2", 0.3)]
    assert len(problems) == 4, problems
    assert any(p.startswith(f"{tmp_path}/m.csv:6:") and "unknown label (empty)" in p for p in problems)
    assert any("c.wav: not a readable audio file" in p for p in problems)
    assert any("d.wav: missing audio (file not found)" in p for p in problems)
    assert any("duplicate utterance id 'a'" in p for p in problems)

    (tmp_path / "sb.json").write_text('{"u1": {"wav": "audio/a.wav", "emo": "ang", "length": 0.1},'
                                      ' "u2": {"wav": "audio/b.wav", "emo": "sad"}}', encoding="utf-8")
    rows, problems = prepare_corpus("manifest", tmp_path / "sb.json", mapping={"ang": "angry"})
    assert problems == [] and [(r.utterance_id, r.label4) for r in rows] == [("u1", "angry"), ("u2", "sad")]
    (tmp_path / "l.json").write_text('[{"path": "audio/a.wav", "label": "angry", "speaker": "x"}, 3]', encoding="utf-8")
    with pytest.raises(DataError, match=r"l.json\[1\]: manifest entry is not a JSON object"):
        prepare_corpus("manifest", tmp_path / "l.json")


def test_load_corpora_several_and_default_roots(tmp_path):
    LAYOUTS["emovo"].make(tmp_path / "emovo")
    LAYOUTS["tess"].make(tmp_path / "t")
    rows, problems = load_corpora(["emovo", f"tess:{tmp_path / 't'}", "emovo"], data=tmp_path)
    assert problems and all("duplicate utterance id" in p for p in problems) and len(problems) == 6
    assert [sum(r.corpus == c for r in rows) for c in ("emovo", "tess")] == [6, 6]
    with pytest.raises(DataError, match="unknown corpus 'nope'"):
        load_corpora(["nope"], data=tmp_path)
    with pytest.raises(DataError, match="no savee data found"):
        load_corpora(["savee"], data=tmp_path)


def test_cremad_real_tables(shared_data, tmp_path):
    votes, problems = cremad.read_votes(shared_data / "labels/crema-d/summaryTable.csv")
    assert problems == [] and len(votes) == 7442
    single = [v[0] for v in votes.values() if len(v) == 1]
    assert len(single) == 6798 and len(votes) - len(single) == 644
    assert {e: single.count(e) for e in sorted(set(single))} == {
        "anger": 986, "disgust": 547, "fear": 645, "happy": 353, "neutral": 3897, "sad": 370}
    assert votes["1001_IEO_HAP_LO"] == ("neutral",) and votes["1001_IEO_HAP_HI"] == ("happy",)
    genders = cremad.read_demographics(shared_data / "labels/crema-d/VideoDemographics.csv")
    assert len(genders) == 91 and sorted(set(genders.values())) == ["f", "m"] and genders["1001"] == "m"
    # the loader with the real table: a clip's label is its vote
    shutil.copy(shared_data / "labels/crema-d/summaryTable.csv", tmp_path / "summaryTable.csv")
    for stem in ("1001_IEO_HAP_LO", "1001_IEO_HAP_HI", "1001_DFA_ANG_XX"):
        clip(tmp_path / "AudioWAV" / f"{stem}.wav")
    rows, problems = prepare_corpus("crema-d-votes", tmp_path)
    assert {r.utterance_id: r.label for r in rows} == {
        "1001_IEO_HAP_LO": "neutral", "1001_IEO_HAP_HI": "happy", "1001_DFA_ANG_XX": votes["1001_DFA_ANG_XX"][0]}
    assert math.isclose(sf.info(rows[0].path).frames / SR, rows[0].duration_s)


# --------------------------------------------------------------------------- TESS: the release's one odd name
def test_tess_name_missing_the_speakers_letter_takes_the_folder(tmp_path):
    LAYOUTS["tess"].make(tmp_path)
    odd = clip(tmp_path / "OAF_neutral" / "OA_bite_neutral.wav")  # as in the real release
    clip(tmp_path / "YAF_neutral" / "XY_bite_neutral.wav")  # two letters off: still rejected
    rows, problems = prepare_corpus("tess", tmp_path)
    got = {r.path: (r.utterance_id, r.speaker, r.label, r.label4) for r in rows}
    assert got[str(odd)] == ("OAF_bite_neutral", "tess_OAF", "neutral", "neutral")
    assert len(rows) == 7
    assert problems == [f"{tmp_path}/YAF_neutral/XY_bite_neutral.wav: not a TESS file name ({tess.LAYOUT})"]
    assert tess.speaker_fix("OA_bite_neutral", "OAF_neutral") == "OAF_bite_neutral"
    assert tess.speaker_fix("YA_bite_neutral", "OAF_neutral") == "YA_bite_neutral"  # not the folder's speaker


# --------------------------------------------------------------------------- nEMO: samples/ + data.tsv
def test_nemo_release_layout_matches_wav_and_flac_on_the_stem(tmp_path):
    expected = make_nemo(tmp_path)
    rows, problems = prepare_corpus("nemo", tmp_path)
    assert problems == []
    assert {r.utterance_id: (r.label, r.speaker) for r in rows} == expected
    assert {Path(r.path).suffix for r in rows if r.speaker == "nemo_MP0"} == {".flac"}  # file_id says .wav
    assert {r.utterance_id: (r.label4, r.gender) for r in rows} == {
        "EB0_anger_1": ("angry", "f"), "EB0_sadness_2": ("sad", "f"), "EB0_fear_3": ("", "f"),
        "MP0_anger_1": ("angry", "m"), "MP0_sadness_2": ("sad", "m"), "MP0_fear_3": ("", "m")}
    assert all(r.corpus == "nemo" and r.duration_s == pytest.approx(0.1) for r in rows)
    rows, _ = prepare_corpus("nemo", tmp_path, mapping={"fear": "angry"})
    assert sum(r.label4 == "angry" for r in rows) == 4


def test_nemo_bad_rows_and_files_are_one_line_each(tmp_path):
    make_nemo(tmp_path)
    samples, table = tmp_path / "samples", tmp_path / "data.tsv"
    for stem in ("KD0_boredom_1", "KD0_anger_2", "KD0_anger_3", "KD0_anger_5", "KD0_neutral_6"):
        clip(samples / f"{stem}.wav")
    garbage(samples / "KD0_happiness_7.wav")
    clip(samples / "EB0_anger_1.flac", fmt="FLAC")  # a converted copy beside its .wav
    with open(table, "a", encoding="utf-8") as f:
        f.write("\n".join([
            nemo_row("KD0_boredom_1", "boredom", "KD0"),                 # line 8: unknown emotion
            nemo_row("KD0_anger_2", "anger", "   "),                      # line 9: no speaker
            "KD0_anger_3.wav\tanger\ttoo few fields",                    # line 10
            nemo_row("KD0_neutral_4", "neutral", "KD0"),                  # line 11: no audio
            nemo_row("KD0_neutral_6", "neutral", "KD0"),                  # line 12: good
            nemo_row("KD0_neutral_6", "sadness", "KD0"),                  # line 13: repeated stem
            nemo_row("KD0_happiness_7", "happiness", "KD0"),              # line 14: unreadable audio
        ]) + "\n")
    rows, problems = prepare_corpus("nemo", tmp_path)
    assert len(rows) == 7 and {r.utterance_id for r in rows} >= {"KD0_neutral_6", "EB0_anger_1"}
    assert [r.label for r in rows if r.utterance_id == "KD0_neutral_6"] == ["neutral"]
    assert len(problems) == 8, problems  # a bad row whose audio exists is one line, not two
    for expect in (f"{table}:8: KD0_boredom_1: unknown label: emotion 'boredom'",
                   f"{table}:9: KD0_anger_2: empty speaker_id",
                   f"{table}:10: KD0_anger_3: 3 fields, the header has 7",
                   f"{table}:13: duplicate utterance id 'KD0_neutral_6' (kept {table}:12)",
                   f"{samples}/KD0_anger_5.wav: unknown label: no row for KD0_anger_5",
                   f"{samples}/KD0_neutral_4.wav: missing audio (labelled in {table}:11)",
                   f"{samples}/KD0_happiness_7.wav: not a readable audio file",
                   f"{samples}/EB0_anger_1.wav: duplicate utterance id 'EB0_anger_1'"):
        assert sum(p.startswith(expect) for p in problems) == 1, (expect, problems)


def test_nemo_table_errors(tmp_path):
    make_nemo(tmp_path)
    (tmp_path / "data.tsv").rename(tmp_path / "table.tsv")
    with pytest.raises(DataError, match=r"data.tsv: nEMO table not found"):
        prepare_corpus("nemo", tmp_path)
    (tmp_path / "data.tsv").write_text("file_id\temotion\tgender\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.tsv: nEMO table needs columns .* lacks \['speaker_id'\]"):
        prepare_corpus("nemo", tmp_path)
    (tmp_path / "samples").rename(tmp_path / "audio")
    with pytest.raises(DataError, match=r"samples: nEMO audio folder not found"):
        prepare_corpus("nemo", tmp_path)
    (tmp_path / "audio").rename(tmp_path / "samples")
    (tmp_path / "data.tsv").write_text(NEMO_HEADER + "\n" + nemo_row("EB0_anger_1", "anger", "EB0") + "\n")
    with pytest.raises(DataError, match="one label \\('anger'\\)"):
        prepare_corpus("nemo", tmp_path)
