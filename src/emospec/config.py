"""Configuration as small frozen dataclasses of plain values, saved as JSON.

The defaults are the recommended recipe, the one ``--recipe default`` names
(:data:`emospec.recipe.RECIPES`): ``FeatureConfig()``, ``ModelConfig()`` and
``TrainConfig()`` are what ``emospec train`` trains, so a Python user and a
command-line user who take "the default" get the same model. The paper's
settings are the ``paper`` recipe, spelled out field by field in
:mod:`emospec.recipe`.

Change a config with :func:`dataclasses.replace`; save it with :func:`emospec.files.save_json`
(``config.json`` beside ``model.pt``); load it with :func:`from_dict`, which
rejects unknown keys so a typo never passes silently. A *saved model's* configs
are read with :mod:`emospec.saved_config`, which fills fields it predates with
the values it was trained with, not today's defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Type, TypeVar

from .errors import ConfigError

__all__ = [
    "FeatureConfig",
    "ModelConfig",
    "TrainConfig",
    "to_dict",
    "from_dict",
]

T = TypeVar("T")


@dataclass(frozen=True)
class FeatureConfig:
    """How a waveform becomes a 3D log-Mel spectrogram.

    Defaults are the default recipe: 25 ms Hann frames every 10 ms at 16 kHz,
    a 512-point FFT, 64 Slaney mel bands over 0-8000 Hz, power spectrogram,
    ``10·log10(max(power, amin))`` dB floored 60 dB below each clip's peak,
    and delta / delta-delta over ``delta_width`` frames (regression with
    N = (width-1)/2, edges repeated). Ali et al. (2024) and Chen et al. (2018)
    use 128 mel bands and no floor (the ``paper`` recipe). ``top_db`` (None:
    no floor) floors each clip's log-Mel at its peak minus ``top_db`` dB, as
    ``librosa.power_to_db(top_db=...)`` does: digital silence (-100 dB at
    ``amin``) and faint noise then read the same. ``relative_to_peak`` reads
    each clip's log-Mel in dB below its peak (``librosa.power_to_db(ref=np.max)``):
    the static channel no longer changes with the recording's gain
    (microphone, distance, normalisation); the deltas never did.
    ``trim_db`` (default 40; None: keep every frame) drops the leading and trailing
    frames whose energy (all bands summed, before the floor) lies more than
    ``trim_db`` dB below the clip's loudest frame, keeping
    :data:`emospec.features.TRIM_PAD_FRAMES` frames either side of the first
    and last louder one (``librosa.effects.trim(top_db=...)`` on the mel
    energies); pauses inside the clip stay. Corpora differ in how much
    silence surrounds each utterance (RAVDESS about half of every clip,
    nEMO almost none), and silence shifts per-speaker statistics and fills
    training crops. Trimming is part of the default since session 34 (with
    1-s training crops); the ``paper`` recipe keeps every frame, and a saved
    model described without ``trim_db`` reads as untrimmed
    (:func:`emospec.saved_config.saved_feature_config`).
    """

    sample_rate_hz: int = 16000
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 64
    fmin_hz: float = 0.0
    fmax_hz: float = 8000.0
    mel_scale: str = "slaney"  # "slaney" or "htk"
    mel_norm: str = "slaney"  # "slaney" (area-normalised triangles) or "none"
    power: float = 2.0
    amin: float = 1e-10
    delta_width: int = 5
    top_db: Optional[float] = 60.0
    relative_to_peak: bool = False
    trim_db: Optional[float] = 40.0

    def __post_init__(self) -> None:
        if self.top_db is not None and not self.top_db > 0:
            raise ConfigError(f"FeatureConfig.top_db must be > 0 or None, got {self.top_db}")
        if self.trim_db is not None and not self.trim_db > 0:
            raise ConfigError(f"FeatureConfig.trim_db must be > 0 or None, got {self.trim_db}")
        if self.sample_rate_hz <= 0:
            raise ConfigError(f"FeatureConfig.sample_rate_hz must be > 0, got {self.sample_rate_hz}")
        if self.win_length < 1 or self.win_length > self.n_fft:
            raise ConfigError(
                f"FeatureConfig: window of {self.win_ms} ms = {self.win_length} samples "
                f"must be in 1..n_fft={self.n_fft}"
            )
        if self.hop_length < 1:
            raise ConfigError(f"FeatureConfig.hop_ms={self.hop_ms} gives a hop of 0 samples")
        if self.n_mels < 1:
            raise ConfigError(f"FeatureConfig.n_mels must be >= 1, got {self.n_mels}")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            raise ConfigError(
                f"FeatureConfig: need 0 <= fmin_hz < fmax_hz <= sr/2, got "
                f"{self.fmin_hz}, {self.fmax_hz} at {self.sample_rate_hz} Hz"
            )
        if self.mel_scale not in ("slaney", "htk"):
            raise ConfigError(f"FeatureConfig.mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.mel_norm not in ("slaney", "none"):
            raise ConfigError(f"FeatureConfig.mel_norm must be 'slaney' or 'none', got {self.mel_norm!r}")
        if self.power not in (1.0, 2.0):
            raise ConfigError(f"FeatureConfig.power must be 1.0 or 2.0, got {self.power}")
        if self.amin <= 0:
            raise ConfigError(f"FeatureConfig.amin must be > 0, got {self.amin}")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ConfigError(f"FeatureConfig.delta_width must be odd and >= 3, got {self.delta_width}")

    @property
    def win_length(self) -> int:
        """Analysis window length in samples (400 at the defaults)."""
        return int(round(self.sample_rate_hz * self.win_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        """Hop between frames in samples (160 at the defaults)."""
        return int(round(self.sample_rate_hz * self.hop_ms / 1000.0))

    def n_frames(self, n_samples: int) -> int:
        """Frames computed for ``n_samples`` samples (centred frames: ``1 + n // hop``), before any ``trim_db``."""
        return 1 + int(n_samples) // self.hop_length


NORMS = ("global", "utterance", "speaker", "corpus")
"""Input standardisation modes of :attr:`ModelConfig.norm`."""

POOLS = ("grid", "stats")
"""How :attr:`ModelConfig.pool` turns the last conv maps into FC6's input."""


@dataclass(frozen=True)
class ModelConfig:
    """The modified AlexNet (see :mod:`emospec.model`).

    Defaults are the default recipe: the paper's AlexNet with LRN plus
    BatchNorm after every conv, on per-speaker standardised input of 64 mel
    bands. ``batch_norm`` and ``first_stride`` other than 4 are deviations
    from the paper (the ``paper`` recipe has no BatchNorm, global
    standardisation and 128 mel bands). ``norm`` says how input features are
    standardised before the model's own per-bin training statistics (see
    :mod:`emospec.norm`): ``"global"`` (the paper: training statistics only),
    or per ``"utterance"``, ``"speaker"`` or ``"corpus"`` statistics computed
    from the (unlabelled) audio of that group, test audio included.
    ``n_mels`` must equal the features' (:attr:`FeatureConfig.n_mels`).
    ``pool`` is how the last conv maps ``(256, rows, time)`` reach FC6:
    ``"grid"``, torchvision's ``AdaptiveAvgPool2d((6, 6))`` (the paper's
    AlexNet: 9,216 inputs, each tied to a position in time), or ``"stats"``,
    the mean and standard deviation of every channel and row over time
    (``2 · 256 · rows`` inputs; statistics pooling as in x-vectors), which
    gives the same embedding wherever in the clip a pattern occurs and
    whatever the clip's length. ``width`` multiplies every conv's output
    channels (AlexNet's 64, 192, 384, 256, 256; 1 is the paper's), the
    conv FLOPs roughly by its square. The default 0.5 (32, 96, 192, 128,
    128) trains about three times faster on a CPU than 1, as accurately
    in-corpus and 0.02-0.03 UA lower cross-corpus on average, inside the
    seed-to-seed spread (README, session 31; see
    :func:`emospec.model.conv_channels`).
    """

    n_classes: int = 4
    embed_dim: int = 256
    dropout: float = 0.5
    lrn: bool = True
    batch_norm: bool = True
    first_stride: int = 4
    in_channels: int = 3
    n_mels: int = 64
    norm: str = "speaker"
    pool: str = "grid"
    width: float = 0.5

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ConfigError(f"ModelConfig.pool must be one of {', '.join(POOLS)}; got {self.pool!r}")
        if self.norm not in NORMS:
            raise ConfigError(f"ModelConfig.norm must be one of {', '.join(NORMS)}; got {self.norm!r}")
        if self.n_classes < 2:
            raise ConfigError(f"ModelConfig.n_classes must be >= 2, got {self.n_classes}")
        if not self.width > 0:
            raise ConfigError(f"ModelConfig.width must be > 0, got {self.width}")
        if self.embed_dim < 1:
            raise ConfigError(f"ModelConfig.embed_dim must be >= 1, got {self.embed_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.first_stride not in (1, 2, 3, 4):
            raise ConfigError(f"ModelConfig.first_stride must be 1..4, got {self.first_stride}")


SCHEDULES = ("cosine", "onecycle", "constant", "plateau")
"""Learning-rate schedules of :attr:`TrainConfig.schedule` (``plateau``: constant, halved when
validation UA has not improved for ``plateau_patience`` epochs)."""


SELECTS = ("best", "last", "swa")
"""Which model :func:`emospec.train.fit` keeps (:attr:`TrainConfig.select`)."""

ADVERSARIES = ("none", "corpus", "speaker")
"""What :attr:`TrainConfig.adversary`'s domain classifier tells apart: nothing, corpora or speakers."""


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`emospec.train.fit` trains.

    Defaults are the default recipe: AdamW with a one-cycle schedule peaking
    at lr 2e-3, class-weighted cross-entropy, 1 s crops (of trimmed clips), bf16 autocast (float32
    on a CPU without native bf16: :func:`emospec.device.amp_dtype`), 100
    epochs with a patience of 100 (every epoch runs; the best validation
    epoch is kept). The ``paper`` recipe: AdamW 1e-3 cosine, 3 s crops, 30
    epochs, patience 8, ``amp="auto"``, no class weights.

    Batches are fixed-length random crops of ``crop_s`` seconds (shorter clips
    are padded with the normalised mean, i.e. zeros); evaluation uses the full
    clip. Early stopping watches validation unweighted accuracy (UA).
    ``select`` is the model kept: ``"best"``, the epoch of the best
    validation UA (with ``select_min_train_ua`` > 0 among the epochs whose
    training-set UA on their crops reached it, once one has:
    :func:`emospec.convergence.selection_key`), ``"last"``, the final epoch, or ``"swa"``, the average of
    the weights of every epoch from ``swa_start`` (a fraction of ``epochs``)
    to the last (stochastic weight averaging, Izmailov et al., 2018, through
    ``torch.optim.swa_utils.AveragedModel``), its BatchNorm statistics
    re-estimated on ``precise_bn`` batches of crops (10 when that is 0). With
    ``last`` and ``swa`` validation is only watched, and ``val_fraction=0``
    trains on every training clip. ``ema`` > 0 (with ``best`` or ``last``):
    the model validated, chosen and kept is an exponential moving average of
    the weights after each epoch, ``avg = ema * avg + (1 - ema) * w``
    (``torch.optim.swa_utils.get_ema_multi_avg_fn``; 0.8 averages over about
    the last five epochs), with its own re-estimated BatchNorm statistics;
    ``history.json`` then holds its figures as ``val_*`` and the raw
    weights' as ``raw_val_*``.

    ``batch_size`` is the global batch: under ``torchrun`` with N processes
    each takes ``batch_size / N`` clips per step (N must divide it), so a
    recipe trains the same on one device or many. ``amp`` is mixed precision:
    ``"auto"`` (bf16 on CUDA devices that support it, else fp16 with loss
    scaling; off on CPU), ``"bf16"`` (on CPU only where it is native), ``"fp16"`` (CUDA only), ``"off"``, or
    ``"bf16-round"``: float32 kernels with bf16's rounding of every conv, linear and BatchNorm input and output
    (:class:`emospec.device.BF16Rounding`), bf16's numbers at float32's speed on a CPU without native bf16.
    ``workers`` is DataLoader worker processes (0: load in the training
    process, right for features already in memory). ``balance="corpus"``
    draws training clips so that every corpus is equally likely per epoch
    (when training on several corpora); ``balance="stratified"`` keeps
    every clip once an epoch but orders them so that every batch holds the
    classes in the training set's proportions
    (:class:`emospec.data.dataset.StratifiedSampler`). ``augment_copies`` altered versions
    of every training clip are made once with ``audiomentations`` (level,
    noise, microphone EQ, room, tempo: :mod:`emospec.augment`) and drawn in
    place of the clip per epoch; 0 trains on the recordings as they are.
    ``voice_copies`` more versions are virtual speakers: every clip of a
    speaker shifted by one pitch-and-formant factor (±3 semitones) and one
    tempo factor (0.9–1.1) per speaker and version
    (:func:`emospec.augment.voice_features`), standardised as a speaker of
    their own.
    ``stats_copies`` more versions standardise each clip with statistics of
    a random, emotion-skewed subset of its speaker's training clips
    (:func:`emospec.norm.skewed_subset_versions`), as a user's unbalanced
    adaptation clips would (``speaker``/``corpus`` norms only).
    ``population_copy`` adds one more version of each clip standardised
    with the statistics of all training clips pooled, as a clip of an
    unknown speaker is when no adaptation clips are given
    (:func:`emospec.norm.population_versions`; ``speaker``/``corpus`` only).
    ``contrast_copies`` more versions shrink each clip's spectral envelope
    part of the way (a share ~ U(``contrast_low``, 1) of its distance kept)
    towards its speaker's neutral one, the label kept, as speakers who
    express emotion less strongly sound (:func:`emospec.augment.contrast_versions`).
    ``precise_bn`` batches of each epoch's crops (in the sampler's order)
    re-estimate the BatchNorm statistics in float32 with the epoch's weights
    before validation ("precise BN"); the running averages that training
    leaves lag the weights and were taken under autocast, and on held-out
    speakers they cost whole classes (see the README). 0 keeps them.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # "adamw" or "sgd"
    momentum: float = 0.9
    schedule: str = "onecycle"  # "cosine", "onecycle", "constant" or "plateau"
    warmup_epochs: int = 0
    plateau_patience: int = 5
    crop_s: float = 1.0
    class_weights: bool = True
    label_smoothing: float = 0.0
    patience: int = 100
    val_fraction: float = 0.1
    select: str = "best"  # "best" (validation UA), "last" or "swa"
    select_min_train_ua: float = 0.0  # with "best": only epochs fitting their crops this well count, once any does
    swa_start: float = 0.5
    ema: float = 0.0  # per-epoch decay of a moving average of the weights (0: none)
    seed: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 16
    time_masks: int = 0
    time_mask_frames: int = 30
    mixup_alpha: float = 0.0
    grad_clip: float = 5.0
    device: str = "auto"
    amp: str = "bf16"  # "auto", "bf16", "fp16", "off" or "bf16-round"
    workers: int = 0
    balance: str = "none"  # "none", "corpus" or "stratified"
    augment_copies: int = 0
    voice_copies: int = 0
    stats_copies: int = 0
    population_copy: bool = False
    contrast_copies: int = 0
    contrast_low: float = 0.25
    precise_bn: int = 10
    adversary: str = "none"  # "none", "corpus" or "speaker"
    adversary_weight: float = 0.3

    def __post_init__(self) -> None:
        if self.balance not in ("none", "corpus", "stratified"):
            raise ConfigError(f"TrainConfig.balance must be 'none', 'corpus' or 'stratified', got {self.balance!r}")
        if self.epochs < 1:
            raise ConfigError(f"TrainConfig.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"TrainConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"TrainConfig.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"TrainConfig.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.plateau_patience < 1:
            raise ConfigError(f"TrainConfig.plateau_patience must be >= 1, got {self.plateau_patience}")
        if self.crop_s <= 0:
            raise ConfigError(f"TrainConfig.crop_s must be > 0, got {self.crop_s}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.select not in SELECTS:
            raise ConfigError(f"TrainConfig.select must be one of {', '.join(SELECTS)}, got {self.select!r}")
        if not 0.0 <= self.val_fraction < 0.5 or (self.val_fraction == 0.0 and self.select == "best"):
            raise ConfigError(f"TrainConfig.val_fraction must be in (0, 0.5) ([0, 0.5) with select='last' or 'swa'), "
                              f"got {self.val_fraction}")
        if not 0.0 <= self.select_min_train_ua <= 1.0:
            raise ConfigError(f"TrainConfig.select_min_train_ua must be in [0, 1] (a training-set UA), got {self.select_min_train_ua}")
        if not 0.0 <= self.swa_start < 1.0:
            raise ConfigError(f"TrainConfig.swa_start must be in [0, 1) (a fraction of the epochs), got {self.swa_start}")
        if not 0.0 <= self.ema < 1.0 or (self.ema > 0.0 and self.select == "swa"):
            raise ConfigError(f"TrainConfig.ema must be in [0, 1) (a per-epoch decay; 0 with select='swa'), got {self.ema}")
        if self.patience < 1:
            raise ConfigError(f"TrainConfig.patience must be >= 1, got {self.patience}")
        if self.amp not in ("auto", "bf16", "fp16", "off", "bf16-round"):
            raise ConfigError(f"TrainConfig.amp must be 'auto', 'bf16', 'fp16', 'off' or 'bf16-round', got {self.amp!r}")
        if self.augment_copies < 0 or self.stats_copies < 0 or self.voice_copies < 0:
            raise ConfigError(f"TrainConfig.augment_copies, voice_copies and stats_copies must be >= 0, got {self.augment_copies}, "
                              f"{self.voice_copies}, "
                              f"{self.stats_copies}")
        if self.contrast_copies < 0 or not 0.0 <= self.contrast_low <= 1.0:
            raise ConfigError(f"TrainConfig.contrast_copies must be >= 0 and contrast_low in [0, 1], got "
                              f"{self.contrast_copies}, {self.contrast_low}")
        if self.precise_bn < 0:
            raise ConfigError(f"TrainConfig.precise_bn must be >= 0 batches, got {self.precise_bn}")
        if self.workers < 0:
            raise ConfigError(f"TrainConfig.workers must be >= 0, got {self.workers}")
        if self.adversary not in ADVERSARIES:
            raise ConfigError(f"TrainConfig.adversary must be one of {', '.join(ADVERSARIES)}, got {self.adversary!r}")
        if self.adversary_weight < 0:
            raise ConfigError(f"TrainConfig.adversary_weight must be >= 0, got {self.adversary_weight}")


def to_dict(cfg: Any) -> dict:
    """A config dataclass as a JSON-able dict."""
    return dataclasses.asdict(cfg)


def from_dict(cls: Type[T], data: Mapping[str, Any], *, source: str = "config") -> T:
    """Build ``cls`` from ``data``, rejecting unknown keys.

    Raises
    ------
    ConfigError
        If ``data`` has keys ``cls`` does not know, or a value is invalid.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown {cls.__name__} key(s) {unknown}")
    try:
        return cls(**dict(data))
    except TypeError as e:
        raise ConfigError(f"{source}: {cls.__name__}: {e}") from e
