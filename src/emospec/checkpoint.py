"""Self-describing model files: weights + feature config + model config + labels.

``model.pt`` is a dict ``{"format": "emospec-model", "format_version": 1,
"feature_config", "model_config", "labels", "state_dict", "meta"}``; loading it
alone rebuilds the features, the model and the label order. Files are
written atomically; any problem on load is a :class:`CheckpointError` naming
the file and the cause.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import torch

from .config import FeatureConfig, to_dict
from .errors import CheckpointError, ConfigError
from .files import atomic_write_bytes
from .model import EmoAlexNet
from .saved_config import saved_feature_config, saved_model_config

__all__ = ["ModelBundle", "save_model", "load_model", "save_state", "load_state", "FORMAT", "FORMAT_VERSION"]

FORMAT = "emospec-model"
FORMAT_VERSION = 1


@dataclass
class ModelBundle:
    """A loaded model with everything needed to use it."""

    model: EmoAlexNet
    feature_config: FeatureConfig
    labels: List[str]
    meta: Dict[str, Any] = field(default_factory=dict)
    path: str = ""


def save_state(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically (temp file + fsync + rename)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: str | os.PathLike) -> Any:
    """``torch.load`` (weights only, CPU) of a file ``save_state`` wrote, after checking its CRCs.

    Raises
    ------
    CheckpointError
        One line naming the file: missing, a directory, not a zip archive,
        truncated, a checksum mismatch, or not loadable by torch.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: file not found")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, expected a .pt file")
    # torch.save writes a zip archive, and torch.load does not check its CRCs: damaged weights would load.
    try:
        with zipfile.ZipFile(p) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{p}: corrupt or unreadable checkpoint (not a complete zip archive: {e})") from e
    if bad is not None:
        raise CheckpointError(f"{p}: corrupt or unreadable checkpoint (checksum mismatch in {bad})")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, pickle errors, truncated files...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{p}: corrupt or unreadable checkpoint ({type(e).__name__}: {msg})") from e


def save_model(
    path: str | os.PathLike,
    model: EmoAlexNet,
    feature_config: FeatureConfig,
    labels: List[str],
    meta: Dict[str, Any] | None = None,
    *,
    half: bool = False,
) -> None:
    """Write a self-describing ``model.pt`` (``half=True`` stores float16 weights)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in model.state_dict().items()}
    save_state(
        path,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "feature_config": to_dict(feature_config),
            "model_config": to_dict(model.config),
            "labels": list(labels),
            "state_dict": state,
            "meta": meta or {},
        },
    )


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> ModelBundle:
    """Load a ``model.pt`` (or a run directory holding one) for inference.

    Raises
    ------
    CheckpointError
        Missing or corrupt file, another format or version, configs that do
        not rebuild, or weights that do not fit the described model.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    obj = load_state(p)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not an emospec model file (no format tag {FORMAT!r})")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{p}: model format version {obj.get('format_version')!r} is not supported (this emospec reads {FORMAT_VERSION})"
        )
    try:
        fcfg = saved_feature_config(obj["feature_config"], source=str(p))
        mcfg = saved_model_config(obj["model_config"], source=str(p))
        labels = [str(x) for x in obj["labels"]]
    except (KeyError, ConfigError) as e:
        raise CheckpointError(f"{p}: incompatible model description ({e})") from e
    if len(labels) != mcfg.n_classes:
        raise CheckpointError(f"{p}: {len(labels)} labels but the model has {mcfg.n_classes} outputs")
    if fcfg.n_mels != mcfg.n_mels:
        raise CheckpointError(f"{p}: feature n_mels={fcfg.n_mels} does not match model n_mels={mcfg.n_mels}")
    model = EmoAlexNet(config=mcfg)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in obj["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        why = " ".join(str(e).split())  # torch's first line only says "Error(s) in loading state_dict"
        raise CheckpointError(f"{p}: weights do not fit the described model ({why[:300]})") from e
    model.eval().to(device)
    return ModelBundle(model=model, feature_config=fcfg, labels=labels, meta=dict(obj.get("meta") or {}), path=str(p))
