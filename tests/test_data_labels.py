"""The one four-class table and its per-run changes (--map, --classes)."""

from __future__ import annotations

import pytest

from emospec.data.labels import CLASSES4, FOUR_CLASS, canonical, parse_classes, parse_map, relabel, to_label4
from emospec.data.manifest import Utterance
from emospec.errors import ConfigError


def test_four_class_table():
    assert CLASSES4 == ("neutral", "happy", "angry", "sad")
    assert set(FOUR_CLASS.values()) == set(CLASSES4)
    assert FOUR_CLASS["excited"] == "happy"
    # every corpus's own words land in the same class
    for word, cls in [("neutral", "neutral"), ("happy", "happy"), ("joy", "happy"), ("happiness", "happy"),
                      ("excited", "happy"), ("anger", "angry"), ("Angry", "angry"), ("sadness", "sad"), ("SAD", "sad")]:
        assert to_label4(word) == cls, word
    for word in ("calm", "fear", "disgust", "surprised", "pleasant_surprise", "boredom", "frustration", "no_agreement"):
        assert to_label4(word) == "", word


def test_map_overrides_and_drops():
    m = parse_map(" Calm = neutral, Surprised=, Wut=angry ")
    assert m == {"calm": "neutral", "surprised": "", "wut": "angry"}
    assert to_label4("calm", m) == "neutral"
    assert to_label4("Wut", m) == "angry"
    assert to_label4("happy", {"happy": ""}) == ""
    assert to_label4("happy", {"happy": "joyful"}) == ""  # a target outside the classes
    for bad in ("calm", "=neutral"):
        with pytest.raises(ConfigError):
            parse_map(bad)


def test_classes_extend_the_table():
    classes = parse_classes("neutral, happy,angry,sad,fearful")
    assert classes == ("neutral", "happy", "angry", "sad", "fearful")
    assert [to_label4(w, classes=classes) for w in ("fear", "fearful", "Fear", "disgust")] == ["fearful"] * 3 + [""]
    assert canonical("Pleasant Surprise") == "surprised"
    assert to_label4("angry", classes=("neutral", "sad")) == ""
    for bad in ("neutral", "sad,sad,happy", ""):
        with pytest.raises(ConfigError):
            parse_classes(bad)


def test_relabel_recomputes_from_label():
    rows = [Utterance("a.wav", "x", "a", "s", "", "calm", ""), Utterance("b.wav", "x", "b", "s", "", "anger", "angry")]
    assert [r.label4 for r in relabel(rows, {"calm": "neutral"})] == ["neutral", "angry"]
    assert [r.label4 for r in relabel(rows, classes=("calm", "angry"))] == ["calm", "angry"]
