"""The classic baseline: eGeMAPSv02 functionals + a standardised, class-balanced SVM.

Each clip becomes the 88 eGeMAPSv02 functionals of openSMILE (Eyben et al.
2016; the ``opensmile`` package, mean/stddev/percentiles of pitch, loudness,
jitter, shimmer, formants, spectral slope... over the whole clip). A
scikit-learn pipeline ``StandardScaler -> SVC(class_weight="balanced")`` is
fitted on the training fold; its ``C`` is chosen from a grid by an inner
cross-validation grouped by speaker (:class:`~sklearn.model_selection.GroupKFold`)
that maximises unweighted accuracy (balanced accuracy). The features are
computed once per file and kept in a cache (``.npz``) keyed by path, size and
modification time, so a run (or a re-run) extracts each clip once.

The baseline also gives class probabilities (:func:`svm_probabilities`:
Platt's sigmoid fitted on its out-of-fold scores over the training
speakers), and :func:`fuse` averages them with the network's calibrated
probabilities: the late fusion every evaluation reports beside both systems.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .audio import load
from .errors import ConfigError, DataError, EmospecError
from .files import atomic_write_bytes

__all__ = ["BaselineConfig", "Functionals", "FoldPrediction", "egemaps_functionals", "fit_svm", "svm_pipeline", "run_fold",
           "svm_probabilities", "fuse", "FUSION_WEIGHT", "N_FUNCTIONALS"]

log = logging.getLogger(__name__)

N_FUNCTIONALS = 88
"""eGeMAPSv02 functionals per clip."""


@dataclass(frozen=True)
class BaselineConfig:
    """The eGeMAPS + SVM baseline.

    ``kernel`` is ``"linear"`` (as in the eGeMAPS paper) or ``"rbf"``; ``c_grid``
    the SVM costs tried by the inner speaker-grouped CV with ``inner_folds``
    folds (fewer when there are fewer training speakers). ``norm`` standardises
    the functionals per ``"speaker"`` or ``"corpus"`` (from their unlabelled
    audio, see :mod:`emospec.norm`) before the SVM's own scaler; ``"global"``
    (the default) leaves that to the scaler fitted on the training side.
    """

    kernel: str = "linear"
    c_grid: Tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
    inner_folds: int = 5
    sample_rate_hz: int = 16000
    norm: str = "global"

    def __post_init__(self) -> None:
        if self.norm not in ("global", "speaker", "corpus"):
            raise ConfigError(f"BaselineConfig.norm must be 'global', 'speaker' or 'corpus', got {self.norm!r}")
        if self.kernel not in ("linear", "rbf"):
            raise ConfigError(f"BaselineConfig.kernel must be 'linear' or 'rbf', got {self.kernel!r}")
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise ConfigError(f"BaselineConfig.c_grid must be positive values, got {self.c_grid}")
        if self.inner_folds < 2:
            raise ConfigError(f"BaselineConfig.inner_folds must be >= 2, got {self.inner_folds}")


@dataclass
class Functionals:
    """eGeMAPSv02 functionals of a list of files.

    ``values`` is ``(n_files, 88)`` float64 (a row of NaN where a file failed);
    ``names`` the 88 openSMILE feature names; ``problems`` one line per failed
    file; ``n_computed`` how many files were extracted now (the rest came from
    the cache).
    """

    values: np.ndarray
    names: List[str]
    problems: List[str] = field(default_factory=list)
    n_computed: int = 0

    @property
    def ok(self) -> np.ndarray:
        """``(n_files,)`` bool: the file's functionals are usable."""
        return np.isfinite(self.values).all(1)


def _file_key(path: str) -> Tuple[str, int, int]:
    st = os.stat(path)
    return os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns)


