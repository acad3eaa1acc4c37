"""ONNX export: dynamic axes, metadata, onnxruntime vs torch parity on real clips, errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
import soundfile as sf

import emospec
from conftest import LABELS4, SR
from emospec.errors import CheckpointError, ConfigError
from emospec.export import ONNX_FORMAT, OnnxModel, check_parity, export_onnx


@pytest.fixture(scope="module")
def real_waves(ravdess_clips):
    """Real clips of several lengths at 16 kHz: 0.4 s of speech (< 63 frames, padded), whole clips, and 14 s concatenated."""
    waves = [sf.read(p, dtype="float32")[0] for p in ravdess_clips]
    # 1.0-1.4 s: speech (the clip's first 0.8 s are silent, and silent clips get no scores to compare)
    return [waves[0][16000:22400], *waves[:6], np.concatenate(waves[2:6])]


def _max_diff(a, b) -> float:
    return max(abs(x.scores[c] - y.scores[c]) for x, y in zip(a, b) for c in LABELS4)


def test_features_graph_has_dynamic_axes_and_metadata(onnx_features_path):
    proto = onnx.load(str(onnx_features_path))
    onnx.checker.check_model(proto)
    opset = {o.domain: o.version for o in proto.opset_import}[""]
    assert opset >= 17
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims["features"][1:3] == [3, 128]
    assert isinstance(dims["features"][0], str) and isinstance(dims["features"][3], str)  # symbolic batch, frames
    assert isinstance(dims["lengths"][0], str)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["emospec_format"] == ONNX_FORMAT and meta["input_kind"] == "features"
    m = OnnxModel(onnx_features_path)
    assert m.labels == LABELS4 and m.feature_config.n_mels == 128 and m.embed_dim == 256


def test_onnx_matches_torch_on_real_clips(random_model_path, onnx_features_path, real_waves):
    durations = [w.size / SR for w in real_waves]
    assert min(durations) < 0.63 and max(durations) > 10
    torch_rec = emospec.load(random_model_path, device="cpu")
    onnx_rec = emospec.load(onnx_features_path, device="cpu")
    assert onnx_rec.backend == "onnx" and onnx_rec.labels == torch_rec.labels
    ref = [torch_rec.predict(w, sr=SR) for w in real_waves]  # torch, each clip alone
    one_by_one = [onnx_rec.predict(w, sr=SR) for w in real_waves]
    batched = onnx_rec.predict_batch(real_waves, batch_size=4, sr=SR)  # onnxruntime, ragged batches
    assert _max_diff(ref, one_by_one) < 1e-4
    assert _max_diff(ref, batched) < 1e-4
    assert max(np.abs(np.subtract(a.embedding, b.embedding)).max() for a, b in zip(ref, batched)) < 1e-4
    assert [r.label for r in ref] == [b.label for b in batched]
    res = check_parity(random_model_path, onnx_features_path, real_waves)
    assert res["n_clips"] == len(real_waves) and res["max_abs_diff_probs"] < 1e-4


@pytest.mark.slow
def test_waveform_graph_matches_torch(random_model_path, real_waves, tmp_path):
    out = tmp_path / "wave.onnx"
    res = export_onnx(random_model_path, out, input_kind="waveform")
    assert res["parity"]["max_abs_diff_probs"] < 1e-4 and res["input_kind"] == "waveform"
    proto = onnx.load(str(out))
    names = [i.name for i in proto.graph.input]
    assert names == ["waveform", "lengths"]
    ref = emospec.load(random_model_path, device="cpu").predict_batch(real_waves, sr=SR)
    got = emospec.load(out, device="cpu").predict_batch(real_waves, batch_size=3, sr=SR)
    assert _max_diff(ref, got) < 1e-4
    # exporting must leave the feature front end usable in this process
    assert emospec.load(random_model_path, device="cpu").predict(real_waves[1], sr=SR).label == ref[1].label


@pytest.mark.slow
@pytest.mark.parametrize("change", [{}, {"relative_to_peak": True}, {"trim_db": 40.0}])
def test_waveform_graph_floors_digital_silence_as_torch_does(ravdess_clips, tmp_path, change):
    """The default front end floors each clip 60 dB below its peak (``top_db``); RAVDESS clips open with digital
    silence, so a waveform graph that skipped the floor disagreed with torch by up to 0.9 in probability.
    Features relative to the peak, and features with that silence trimmed (``trim_db``), go through the same graph."""
    import dataclasses

    import torch

    from emospec.checkpoint import save_model
    from emospec.config import FeatureConfig
    from emospec.export import PARITY_SILENCE_S, _parity_waves
    from emospec.model import EmoAlexNet
    from emospec.recipe import RECIPES

    cfg = dataclasses.replace(RECIPES["default"].features, **change)
    assert cfg.top_db == 60.0
    torch.manual_seed(0)
    model = EmoAlexNet(config=RECIPES["default"].model_for(len(LABELS4))).eval()
    model.set_normalization(torch.full((3, cfg.n_mels), -40.0), torch.full((3, cfg.n_mels), 10.0))
    with torch.no_grad():
        model.classifier[4].weight.mul_(1000.0)
    src = tmp_path / "floored.pt"
    save_model(src, model, cfg, LABELS4, {"note": "random weights for tests"})
    waves = [sf.read(p, dtype="float32")[0] for p in ravdess_clips[:4]]
    assert all(np.abs(w[:1600]).max() < 1e-3 * np.abs(w).max() for w in waves)  # silence > 60 dB below the peak
    res = export_onnx(src, tmp_path / "floored.onnx", input_kind="waveform")  # its own parity waves open with silence
    assert res["parity"]["max_abs_diff_probs"] < 1e-4
    assert all(np.abs(w[: int(PARITY_SILENCE_S * cfg.sample_rate_hz)]).max() == 0
               for w in _parity_waves(FeatureConfig(), (1.0,)))
    ref = emospec.load(src, device="cpu").predict_batch(waves, sr=SR)
    got = emospec.load(tmp_path / "floored.onnx", device="cpu").predict_batch(waves, sr=SR)
    assert max(max(r.scores.values()) for r in ref) > 0.5  # not uniform: the comparison can tell
    assert _max_diff(ref, got) < 1e-4


def test_bad_onnx_files_raise_checkpoint_error(tmp_path, onnx_features_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match=r"junk\.onnx: not a readable ONNX model"):
        emospec.load(junk)
    proto = onnx.load(str(onnx_features_path))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    with pytest.raises(CheckpointError, match=r"foreign\.onnx: not an emospec ONNX export"):
        OnnxModel(foreign)
    proto.metadata_props.add(key="emospec_format", value=ONNX_FORMAT)
    proto.metadata_props.add(key="emospec_format_version", value="99")
    onnx.save(proto, str(foreign))
    with pytest.raises(CheckpointError, match="format version '99' is not supported"):
        OnnxModel(foreign)
    with pytest.raises(CheckpointError, match="missing.onnx: file not found"):
        OnnxModel(tmp_path / "missing.onnx")


def test_export_rejects_bad_options(random_model_path, tmp_path):
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(random_model_path, tmp_path / "m.onnx", opset=16)
    with pytest.raises(ConfigError, match="input_kind"):
        export_onnx(random_model_path, tmp_path / "m.onnx", input_kind="spectrogram")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_load_pt_with_onnx_backend_exports_in_memory(random_model_path, real_waves):
    rec = emospec.load(random_model_path, device="cpu", backend="onnx")
    assert rec.backend == "onnx" and rec.path == str(random_model_path)
    ref = emospec.load(random_model_path, device="cpu").predict_batch(real_waves[:3], sr=SR)
    assert _max_diff(ref, rec.predict_batch(real_waves[:3], sr=SR)) < 1e-4
    with pytest.raises(ConfigError, match="backend"):
        emospec.load(random_model_path, backend="tflite")


@pytest.mark.parametrize("change", [{"pool": "stats", "width": 1.0}, {"width": 0.5}], ids=["stats-pool", "width0.5"])
def test_stats_pool_and_slim_models_export_and_match_torch(real_waves, tmp_path, change):
    """A model with ``pool="stats"`` (mean and std over each clip's own time positions; at AlexNet's channels, for
    which the weight scaling below was chosen), or with every conv at half its channels (``width=0.5``, the default),
    exports with dynamic axes, and onnxruntime on ragged batches gives what torch gives each clip alone (and the
    saved model reloads at its own width)."""
    import torch

    from emospec.checkpoint import save_model
    from emospec.model import EmoAlexNet
    from emospec.recipe import RECIPES

    default = RECIPES["default"]
    torch.manual_seed(0)
    model = EmoAlexNet(config=replace(default.model_for(len(LABELS4)), **change)).eval()
    with torch.no_grad():  # scaled so that random weights give clips different, unsaturated probabilities
        model.classifier[1].weight.mul_(30.0)
        model.classifier[4].weight.mul_(40.0)
    path = tmp_path / "changed.pt"
    save_model(path, model, default.features, LABELS4, {"note": "random weights for tests"}, half=False)
    assert emospec.load(path, device="cpu").model.config == model.config
    out = tmp_path / "changed.onnx"
    assert export_onnx(path, out)["parity"]["max_abs_diff_probs"] < 1e-4
    res = check_parity(path, out, real_waves)
    assert res["n_clips"] == len(real_waves) and res["max_abs_diff_probs"] < 1e-4
    probs = [p.scores for p in emospec.load(out, device="cpu").predict_batch(real_waves, batch_size=4, sr=SR) if p.scores]
    spread = max(max(s[c] for s in probs) - min(s[c] for s in probs) for c in LABELS4)
    assert spread > 0.05, spread  # the clips get different answers: the parity above compared something
