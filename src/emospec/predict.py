"""Using a trained model: :func:`load` gives a :class:`Recognizer`.

>>> import emospec
>>> rec = emospec.load()                     # the bundled model; or a run dir, model.pt, model.onnx
>>> rec.predict("clip.wav").label            # doctest: +SKIP
'angry'

Inputs are a path, a binary file object, the file's bytes, or a waveform
(NumPy array or torch tensor, ``(samples,)`` or ``(samples, channels)``) with
its ``sr``. Everything is decoded to mono at the model's rate (16 kHz) and
turned into 3D log-Mel features exactly as in training. Two engines run the
model: torch (``model.pt``, CPU or CUDA) and onnxruntime (``model.onnx``
from :mod:`emospec.export`); both batch clips of different lengths exactly
(:mod:`emospec.ragged`), so :meth:`Recognizer.predict_batch` equals
:meth:`Recognizer.predict` clip by clip.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .audio import describe_source, info as audio_info, load as load_audio, resample, stream_blocks, to_mono
from .checkpoint import ModelBundle, load_model
from .errors import AudioError, CheckpointError, ConfigError, EmospecError
from .features import extract, extract_batch
from .model import batchnorm_layers, recalibrate_batchnorm
from .norm import (
    ADAPT_WEIGHT,
    ADAPT_WEIGHT_KEY,
    POPULATION_KEY,
    blend_stats,
    fold_into_model,
    group_stats,
    inference_model,
    model_input,
    population_stats,
)
from .ragged import RaggedAlexNet, pad_waves
from .results import SILENCE_DBFS, SILENCE_FRAME_S, Prediction, Timeline, envelope, level_dbfs

__all__ = ["Prediction", "Timeline", "Recognizer", "load", "SILENCE_DBFS", "SILENCE_FRAME_S"]

Item = Union[str, os.PathLike, bytes, BinaryIO, np.ndarray, torch.Tensor]


class _TorchEngine:
    """``run(waves)`` on a torch model: one clip through the plain model, several through RaggedAlexNet."""

    def __init__(self, bundle: ModelBundle, device: torch.device):
        self.device = device
        self.model = inference_model(bundle.model, bundle.meta).to(device).eval()
        self.ragged = RaggedAlexNet(self.model).eval()
        self.feature_config = bundle.feature_config
        self.labels = list(bundle.labels)

    @torch.no_grad()
    def run(self, waves: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        if len(waves) == 1:
            feats = extract(torch.from_numpy(waves[0]).to(self.device), self.feature_config)[None]
            emb = self.model.embed(model_input(self.model, feats))
            probs = self.model.probabilities(self.model.classifier[4](self.model.classifier[3](emb)))
        else:
            batch, lengths = pad_waves(waves)
            feats, frames = extract_batch(torch.from_numpy(batch).to(self.device), self.feature_config,
                                          torch.from_numpy(lengths).to(self.device))
            probs, emb = self.ragged(feats, frames)
        return probs.float().cpu().numpy(), emb.float().cpu().numpy()


def adapted_model(model, feats: Sequence[torch.Tensor], population, weight: float = ADAPT_WEIGHT, *, batchnorm: bool = False):
    """A copy of ``model`` adapted to the clips whose dB features are ``feats`` (each ``(3, n_mels, frames)``).

    Their statistics, moved ``weight`` of the way from ``population``'s
    (:func:`emospec.norm.blend_stats`; the clips' own when ``population`` is
    None), fold into the copy (:func:`emospec.norm.fold_into_model`); with
    ``batchnorm`` its BatchNorm statistics are then re-estimated on the same
    clips, each one batch (AdaBN, :func:`emospec.model.recalibrate_batchnorm`).
    The copy is in eval mode; ``model`` is left as it was.
    """
    stats = group_stats(list(feats))
    out = fold_into_model(model, stats if population is None else blend_stats(stats, population, weight))
    if batchnorm:
        where = next(out.parameters()).device
        recalibrate_batchnorm(out, [f[None].to(where) for f in feats])
    return out.eval()


class Recognizer:
    """A loaded model plus its feature front end (build it with :func:`load`).

    Parameters
    ----------
    model
        A :class:`~emospec.checkpoint.ModelBundle` (torch) or an
        :class:`emospec.export.OnnxModel` (onnxruntime).
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (torch device; for ONNX, CUDA
        selects onnxruntime's CUDA provider when it is installed).

    Inference changes no state, so one Recognizer can serve several threads.
    """

    def __init__(self, model, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        if isinstance(model, ModelBundle):
            self.backend = "torch"
            self.bundle: Optional[ModelBundle] = model
            self.engine = _TorchEngine(model, self.device)
            self.model = self.engine.model
            self.meta = dict(model.meta)
        else:
            self.backend, self.bundle, self.engine, self.model = "onnx", None, model, None
            self.meta = dict(model.meta)
        self.labels: List[str] = list(self.engine.labels)
        self.feature_config = self.engine.feature_config
        self.path = str(model.path)

    @property
    def sample_rate_hz(self) -> int:
        return self.feature_config.sample_rate_hz

    # ----------------------------------------------------------------- inputs
    def waveform(self, x: Item, sr: Optional[int] = None) -> np.ndarray:
        """Any input (path, file object, bytes, array/tensor + ``sr``) -> ``(samples,)`` float32 at the model rate.

        Raises
        ------
        AudioError
            Unreadable or empty audio, NaN/Inf samples, or an array without ``sr``.
        """
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if isinstance(x, np.ndarray):
            if sr is None:
                raise AudioError("<waveform>: pass sr= (sample rate in Hz) with a raw waveform")
            if int(sr) <= 0:
                raise AudioError(f"<waveform>: invalid sample rate {sr}")
            w = to_mono(x.T if x.ndim == 2 and x.shape[0] < x.shape[1] else x)
            if not np.all(np.isfinite(w)):
                raise AudioError("<waveform>: contains NaN or infinite samples")
            if w.size == 0:
                raise AudioError("<waveform>: empty (0 samples)")
            return resample(w, int(sr), self.sample_rate_hz)
        return load_audio(x, sr=self.sample_rate_hz)

    @staticmethod
    def _name(x: Item) -> str:
        return "<waveform>" if isinstance(x, (np.ndarray, torch.Tensor)) else describe_source(x)

    def _prediction(self, probs: np.ndarray, emb: np.ndarray, wave: np.ndarray, source: str) -> Prediction:
        """The clip's Prediction; a silent ``wave`` (below ``SILENCE_DBFS``) gets no label and no scores."""
        silent = bool(level_dbfs(wave, self.sample_rate_hz) < SILENCE_DBFS)
        return Prediction(
            label=None if silent else self.labels[int(np.argmax(probs))],
            scores={} if silent else {c: float(p) for c, p in zip(self.labels, probs)},
            embedding=[float(v) for v in emb],
            duration_s=wave.size / self.sample_rate_hz,
            silent=silent,
            source=source,
        )

    def adapt(self, inputs: Sequence[Item], *, sr: Optional[int] = None, weight: Optional[float] = None,
              batchnorm: bool = False) -> "Recognizer":
        """A Recognizer standardising every input with statistics pooled over ``inputs``.

        For a model trained with ``norm="speaker"`` or ``"corpus"``: pass
        clips of the speaker (or recording set) you will classify, labels not
        needed (a few minutes of speech is plenty; clips of several emotions
        are better: clips of one emotion shift the statistics the way that
        emotion does). ``weight`` is how far the statistics move from the
        training population's towards the clips' (:func:`emospec.norm.blend_stats`;
        default: the model file's ``meta["adapt_weight"]`` (:data:`emospec.norm.ADAPT_WEIGHT_KEY`), else
        :data:`emospec.norm.ADAPT_WEIGHT`; 1 uses the clips' alone;
        models saved without population statistics always use 1). The
        statistics fold into a copy of the model
        (:func:`emospec.norm.fold_into_model`), so batches and ONNX export of
        the adapted model behave the same. Without it the training
        population's statistics stand in (:func:`emospec.norm.inference_model`;
        each clip alone for models saved without them). Torch backend only.

        ``batchnorm=True`` also re-estimates the BatchNorm statistics on the
        clips, with the adapted standardisation (AdaBN; each clip one batch,
        :func:`emospec.model.recalibrate_batchnorm`). It helps most when the
        recordings differ most from the training corpora, and it is off by
        default because clips of one emotion can cost accuracy (README,
        issue #16's adaptation study).

        Raises
        ------
        ConfigError
            An ONNX backend, a model trained with ``norm="global"`` or ``"utterance"``, or no inputs.
        AudioError
            No input can be read or has sound (unreadable and silent ones,
            :data:`SILENCE_DBFS`, are otherwise left out and listed in
            ``meta["adapted"]["skipped"]``, one line each: digital silence
            would pull the statistics towards the floor).
        """
        if self.bundle is None:
            raise ConfigError("adapt() needs the torch backend (adapt the .pt model, then export it)")
        trained = self.bundle.model  # as trained: inference_model() may have folded population statistics in
        if trained.config.norm in ("global", "utterance"):
            what = "training statistics" if trained.config.norm == "global" else "each clip standardised with its own statistics"
            raise ConfigError(f"{self.path}: trained with norm={trained.config.norm!r} ({what}); nothing to adapt")
        if not inputs:
            raise ConfigError("adapt(): no clips given")
        feats, skipped = [], []
        for k, x in enumerate(inputs):  # a bad or silent clip is reported and left out; the others still adapt
            wave = self._decode(x, sr)
            if isinstance(wave, EmospecError):
                skipped.append(str(wave))
                continue
            if level_dbfs(wave, self.sample_rate_hz) < SILENCE_DBFS:  # silence says nothing about the speaker
                name = f"clip {k} (a waveform)" if isinstance(x, (np.ndarray, torch.Tensor)) else self._name(x)
                skipped.append(f"{name}: silent (no {SILENCE_FRAME_S * 1000:g} ms window above {SILENCE_DBFS:g} dBFS); "
                               "not used for the statistics")
                continue
            feats.append(extract(torch.from_numpy(wave), self.feature_config).cpu())
        if not feats:
            raise AudioError(f"adapt(): none of the {len(skipped)} clip(s) can be used; first: {skipped[0]}")
        population = population_stats(self.bundle.meta)
        if weight is None:
            weight = float(self.bundle.meta.get(ADAPT_WEIGHT_KEY, ADAPT_WEIGHT))
        used = weight if population is not None else 1.0
        model = adapted_model(trained, feats, population, weight, batchnorm=batchnorm)
        recalibrated = len(feats) if batchnorm and batchnorm_layers(model) else 0
        meta = {k: v for k, v in self.bundle.meta.items() if k != POPULATION_KEY}
        meta["adapted"] = {"clips": len(feats), "seconds": sum(f.shape[-1] for f in feats) * self.feature_config.hop_ms / 1000.0,
                           "norm": trained.config.norm, "weight": used, "batchnorm_clips": recalibrated, "skipped": skipped}
        bundle = ModelBundle(model, self.feature_config, list(self.labels), meta, self.bundle.path)
        return Recognizer(bundle, device=self.device)

    # ----------------------------------------------------------------- clips
    def predict(self, x: Item, sr: Optional[int] = None) -> Prediction:
        """Classify one clip (path, file object, bytes, or waveform with ``sr``)."""
        wave = self.waveform(x, sr)
        probs, emb = self.engine.run([wave])
        return self._prediction(probs[0], emb[0], wave, self._name(x))

    def embed(self, x: Item, sr: Optional[int] = None) -> np.ndarray:
        """The FC6 embedding alone, ``(embed_dim,)`` float32 (256 values)."""
        return self.engine.run([self.waveform(x, sr)])[1][0].astype(np.float32)

    def _decode(self, x: Item, sr: Optional[int]) -> np.ndarray | EmospecError:
        try:
            return self.waveform(x, sr)
        except EmospecError as e:
            return e

    def predict_iter(self, inputs: Sequence[Item], batch_size: int = 16, *, sr: Optional[int] = None,
                     workers: Optional[int] = None) -> Iterator[Tuple[int, Prediction | EmospecError]]:
        """Classify many clips, yielding ``(index, Prediction or the error)`` as batches finish.

        Decoding runs in a thread pool one chunk (``4 * batch_size`` clips)
        ahead of the model; within a chunk clips are sorted by length and
        batched with their neighbours, so little padding is computed, and each
        clip's result equals :meth:`predict` on it alone (to ~1e-6). A bad
        clip yields its :class:`~emospec.errors.EmospecError` and the rest go on.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        items = list(inputs)
        chunk = 4 * batch_size
        spans = [range(s, min(len(items), s + chunk)) for s in range(0, len(items), chunk)]
        with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
            pending = [pool.submit(self._decode, items[i], sr) for i in spans[0]] if spans else []
            for k, span in enumerate(spans):
                decoded = [f.result() for f in pending]
                pending = [pool.submit(self._decode, items[i], sr) for i in spans[k + 1]] if k + 1 < len(spans) else []
                good = []
                for i, w in zip(span, decoded):
                    if isinstance(w, EmospecError):
                        yield i, w
                    else:
                        good.append((i, w))
                good.sort(key=lambda iw: iw[1].size)
                for s in range(0, len(good), batch_size):
                    part = good[s : s + batch_size]
                    probs, emb = self.engine.run([w for _, w in part])
                    for j, (i, w) in enumerate(part):
                        yield i, self._prediction(probs[j], emb[j], w, self._name(items[i]))

    def predict_batch(self, inputs: Sequence[Item], batch_size: int = 16, *, sr: Optional[int] = None,
                      workers: Optional[int] = None) -> List[Prediction]:
        """Classify many clips (see :meth:`predict_iter`); results in input order.

        Raises
        ------
        EmospecError
            The first bad clip's error (use :meth:`predict_iter` to report bad clips and go on).
        """
        out: List[Optional[Prediction]] = [None] * len(inputs)
        for i, res in self.predict_iter(inputs, batch_size, sr=sr, workers=workers):
            if isinstance(res, EmospecError):
                raise res
            out[i] = res
        return out  # type: ignore[return-value]

    # ----------------------------------------------------------------- long audio
    def _windows(self, x: Item, window_s: float, hop_s: float, sr: Optional[int]) -> Tuple[float, Iterator]:
        """``(duration_s, iterator of (start_s, window (samples,) float32))``; paths and files are streamed."""
        rate = self.sample_rate_hz
        if isinstance(x, (np.ndarray, torch.Tensor)):
            wave = self.waveform(x, sr)
            step, win = int(round(hop_s * rate)), int(round(window_s * rate))
            starts = range(0, max(1, wave.size - win + step), step)
            return wave.size / rate, ((i / rate, wave[i : i + win]) for i in starts)
        if isinstance(x, (str, bytes, os.PathLike)) or not hasattr(x, "seek"):
            total = audio_info(x).duration_s
        else:  # a file object: reading its header moves it, so put it back
            pos = x.tell()
            total = audio_info(x).duration_s
            x.seek(pos)
        return total, stream_blocks(x, rate, hop_s, overlap_s=max(0.0, window_s - hop_s))

    def timeline(self, x: Item, window_s: float = 3.0, hop_s: float = 1.0, *, sr: Optional[int] = None,
                 batch_size: int = 16) -> Timeline:
        """Slide a ``window_s`` window every ``hop_s`` seconds over a recording of any length.

        A path, file object or bytes is streamed from disk one window at a
        time (memory: ``batch_size`` windows, whatever the file's length);
        arrays are windowed in memory. Windows start at ``0, hop_s, 2·hop_s,
        ...`` until one reaches the end: ``1 + ceil((duration - window_s) /
        hop_s)`` windows (one when the recording is shorter than a window).
        """
        if not (window_s > 0 and hop_s > 0):
            raise ConfigError(f"window_s and hop_s must be > 0, got {window_s}, {hop_s}")
        total, blocks = self._windows(x, window_s, hop_s, sr)
        starts: List[float] = []
        scores: List[np.ndarray] = []
        quiet: List[bool] = []
        env: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        batch: List[np.ndarray] = []
        hop = int(round(hop_s * self.sample_rate_hz))
        for start, block in blocks:
            if block.size == 0:
                continue
            last = start + window_s >= total - 1e-9
            env.append(envelope(block if last else block[:hop], start, self.sample_rate_hz))
            starts.append(start)
            quiet.append(bool(level_dbfs(block, self.sample_rate_hz) < SILENCE_DBFS))
            batch.append(block)
            if len(batch) == batch_size or last:
                scores.append(self.engine.run(batch)[0])
                batch = []
            if last:
                break
        if batch:
            scores.append(self.engine.run(batch)[0])
        if not starts:
            raise AudioError(f"{self._name(x)}: no audio samples to slide a window over")
        cat = lambda k: np.concatenate([e[k] for e in env])  # noqa: E731
        return Timeline(self.labels, np.asarray(starts, dtype=np.float64),
                        np.concatenate(scores).astype(np.float32).reshape(-1, len(self.labels)),
                        float(window_s), float(hop_s), float(total), cat(0), cat(1), cat(2), np.asarray(quiet, dtype=bool))


def load(model: Optional[str | os.PathLike] = None, device: Optional[str] = None, *,
         backend: Optional[str] = None) -> Recognizer:
    """Load a model for inference.

    Parameters
    ----------
    model
        A run directory, a ``model.pt`` or a ``model.onnx``; ``None`` loads the
        model bundled with emospec (offline; see ``emospec info``).
    device
        ``"cpu"``, ``"cuda"``...; default CUDA when available, else CPU.
    backend
        ``"torch"`` or ``"onnx"``; default from the file (``.onnx`` -> onnx).
        ``"onnx"`` with a ``.pt`` model exports it to a temporary ONNX file first.

    Raises
    ------
    CheckpointError
        No model given and none bundled, or the file is missing, corrupt or incompatible.
    """
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if model is None:
        from .modelcard import bundled_paths

        bundled = bundled_paths()[0]
        if not bundled.is_file():
            raise CheckpointError(f"{bundled}: no model given and no bundled model in this install")
        model = bundled
    path = Path(model)
    kind = backend or ("onnx" if path.suffix.lower() == ".onnx" else "torch")
    if kind not in ("torch", "onnx"):
        raise ConfigError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    if kind == "torch":
        if path.suffix.lower() == ".onnx":
            raise CheckpointError(f"{path}: an ONNX file runs with backend='onnx', not torch")
        return Recognizer(load_model(path, device=dev), device=dev)
    from .export import OnnxModel, export_onnx

    if path.suffix.lower() == ".onnx":
        return Recognizer(OnnxModel(path, device=dev), device=dev)
    with tempfile.TemporaryDirectory(prefix="emospec-onnx-") as tmp:
        export_onnx(load_model(path), Path(tmp) / "model.onnx", check=False)
        onnx_model = OnnxModel(Path(tmp) / "model.onnx", device=dev)  # the session holds the graph in memory
    onnx_model.path = str(path)
    return Recognizer(onnx_model, device=dev)
