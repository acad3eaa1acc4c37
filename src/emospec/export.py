"""ONNX export with dynamic batch and time axes, its onnxruntime runner, and a parity check.

Two graphs, both exact for batches of clips of different lengths (they wrap
:class:`~emospec.ragged.RaggedAlexNet`):

``input_kind="features"`` (default)
    inputs ``features`` ``(batch, 3, n_mels, frames)`` float32 dB and
    ``lengths`` ``(batch,)`` int64 valid frames; the caller computes the 3D
    log-Mel features (:func:`emospec.features.extract_batch`).
``input_kind="waveform"``
    inputs ``waveform`` ``(batch, samples)`` float32 in [-1, 1] at the model's
    sample rate and ``lengths`` ``(batch,)`` int64 valid samples; the log-Mel
    front end (float64 STFT, mel filterbank, deltas) is inside the graph.

Both give ``probs`` ``(batch, n_classes)`` and ``embedding`` ``(batch,
embed_dim)`` float32. The file's metadata (``emospec_format``, labels,
feature config, input kind, the model card) lets :class:`OnnxModel` and
``emospec.load("model.onnx")`` rebuild the same pre-processing. Export
needs the ``onnx`` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .checkpoint import ModelBundle, load_model
from .config import FeatureConfig, to_dict
from .errors import CheckpointError, ConfigError, ExportError
from .features import _constants, _front_end, extract, extract_batch, frames_for
from .files import atomic_write_bytes
from .norm import inference_model, model_input
from .ragged import RaggedAlexNet, pad_waves
from .saved_config import saved_feature_config

__all__ = ["ExportError", "OnnxModel", "export_onnx", "check_parity", "ONNX_FORMAT", "ONNX_FORMAT_VERSION"]

log = logging.getLogger(__name__)

ONNX_FORMAT = "emospec-onnx"
ONNX_FORMAT_VERSION = 1
DEFAULT_OPSET = 18
PARITY_DURATIONS_S = (0.3, 1.0, 3.7, 12.0)
"""Clip lengths the parity check runs (0.3 s is < 63 frames, so it is padded); each signal's first
:data:`PARITY_SILENCE_S` are digital silence, which a front end that skips the floor (``top_db``) gets wrong."""
PARITY_SILENCE_S = 0.2


class _WaveformGraph(torch.nn.Module):
    """``(waveform (batch, samples), lengths (batch,))`` -> ``(probs, embedding)``: front end + model."""

    def __init__(self, bundle: ModelBundle):
        super().__init__()
        self.cfg = bundle.feature_config
        self.net = RaggedAlexNet(bundle.model)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        keep = torch.arange(waveform.shape[1], device=waveform.device)[None, :] < lengths[:, None]
        feats, frames = _front_end(waveform * keep, frames_for(lengths, self.cfg), self.cfg, torch.float64)
        assert frames is not None
        return self.net(feats, frames)


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's own warnings (optional torchvision ops, deprecations) for this call only."""
    reg = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = reg.level
    reg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        reg.setLevel(level)


def _bundle(model: ModelBundle | str | os.PathLike) -> ModelBundle:
    """The bundle to export: its model as run on raw features (population statistics folded in, if any)."""
    import dataclasses

    bundle = model if isinstance(model, ModelBundle) else load_model(model)
    net = inference_model(bundle.model, bundle.meta)
    return bundle if net is bundle.model else dataclasses.replace(bundle, model=net)


