"""Tiny corpora in each release layout (real file names, generated audio), for the data tests.

Each ``make_<corpus>(root)`` writes a few 0.1 s clips and returns the
expected ``{utterance_id: (label, speaker)}``. :data:`LAYOUTS` lists, per
loader, how to make it plus names to use for bad items: a valid-looking name
(for unreadable, zero-length and missing files) and a name with an unknown label.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import soundfile as sf

SR = 16000
Expected = Dict[str, Tuple[str, str]]


def clip(path: Path, *, seconds: float = 0.1, sr: int = SR, seed: int = 0, fmt: str | None = None) -> Path:
    """Write ``seconds`` of seeded noise (16-bit) to ``path``; folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(round(seconds * sr))).astype(np.float32)
    sf.write(path, x, sr, subtype="VORBIS" if fmt == "OGG" else "PCM_16", format=fmt)
    return path


def csv_rows(path: Path) -> list:
    """The rows of a CSV file with a header (``oof_predictions.csv``, a manifest) as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def empty_wav(path: Path) -> Path:
    """A valid WAV header with zero frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(0, dtype=np.float32), SR, subtype="PCM_16", format="WAV")
    return path


def garbage(path: Path) -> Path:
    """A file with an audio name that is not audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio\n" * 20)
    return path


def _grid(root: Path, speakers, codes, name: Callable[[str, str], Tuple[str, str]], prefix: str) -> Expected:
    """One clip per (speaker, code): ``name(spk, code) -> (relative path, utterance id)``; codes are (code, label)."""
    out = {}
    for i, (spk, (code, label)) in enumerate((s, c) for s in speakers for c in codes):
        rel, uid = name(spk, code)
        clip(root / rel, seed=i)
        out[uid] = (label, f"{prefix}_{spk}")
    return out


def make_ravdess(root: Path) -> Expected:
    def name(actor, code):
        stem = f"03-01-{code}-01-01-01-{actor}"
        return f"Actor_{actor}/{stem}.wav", stem
    return _grid(root, ("01", "02"), (("01", "neutral"), ("05", "angry"), ("02", "calm")), name, "ravdess")


def make_emovo(root: Path) -> Expected:
    return _grid(root, ("f1", "m2"), (("rab", "anger"), ("tri", "sadness"), ("neu", "neutral")),
                 lambda spk, code: (f"{spk}/{code}-{spk}-b1.wav", f"{code}-{spk}-b1"), "emovo")


def make_tess(root: Path) -> Expected:
    folders = {"angry": "angry", "ps": "Pleasant_surprise", "sad": "sad"}  # folder names vary in real copies
    return _grid(root, ("OAF", "YAF"), (("angry", "angry"), ("ps", "pleasant_surprise"), ("sad", "sad")),
                 lambda spk, emo: (f"{spk}_{folders[emo]}/{spk}_back_{emo}.wav", f"{spk}_back_{emo}"), "tess")


def make_emodb(root: Path) -> Expected:
    return _grid(root, ("03", "08"), (("W", "anger"), ("T", "sadness"), ("L", "boredom")),
                 lambda spk, letter: (f"wav/{spk}a01{letter}a.wav", f"{spk}a01{letter}a"), "emodb")


def make_savee(root: Path) -> Expected:
    return _grid(root, ("DC", "JE"), (("a", "anger"), ("sa", "sadness"), ("su", "surprise"), ("n", "neutral")),
                 lambda spk, code: (f"AudioData/{spk}/{code}01.wav", f"{spk}_{code}01"), "savee")


def make_cremad(root: Path) -> Expected:
    root.mkdir(parents=True, exist_ok=True)
    (root / "VideoDemographics.csv").write_text(
        '"ActorID","Age","Sex","Race","Ethnicity"\n1001,51,"Male","Caucasian","Not Hispanic"\n'
        '1002,21,"Female","Caucasian","Not Hispanic"\n', encoding="utf-8")
    return _grid(root, ("1001", "1002"), (("DFA_ANG_XX", "anger"), ("IEO_HAP_LO", "happy"), ("TIE_NEU_XX", "neutral")),
                 lambda actor, code: (f"AudioWAV/{actor}_{code}.wav", f"{actor}_{code}"), "crema-d")


def make_folder(root: Path) -> Expected:
    codes = (("Angry", "Angry"), ("Calm", "Calm"), ("Sad", "Sad"))
    return _grid(root, ("anna", "bob"), codes, lambda spk, label: (f"{label}/{spk}/take1.wav", f"{label}/{spk}/take1"), "folder")


NEMO_HEADER = "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage"


def nemo_row(stem: str, emotion: str, speaker: str, gender: str = "female") -> str:
    """One ``data.tsv`` line as released: ``file_id`` ending in ``.wav``, speaker padded with spaces."""
    return f"{stem}.wav\t{emotion}\tAla ma kota.\tala ma kota\t        {speaker}\t{gender}\t27"


def make_nemo(root: Path) -> Expected:
    """Two speakers x (anger, sadness, fear): the first speaker's clips ``.wav``, the second's converted ``.flac``."""
    lines, out = [NEMO_HEADER], {}
    for i, (spk, gender, ext) in enumerate((("EB0", "female", "wav"), ("MP0", "male", "flac"))):
        for j, emo in enumerate(("anger", "sadness", "fear")):
            stem = f"{spk}_{emo}_{j + 1}"
            clip(root / "samples" / f"{stem}.{ext}", seed=3 * i + j, fmt=ext.upper())
            lines.append(nemo_row(stem, emo, spk, gender))
            out[stem] = (emo, f"nemo_{spk}")
    (root / "data.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@dataclass(frozen=True)
class Layout:
    """How to build one corpus fixture and where to put bad items in it."""

    make: Callable[[Path], Expected]
    valid_names: Tuple[str, str, str]  # unused valid-looking names (unreadable, zero-length, missing)
    bad_label: str  # a name whose label is unknown
    duplicate_of: str  # an existing file; a copy with another extension repeats its id


LAYOUTS: Dict[str, Layout] = {
    "ravdess": Layout(make_ravdess, ("Actor_01/03-01-04-01-01-01-01.wav", "Actor_01/03-01-04-02-01-01-01.wav",
                                     "Actor_02/03-01-04-01-01-01-02.wav"),
                      "Actor_01/03-01-09-01-01-01-01.wav", "Actor_01/03-01-05-01-01-01-01.wav"),
    "emovo": Layout(make_emovo, ("f1/gio-f1-b1.wav", "f1/gio-f1-b2.wav", "m2/gio-m2-b1.wav"),
                    "f1/xyz-f1-b1.wav", "f1/rab-f1-b1.wav"),
    "tess": Layout(make_tess, ("OAF_happy/OAF_back_happy.wav", "OAF_happy/OAF_bar_happy.wav", "YAF_fear/YAF_back_fear.wav"),
                   "OAF_bored/OAF_back_bored.wav", "OAF_angry/OAF_back_angry.wav"),
    "emodb": Layout(make_emodb, ("wav/03a02Fa.wav", "wav/03a04Fb.wav", "wav/08b01Ea.wav"),
                    "wav/03a01Xa.wav", "wav/03a01Wa.wav"),
    "savee": Layout(make_savee, ("AudioData/DC/h01.wav", "AudioData/DC/h02.wav", "AudioData/JE/f01.wav"),
                    "AudioData/DC/x01.wav", "AudioData/DC/a01.wav"),
    "crema-d": Layout(make_cremad, ("AudioWAV/1001_IWW_SAD_XX.wav", "AudioWAV/1001_IOM_SAD_XX.wav",
                                    "AudioWAV/1002_TAI_FEA_XX.wav"),
                      "AudioWAV/1001_DFA_XYZ_XX.wav", "AudioWAV/1001_DFA_ANG_XX.wav"),
    "folder": Layout(make_folder, ("Sad/anna/take2.wav", "Sad/anna/take3.wav", "Angry/bob/take2.wav"),
                     "loose.wav", "Angry/anna/take1.wav"),
}


def add_bad_items(root: Path, layout: Layout) -> Dict[str, str]:
    """Add one bad item of each kind; returns kind -> its path (as the loader will report it)."""
    unreadable, zero, missing = (root / n for n in layout.valid_names)
    garbage(unreadable)
    empty_wav(zero)
    missing.parent.mkdir(parents=True, exist_ok=True)
    missing.symlink_to(root / "no-such-file.wav")
    clip(root / layout.bad_label)
    dup = (root / layout.duplicate_of).with_suffix(".flac")
    clip(dup, fmt="FLAC")
    return {"unreadable": str(unreadable), "zero-length": str(zero), "missing": str(missing),
            "unknown label": str(root / layout.bad_label), "duplicate": str(dup)}

