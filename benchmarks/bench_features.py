"""Feature extraction and decoding benchmarks: emospec vs librosa on the same real clips."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import tempfile
import time
from typing import Dict, List

import numpy as np
import torch

from _common import DATA, Row, interleaved, paired_ratio, ravdess_paths, scaling_rows, skipped, speech_of_length, time_calls
from emospec.audio import load
from emospec.features import extract, extract_many
from emospec.recipe import RECIPES

CFG = RECIPES["paper"].features
"""The paper's features (128 bands, no floor): librosa's ``power_to_db(top_db=None)`` twin, the figures in the README."""


def librosa_features(y: np.ndarray) -> np.ndarray:
    """What a librosa user writes for the same features: ``(3, n_mels, frames)`` float32 dB."""
    import librosa

    S = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=CFG.sample_rate_hz, n_fft=CFG.n_fft, hop_length=CFG.hop_length,
                                       win_length=CFG.win_length, window="hann", center=True, pad_mode="constant",
                                       power=2.0, n_mels=CFG.n_mels, fmin=CFG.fmin_hz, fmax=CFG.fmax_hz),
        ref=1.0, amin=CFG.amin, top_db=None)
    d1 = librosa.feature.delta(S, width=CFG.delta_width, order=1, mode="nearest")
    d2 = librosa.feature.delta(S, width=CFG.delta_width, order=2, mode="nearest")
    return np.stack([S, d1, d2])


def _parity(waves: List[np.ndarray], stft_dtype=torch.float64) -> float:
    """Largest |emospec - librosa| in dB over all clips, channels, bands and frames."""
    return max(float(np.abs(extract(w, CFG, stft_dtype=stft_dtype).numpy() - librosa_features(w)).max()) for w in waves)


def bench_features(n_clips: int, repeat: int) -> List[Row]:
    """Clips/s per clip and batched vs librosa, with the parity error."""
    waves = [load(p, sr=CFG.sample_rate_hz) for p in ravdess_paths(n=n_clips)]
    audio_s = sum(w.size for w in waves) / CFG.sample_rate_hz
    fns = {
        "librosa": lambda: [librosa_features(w) for w in waves],
        "per_clip": lambda: [extract(w, CFG) for w in waves],
        "batched": lambda: extract_many(waves, CFG),
        "per_clip_f32": lambda: [extract(w, CFG, stft_dtype=torch.float32) for w in waves],
    }
    t = interleaved(fns, repeat=repeat, warmup=1)
    parity = _parity(waves)
    parity32 = _parity(waves, torch.float32)
    batched_vs_single = max(float((a - b).abs().max()) for a, b in zip(extract_many(waves, CFG), (extract(w, CFG) for w in waves)))
    n = len(waves)
    common = f"{n} RAVDESS clips, {audio_s / n:.2f} s mean"
    lib = n / t["librosa"].median_s
    rows = [Row("features", "librosa (melspectrogram+power_to_db+delta x2)", lib, "clips/s",
                note=f"{common}; {audio_s / t['librosa'].median_s:.0f}x real time",
                extra={"librosa": t["librosa"].summary()})]
    for key, case, note in (
        ("per_clip", "emospec extract, per clip", f"parity {parity:.1e} dB"),
        ("batched", "emospec extract_many, batched", f"parity {parity:.1e} dB; = per clip within {batched_vs_single:.0e}"),
        ("per_clip_f32", "emospec per clip, float32 STFT", f"parity {parity32:.1e} dB (> 1e-3: not the default)"),
    ):
        note += f"; CPU-time ratio {paired_ratio(t['librosa'], t[key], cpu=True):.2f}x"
        rows.append(Row("features", case, n / t[key].median_s, "clips/s", "librosa", paired_ratio(t["librosa"], t[key]),
                        note, extra={"timing": t[key].summary(), "parity_db": parity if key != "per_clip_f32" else parity32,
                                     "audio_s_per_s": audio_s / t[key].median_s}))
    return rows


def bench_corpus(actors: int, workers: int) -> List[Row]:
    """Decode + features over a whole corpus: computed from audio, and through the feature cache when there is one."""
    paths = ravdess_paths(actors=actors)
    label = f"RAVDESS, {len(paths)} clips ({actors} actor{'s' if actors > 1 else ''})"
    for p in paths:  # read every file once so that all rows below see the same (warm) OS page cache
        p.read_bytes()
    t0 = time.perf_counter()
    extract_many([load(p, sr=CFG.sample_rate_hz) for p in paths], CFG)
    wall = time.perf_counter() - t0
    rows = [Row("corpus", "decode + extract_many, no cache", wall, "s", note=f"{label}; {len(paths) / wall:.0f} clips/s",
                extra={"clips": len(paths)})]
    if importlib.util.find_spec("emospec.data.cache") is None:
        return rows + [skipped("corpus", "feature cache cold / warm", "emospec.data.cache is not on this branch")]
    from emospec.data import dataset
    from emospec.data.cache import FeatureCache

    if "cache" not in inspect.signature(dataset.compute_features).parameters:
        return rows + [skipped("corpus", "feature cache cold / warm", "compute_features takes no cache= here")]
    kw = {"workers": workers} if "workers" in inspect.signature(dataset.compute_features).parameters else {}
    with tempfile.TemporaryDirectory(prefix="emospec-bench-cache-") as tmp:
        cache = FeatureCache(tmp, CFG)
        times = {}
        for phase in ("cold", "warm"):
            t0 = time.perf_counter()
            feats, problems = dataset.compute_features([str(p) for p in paths], CFG, progress=False, cache=cache, **kw)
            times[phase] = time.perf_counter() - t0
    for phase in ("cold", "warm"):
        rows.append(Row("corpus", f"compute_features, cache {phase}", times[phase], "s",
                        "cold" if phase == "warm" else "", times["cold"] / times[phase] if phase == "warm" else None,
                        f"{label}; {len(paths) / times[phase]:.0f} clips/s; workers={kw.get('workers', 1)}"))
    return rows


def bench_decode(n_files: int, repeat: int) -> List[Row]:
    """Decode + resample 48 kHz WAV to 16 kHz: emospec.audio.load (soundfile + soxr VHQ) vs librosa.load."""
    import librosa

    paths = sorted((DATA / "ravdess-wav-sample").glob("Actor_*/*.wav"))[:n_files]
    if not paths:
        return [skipped("decode", "48 kHz WAV -> 16 kHz", f"no WAV sample under {DATA}")]
    for p in paths:
        p.read_bytes()
    fns = {
        "librosa": lambda: [librosa.load(p, sr=16000) for p in paths],
        "librosa_vhq": lambda: [librosa.load(p, sr=16000, res_type="soxr_vhq") for p in paths],
        "emospec": lambda: [load(p, sr=16000) for p in paths],
    }
    t = interleaved(fns, repeat=repeat, warmup=1)
    n = len(paths)
    diff = 0.0
    for p in paths[:5]:  # same resampler and quality; librosa may give one sample more (rounds the length up)
        a, b = load(p, sr=16000), librosa.load(p, sr=16000, res_type="soxr_vhq")[0]
        diff = max(diff, float(np.abs(a[: b.size] - b[: a.size]).max()))
    note = f"{n} RAVDESS 48 kHz 16-bit WAV files"
    return [
        Row("decode", "librosa.load(sr=16000) (soxr_hq)", t["librosa"].median_s / n * 1e3, "ms/clip", note=note),
        Row("decode", "librosa.load(res_type=soxr_vhq)", t["librosa_vhq"].median_s / n * 1e3, "ms/clip", note="same quality as emospec"),
        Row("decode", "emospec.audio.load (soundfile+soxr VHQ)", t["emospec"].median_s / n * 1e3, "ms/clip", "librosa",
            paired_ratio(t["librosa"], t["emospec"]), f"vs librosa VHQ {paired_ratio(t['librosa_vhq'], t['emospec']):.2f}x; "
            f"max abs diff vs librosa VHQ {diff:.1e}"),
    ]


def bench_feature_scaling(durations_s, repeat: int) -> List[Row]:
    """Feature time for clips of growing length: cost per second of audio should stay flat."""
    rows, timings = [], {}
    for d in durations_s:
        w = speech_of_length(d)
        timings[d] = t = time_calls(functools.partial(extract, w, CFG), repeat=repeat, warmup=1)
        rows.append(Row("scaling", f"features, {d:g} s clip", t.median_s * 1e3, "ms", extra={"timing": t.summary()}))
    return scaling_rows(rows, timings)


def profile_features(top: int = 8) -> Dict[str, str]:
    """Where one 3.5 s clip's extraction spends its time (torch.profiler, self CPU)."""
    from torch.profiler import profile

    w = load(ravdess_paths(n=1)[0], sr=CFG.sample_rate_hz)
    for _ in range(5):
        extract(w, CFG)
    with profile() as prof:
        for _ in range(50):
            extract(w, CFG)
    return {"features extract (50 calls)": prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)}