def export_onnx(
    model: ModelBundle | str | os.PathLike,
    path: str | os.PathLike,
    *,
    input_kind: str = "features",
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    tolerance: float = 1e-4,
) -> Dict[str, Any]:
    """Export a model to ONNX (dynamic batch and time axes) and check it against torch.

    Parameters
    ----------
    model
        A loaded :class:`~emospec.checkpoint.ModelBundle`, a run directory or a ``model.pt``.
    path
        Where to write the ``.onnx`` file (atomically, one self-contained file).
    input_kind
        ``"features"`` or ``"waveform"`` (see the module docstring).
    opset
        ONNX opset, >= 17.
    check
        Run :func:`check_parity` afterwards.
    tolerance
        Largest allowed absolute probability difference in the parity check.

    Returns
    -------
    dict
        ``{"path", "input_kind", "opset", "bytes", "parity": {...} or None}``.

    Raises
    ------
    ExportError
        Export failed, or onnxruntime disagrees with torch by more than ``tolerance``.
    """
    if input_kind not in ("features", "waveform"):
        raise ConfigError(f"input_kind must be 'features' or 'waveform', got {input_kind!r}")
    if opset < 17:
        raise ConfigError(f"opset must be >= 17, got {opset}")
    bundle = _bundle(model)
    bundle.model.cpu().eval()
    cfg = bundle.feature_config
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    if input_kind == "features":
        graph: torch.nn.Module = RaggedAlexNet(bundle.model)
        n_frames = [150, 97]
        example = (torch.zeros(2, 3, cfg.n_mels, max(n_frames)), torch.tensor(n_frames))
        names = ["features", "lengths"]
        dyn = ({0: batch, 3: torch.export.Dim("frames", min=1, max=1 << 30)}, {0: batch})
    else:
        graph = _WaveformGraph(bundle)
        n_samples = [cfg.sample_rate_hz * 3 // 2, cfg.sample_rate_hz]
        example = (torch.zeros(2, max(n_samples)), torch.tensor(n_samples))
        names = ["waveform", "lengths"]
        dyn = ({0: batch, 1: torch.export.Dim("samples", min=1, max=1 << 40)}, {0: batch})
        # Fill the front end's constant cache with real tensors first: tracing must not store fake ones there.
        for dt in (torch.float64, torch.float32):
            _constants(cfg, "cpu", dt)
    chatter = io.StringIO()
    try:
        with torch.no_grad(), contextlib.redirect_stdout(chatter), _quiet_exporter():
            program = torch.onnx.export(graph.eval(), example, None, dynamo=True, dynamic_shapes=dyn, input_names=names,
                                        output_names=["probs", "embedding"], opset_version=opset, verbose=False)
    except ModuleNotFoundError as e:
        raise ExportError(f"{path}: ONNX export needs the onnx extra (pip install 'emospec[onnx]'): {e}") from e
    except Exception as e:  # the exporter raises many types
        raise ExportError(f"{path}: ONNX export failed ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    log.debug("torch.onnx: %s", chatter.getvalue())
    if program is None:  # torch.onnx.export returns the program when dynamo=True and no file is given
        raise ExportError(f"{path}: ONNX export returned no program (torch {torch.__version__})")
    proto = program.model_proto
    meta = {
        "emospec_format": ONNX_FORMAT,
        "emospec_format_version": str(ONNX_FORMAT_VERSION),
        "input_kind": input_kind,
        "labels": json.dumps(list(bundle.labels)),
        "feature_config": json.dumps(to_dict(cfg)),
        "source": str(bundle.path),
        "model_card": json.dumps(bundle.meta.get("model_card") or {}),
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    atomic_write_bytes(path, proto.SerializeToString())
    out = {"path": str(path), "input_kind": input_kind, "opset": opset, "bytes": Path(path).stat().st_size, "parity": None}
    if check:
        out["parity"] = check_parity(bundle, path, tolerance=tolerance)
    return out


class OnnxModel:
    """An exported emospec ONNX file run with onnxruntime.

    ``run(waves)`` has the same contract as the torch engine of
    :class:`emospec.predict.Recognizer`: a list of ``(samples,)`` float32
    waveforms at ``feature_config.sample_rate_hz`` in, ``(probs (n,
    n_classes), embeddings (n, embed_dim))`` float32 arrays out.

    Raises
    ------
    CheckpointError
        The file is missing, not ONNX, or not written by :func:`export_onnx`.
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu"):
        try:
            import onnxruntime as ort
        except ModuleNotFoundError as e:
            raise CheckpointError(f"{path}: running ONNX models needs onnxruntime (pip install 'emospec[onnx]')") from e
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"{p}: file not found")
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(p), providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise CheckpointError(f"{p}: not a readable ONNX model ({type(e).__name__}: {str(e).splitlines()[0]})") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("emospec_format") != ONNX_FORMAT:
            raise CheckpointError(f"{p}: not an emospec ONNX export (no emospec_format={ONNX_FORMAT!r} metadata)")
        if meta.get("emospec_format_version") != str(ONNX_FORMAT_VERSION):
            raise CheckpointError(f"{p}: emospec ONNX format version {meta.get('emospec_format_version')!r} is not "
                                  f"supported (this emospec reads {ONNX_FORMAT_VERSION})")
        try:
            self.feature_config = saved_feature_config(json.loads(meta["feature_config"]), source=str(p))
            self.labels: List[str] = [str(c) for c in json.loads(meta["labels"])]
            self.input_kind = meta["input_kind"]
            self.meta: Dict[str, Any] = {"model_card": json.loads(meta.get("model_card") or "{}"), "source": meta.get("source", "")}
        except (KeyError, ValueError, ConfigError) as e:
            raise CheckpointError(f"{p}: incompatible emospec ONNX metadata ({e})") from e
        self.path = str(p)

    @property
    def embed_dim(self) -> int:
        return int(self.session.get_outputs()[1].shape[1])

    def run(self, waves: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(n, n_classes)`` and embeddings ``(n, embed_dim)`` for ``n`` waveforms."""
        batch, lengths = pad_waves(waves)
        if self.input_kind == "waveform":
            feed = {"waveform": batch, "lengths": lengths}
        else:
            feats, frames = extract_batch(torch.from_numpy(batch), self.feature_config, torch.from_numpy(lengths))
            feed = {"features": feats.numpy(), "lengths": frames.numpy()}
        probs, emb = self.session.run(["probs", "embedding"], feed)
        return probs, emb


def _parity_waves(cfg: FeatureConfig, durations_s: Sequence[float], seed: int = 0) -> List[np.ndarray]:
    """Seeded speech-like test signals: digital silence, then noise through a slowly varying envelope, ``(samples,)`` float32."""
    rng = np.random.default_rng(seed)
    out = []
    for d in durations_s:
        n = max(1, int(round(d * cfg.sample_rate_hz)))
        t = np.arange(n) / cfg.sample_rate_hz
        env = (0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2) * (t >= min(PARITY_SILENCE_S, d / 2))
        out.append((0.2 * env * rng.standard_normal(n)).astype(np.float32))
    return out


def check_parity(
    model: ModelBundle | str | os.PathLike,
    onnx_path: str | os.PathLike,
    waves: Optional[Sequence[np.ndarray]] = None,
    *,
    tolerance: float = 1e-4,
) -> Dict[str, Any]:
    """Compare torch (each clip alone, the plain model) with onnxruntime (all clips in one batch).

    Parameters
    ----------
    waves
        ``(samples,)`` float32 waveforms at the model rate; default: seeded
        signals of :data:`PARITY_DURATIONS_S` seconds.

    Returns
    -------
    dict
        ``{"max_abs_diff_probs", "max_abs_diff_embedding", "n_clips", "durations_s", "tolerance"}``.

    Raises
    ------
    ExportError
        If any probability differs by more than ``tolerance``.
    """
    bundle = _bundle(model)
    cfg = bundle.feature_config
    waves = list(waves) if waves is not None else _parity_waves(cfg, PARITY_DURATIONS_S)
    ref_p, ref_e = [], []
    m = bundle.model.cpu().eval()
    with torch.no_grad():
        for w in waves:
            f = extract(torch.from_numpy(np.asarray(w, dtype=np.float32)), cfg)[None]
            e = m.embed(model_input(m, f))
            ref_p.append(m.probabilities(m.classifier[4](m.classifier[3](e)))[0].numpy())
            ref_e.append(e[0].numpy())
    probs, emb = OnnxModel(onnx_path).run(waves)
    res: Dict[str, Any] = {
        "max_abs_diff_probs": float(np.max(np.abs(probs - np.stack(ref_p)))),
        "max_abs_diff_embedding": float(np.max(np.abs(emb - np.stack(ref_e)))),
        "n_clips": len(waves),
        "durations_s": [round(len(w) / cfg.sample_rate_hz, 3) for w in waves],
        "tolerance": tolerance,
    }
    if not res["max_abs_diff_probs"] <= tolerance:
        raise ExportError(f"{onnx_path}: onnxruntime differs from torch by {res['max_abs_diff_probs']:.3g} "
                          f"(> {tolerance:g}) in probabilities")
    return res