def _read_cache(path: Path) -> Dict[Tuple[str, int, int], np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = zip(z["paths"].tolist(), z["sizes"].tolist(), z["mtimes_ns"].tolist())
            return {(str(p), int(s), int(m)): v for (p, s, m), v in zip(keys, z["values"])}
    except (OSError, ValueError, KeyError) as e:
        log.warning("%s: unreadable eGeMAPS cache, recomputing (%s)", path, e)
        return {}


def _write_cache(path: Path, entries: Dict[Tuple[str, int, int], np.ndarray]) -> None:
    keys = list(entries)
    buf = io.BytesIO()
    np.savez(buf, paths=np.array([k[0] for k in keys], dtype=str), sizes=np.array([k[1] for k in keys], dtype=np.int64),
             mtimes_ns=np.array([k[2] for k in keys], dtype=np.int64),
             values=np.stack([entries[k] for k in keys]) if keys else np.zeros((0, N_FUNCTIONALS)))
    atomic_write_bytes(path, buf.getvalue())


def egemaps_functionals(
    paths: Sequence[str],
    *,
    sample_rate_hz: int = 16000,
    cache: Optional[str | os.PathLike] = None,
    progress: bool = True,
) -> Functionals:
    """The 88 eGeMAPSv02 functionals of each file (openSMILE).

    Parameters
    ----------
    paths
        Audio files (anything :func:`emospec.audio.load` decodes); each is
        decoded to mono at ``sample_rate_hz`` Hz before openSMILE sees it.
    cache
        Optional ``.npz`` file: entries for unchanged files (same path, size
        and mtime) are reused, new ones added (written atomically).

    Returns
    -------
    Functionals
        ``values`` ``(len(paths), 88)`` float64; failed files are NaN rows and
        a line in ``problems``.
    """
    import opensmile
    from tqdm.auto import tqdm

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    names = list(smile.feature_names)
    cache_path = Path(cache) if cache is not None else None
    known = _read_cache(cache_path) if cache_path is not None else {}
    values = np.full((len(paths), len(names)), np.nan)
    problems: List[str] = []
    computed = 0
    for i, p in enumerate(tqdm(paths, desc="eGeMAPS", unit="clip", disable=not progress, leave=False)):
        try:
            key = _file_key(p)
        except OSError as e:
            problems.append(f"{p}: cannot read ({e.strerror or e})")
            continue
        if key in known and known[key].shape == (len(names),):
            values[i] = known[key]
            continue
        try:
            x = load(p, sr=sample_rate_hz)
            row = smile.process_signal(x, sample_rate_hz).to_numpy(dtype=np.float64).reshape(-1)
        except EmospecError as e:
            problems.append(str(e))
            continue
        except (RuntimeError, ValueError) as e:  # openSMILE rejects some signals (e.g. too short)
            problems.append(f"{p}: openSMILE failed ({type(e).__name__}: {e})")
            continue
        values[i] = row
        known[key] = row
        computed += 1
    if cache_path is not None and computed:
        _write_cache(cache_path, known)
    return Functionals(values, names, problems, computed)


def svm_pipeline(cfg: BaselineConfig = BaselineConfig(), c: float = 1.0):
    """The baseline's classifier, unfitted: ``StandardScaler -> SVC(cfg.kernel, C=c, class_weight="balanced")``
    on ``(n, 88)`` functionals (the step names ``standardscaler`` / ``svc`` of :func:`fit_svm`'s grid)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(kernel=cfg.kernel, C=c, class_weight="balanced"))


def fit_svm(X: np.ndarray, y: np.ndarray, groups: Sequence[str] | np.ndarray, cfg: BaselineConfig = BaselineConfig()):
    """Fit ``StandardScaler -> SVC`` with C chosen by speaker-grouped inner CV on UA.

    Parameters
    ----------
    X
        ``(n, 88)`` float functionals of the training clips.
    y
        ``(n,)`` int class indices.
    groups
        ``(n,)`` speaker of each clip; no speaker is split across inner folds.

    Returns
    -------
    sklearn.model_selection.GridSearchCV
        Refitted on all of ``X``; ``best_params_["svc__C"]`` is the chosen C and
        ``cv_results_`` holds the inner UA of every C.
    """
    from sklearn.model_selection import GridSearchCV, GroupKFold

    n_groups = len(set(groups))
    if n_groups < 2:
        raise DataError(f"baseline: the inner speaker-grouped CV needs >= 2 training speakers, got {n_groups}")
    if len(set(np.asarray(y).tolist())) < 2:
        raise DataError("baseline: training data has a single class")
    search = GridSearchCV(svm_pipeline(cfg), {"svc__C": list(cfg.c_grid)}, scoring="balanced_accuracy",
                          cv=GroupKFold(n_splits=min(cfg.inner_folds, n_groups)), refit=True, n_jobs=1, error_score="raise")
    return search.fit(np.asarray(X), np.asarray(y), groups=list(groups))


FUSION_WEIGHT = 0.5
"""The SVM's share of the fused probabilities (:func:`fuse`); fixed in session 19 before any run was scored."""


def svm_probabilities(X_train: np.ndarray, y_train: np.ndarray, groups_train: Sequence[str] | np.ndarray,
                      X_test: np.ndarray, c: float, n_classes: int, cfg: BaselineConfig = BaselineConfig()) -> np.ndarray:
    """``(n_test, n_classes)`` class probabilities of the baseline's SVM (:func:`svm_pipeline` with cost ``c``).

    Platt scaling: scikit-learn's ``CalibratedClassifierCV`` (sigmoid, one
    model refitted on all of ``X_train``) maps the SVM's one-vs-rest scores to
    probabilities with sigmoids fitted on its out-of-fold scores, the folds
    grouped by ``groups_train`` (speakers), as many as the inner CV's, so the
    probabilities are calibrated on speakers each score's SVM never saw, as the
    network's temperature is. Classes absent from ``y_train`` get probability 0.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GroupKFold

    groups = np.asarray([str(g) for g in groups_train])
    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise DataError(f"baseline: calibrating the SVM needs >= 2 training speakers, got {n_groups}")
    splits = list(GroupKFold(n_splits=min(cfg.inner_folds, n_groups)).split(X_train, y_train, groups))
    cal = CalibratedClassifierCV(svm_pipeline(cfg, c), method="sigmoid", cv=splits, ensemble=False)
    cal.fit(np.asarray(X_train), np.asarray(y_train))
    out = np.zeros((len(X_test), n_classes))
    out[:, cal.classes_] = cal.predict_proba(np.asarray(X_test))
    return out


def fuse(p_model: np.ndarray, p_svm: np.ndarray, w: float = FUSION_WEIGHT) -> np.ndarray:
    """``(n, k)`` fused class probabilities ``(1 - w) p_model + w p_svm`` of two ``(n, k)`` probability arrays."""
    p_model, p_svm = np.asarray(p_model, dtype=np.float64), np.asarray(p_svm, dtype=np.float64)
    if p_model.shape != p_svm.shape:
        raise ValueError(f"fusion: model probabilities {p_model.shape} and SVM probabilities {p_svm.shape} differ in shape")
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"fusion: the SVM weight must lie in [0, 1], got {w}")
    return (1.0 - w) * p_model + w * p_svm


@dataclass
class FoldPrediction:
    """The baseline on one fold: predictions ``(n_test,)`` int, chosen C, its inner UA, UA per C, and the
    test clips' class probabilities ``(n_test, n_classes)`` (:func:`svm_probabilities`)."""

    y_pred: np.ndarray
    c: float
    inner_ua: float
    grid: Dict[str, float]
    probs: np.ndarray


def run_fold(
    X: np.ndarray, y: np.ndarray, groups: Sequence[str] | np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
    cfg: BaselineConfig = BaselineConfig(), n_classes: Optional[int] = None,
) -> FoldPrediction:
    """Fit on ``train_idx`` (inner CV grouped by ``groups``), predict ``test_idx``; probabilities over
    ``n_classes`` classes (default ``y.max() + 1``)."""
    group_ids = np.asarray([str(g) for g in groups])
    search = fit_svm(X[train_idx], y[train_idx], group_ids[train_idx], cfg)
    res = search.cv_results_
    grid = {f"{c:g}": float(s) for c, s in zip(res["param_svc__C"], res["mean_test_score"])}
    c = float(search.best_params_["svc__C"])
    probs = svm_probabilities(X[train_idx], y[train_idx], group_ids[train_idx], X[test_idx], c,
                              int(n_classes if n_classes is not None else np.max(y) + 1), cfg)
    return FoldPrediction(search.predict(X[test_idx]).astype(np.int64), c, float(search.best_score_), grid, probs)
