"""benchmarks/corpus_contrasts.py: per-speaker emotion-minus-neutral contrasts and clip levels, on numbers we know."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from benchmark_scripts import load_benchmark


def _script():
    return load_benchmark("corpus_contrasts")


def test_contrasts_average_each_speakers_difference_from_their_own_neutral():
    cc = _script()
    # speaker a: neutral 1, 3 (mean 2), angry 7 -> +5; speaker b: neutral 10, angry 11, 13 (mean 12) -> +2;
    # speaker c has no neutral clip and does not count; a NaN row is left out
    values = np.array([[1.0], [3.0], [7.0], [10.0], [11.0], [13.0], [100.0], [np.nan]])
    speakers = ["a", "a", "a", "b", "b", "b", "c", "b"]
    labels = ["neutral", "neutral", "angry", "neutral", "angry", "angry", "angry", "angry"]
    out = cc.contrasts(values, speakers, labels)
    assert out == {"angry": {"delta": [pytest.approx(3.5)], "speakers": 2}}


def test_levels_of_a_sine_in_dbfs():
    cc = _script()
    t = np.arange(16000) / 16000
    peak, rms = cc.levels_dbfs(0.5 * np.sin(2 * np.pi * 200 * t))
    assert peak == pytest.approx(20 * np.log10(0.5), abs=1e-3)
    assert rms == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=1e-3)
    assert cc.levels_dbfs(np.zeros(10)) == (-200.0, -200.0)


def test_a_corpus_whose_angry_clips_are_louder_shows_it(tmp_path):
    """A folder corpus (two speakers; angry = the neutral clip's voice 12 dB louder and an octave higher): the script
    reports the 12 dB in the clip levels and a positive F0 contrast (openSMILE on the synthetic voices)."""
    cc = _script()
    rng = np.random.default_rng(0)
    sr, t = 16000, np.arange(16000) / 16000
    for spk, f0 in (("s1", 120.0), ("s2", 180.0)):
        for label, gain, mult in (("neutral", 0.05, 1.0), ("angry", 0.05 * 10 ** (12 / 20), 2.0)):
            for k in range(2):
                vib = f0 * mult * (1 + 0.02 * np.sin(2 * np.pi * 5 * t + k))
                phase = 2 * np.pi * np.cumsum(vib) / sr
                voice = sum(np.sin(h * phase) / h for h in range(1, 12)) + 0.01 * rng.standard_normal(sr)
                (tmp_path / label / spk).mkdir(parents=True, exist_ok=True)
                sf.write(tmp_path / label / spk / f"{k}.wav", (gain * voice / np.abs(voice).max()).astype(np.float32), sr)
    out = tmp_path / "c.json"
    assert cc.main(["--corpus", f"folder:{tmp_path}", "--cache", str(tmp_path / "cache.npz"), "--out", str(out)]) == 0
    res = json.loads(out.read_text())["corpora"]["folder"]
    lv = res["levels_dbfs"]
    assert lv["angry"]["peak"] - lv["neutral"]["peak"] == pytest.approx(12.0, abs=0.01)
    delta = dict(zip(json.loads(out.read_text())["cues"], res["vs_neutral"]["angry"]["delta"]))
    assert res["vs_neutral"]["angry"]["speakers"] == 2
    assert delta["F0 (st)"] == pytest.approx(12.0, abs=1.0)  # an octave
    assert delta["loudness (sone)"] > 0
