"""The bad-input corpus through the command line: damaged model files, and batches that report and go on."""

from __future__ import annotations

import pytest

import badinput as B
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
