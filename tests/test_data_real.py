"""Loaders on the real corpora in ../shared/data: full counts, speakers, four classes."""

from __future__ import annotations

from collections import Counter

from emospec.data.corpora import four_class, prepare_corpus
from emospec.data.labels import CLASSES4


def _counts(rows, field="label4"):
    return dict(sorted(Counter(getattr(r, field) for r in rows).items()))


def test_ravdess_full(shared_data):
    rows, problems = prepare_corpus("ravdess", shared_data / "ravdess")
    assert problems == []
    assert len(rows) == 1440
    assert _counts(rows, "label") == {"angry": 192, "calm": 192, "disgust": 192, "fearful": 192, "happy": 192,
                                      "neutral": 96, "sad": 192, "surprised": 192}
    four = four_class(rows, CLASSES4)
    assert len(four) == 672 and _counts(four) == {"angry": 192, "happy": 192, "neutral": 96, "sad": 192}
    assert len({r.speaker for r in rows}) == 24 and set(Counter(r.speaker for r in rows).values()) == {60}
    assert _counts(rows, "gender") == {"f": 720, "m": 720}
    assert all(2.9 < r.duration_s < 5.3 for r in rows)  # 16 kHz FLAC headers, ~3-5 s clips
    calm, _ = prepare_corpus("ravdess", shared_data / "ravdess", mapping={"calm": "neutral"})
    assert _counts(four_class(calm, CLASSES4))["neutral"] == 288


def test_ravdess_release_wav_sample(shared_data):
    rows, problems = prepare_corpus("ravdess", shared_data / "ravdess-wav-sample")
    assert problems == [] and len(rows) == 60
    assert {r.speaker for r in rows} == {"ravdess_01"}
    flac, _ = prepare_corpus("ravdess", shared_data / "ravdess")
    dur = {r.utterance_id: r.duration_s for r in flac}
    # the 48 kHz WAV and the 16 kHz FLAC of one recording have the same length in seconds
    assert all(abs(r.duration_s - dur[r.utterance_id]) < 1e-3 for r in rows)


def test_emovo_full(shared_data):
    rows, problems = prepare_corpus("emovo", shared_data / "emovo")
    assert problems == []
    assert len(rows) == 588
    assert _counts(rows, "label") == {e: 84 for e in ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")}
    four = four_class(rows, CLASSES4)
    assert len(four) == 336 and _counts(four) == {"angry": 84, "happy": 84, "neutral": 84, "sad": 84}
    assert sorted({r.speaker for r in rows}) == [f"emovo_{s}" for s in ("f1", "f2", "f3", "m1", "m2", "m3")]


def test_nemo_full(shared_data):
    rows, problems = prepare_corpus("nemo", shared_data / "nemo")
    assert problems == [] and len(rows) == 3076
    assert _counts(rows, "label") == {"anger": 749, "happiness": 749, "neutral": 809, "sadness": 769}
    four = four_class(rows, CLASSES4)
    assert len(four) == 3076 and _counts(four) == {"angry": 749, "happy": 749, "neutral": 809, "sad": 769}
    speakers = Counter(r.speaker for r in rows)
    assert sorted(speakers) == [f"nemo_{s}" for s in ("EB0", "IC0", "KD0", "KS0", "MK0", "MP0", "SM0", "TP0", "WR0")]
    assert speakers["nemo_MP0"] == 198 and speakers["nemo_EB0"] == 360
    assert {r.speaker for r in rows if r.gender == "f"} == {f"nemo_{s}" for s in ("EB0", "IC0", "KD0", "MK0")}
    assert _counts(rows, "gender") == {"f": 1440, "m": 1636}
    assert all(r.path.endswith(".flac") and r.utterance_id.startswith(r.speaker[5:]) for r in rows)
    assert min(r.duration_s for r in rows) > 0


def test_iemocap_label_table_gives_the_papers_5531(shared_data):
    rows, problems = prepare_corpus("iemocap", shared_data / "labels/iemocap/df_iemocap.csv")
    assert problems == [] and len(rows) == 10039
    four = four_class(rows, CLASSES4)
    assert len(four) == 5531
    assert _counts(four) == {"angry": 1103, "happy": 1636, "neutral": 1708, "sad": 1084}
    assert _counts([r for r in four if r.label == "excited"]) == {"happy": 1041}
    speakers = Counter(r.speaker for r in four)
    assert sorted(speakers) == [f"iemocap_0{s}{g}" for s in range(1, 6) for g in "FM"]
    # the turn's letter, not the dialog's: Ses01F dialogs hold both of session 1's speakers
    assert speakers["iemocap_01F"] == 528 and speakers["iemocap_01M"] == 557
    assert all(r.gender == r.speaker[-1].lower() for r in four)
    assert min(r.duration_s for r in four) > 0
