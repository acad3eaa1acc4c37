"""End-to-end predict latency (decode -> features -> model) of one clip file.

Run by ``run.py`` once per backend in a fresh process, so that peak RSS and
start-up cost belong to prediction alone::

    python benchmarks/bench_predict.py --wav clip.wav --backend torch --n 100 --threads 1
    python benchmarks/bench_predict.py --wav clip.wav --backend onnxruntime --onnx m.onnx

prints one JSON object: start-up seconds, first-call and steady-state
latency (p50/p95), real-time factor, the split between decode, features and
model, and peak RSS.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402


def _recognizer(backend: str, onnx_path: str | None, threads: int):
    """``(predict(path) -> label, model_fn(features) -> probs)`` for the backend."""
    import torch

    from bench_model import make_model, ort_session
    from emospec.audio import load
    from emospec.checkpoint import ModelBundle
    from emospec.features import extract
    from emospec.predict import Recognizer
    from emospec.recipe import RECIPES

    torch.set_num_threads(threads)
    labels = ["neutral", "happy", "angry", "sad"]
    if backend == "torch":
        rec = Recognizer(ModelBundle(make_model(), RECIPES["paper"].features, labels))

        def model_fn(f):
            with torch.inference_mode():
                return torch.softmax(rec.model(f[None]), 1)[0]

        return (lambda path: rec.predict(path).label), model_fn
    if backend == "onnxruntime":
        sess = ort_session(onnx_path, threads)

        def model_fn(f):
            logits = sess.run(None, {"features": f[None].numpy()})[0][0]
            e = np.exp(logits - logits.max())
            return e / e.sum()
    elif backend == "torch-bf16":
        model = make_model().to(memory_format=torch.channels_last)

        def model_fn(f):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return torch.softmax(model(f[None].contiguous(memory_format=torch.channels_last)).float(), 1)[0]
    else:
        raise SystemExit(f"unknown backend {backend!r}")
    return (lambda path: labels[int(np.argmax(model_fn(extract(load(path), RECIPES["paper"].features))))]), model_fn


def measure(wav: str, backend: str, n: int, threads: int, onnx_path: str | None) -> dict:
    import soundfile as sf

    from _common import peak_rss_mb, time_calls
    from emospec.audio import load
    from emospec.features import extract
    from emospec.recipe import RECIPES

    duration = sf.info(wav).duration
    predict, model_fn = _recognizer(backend, onnx_path, threads)
    ready = time.perf_counter() - T_START
    t0 = time.perf_counter()
    predict(wav)
    first = time.perf_counter() - t0
    lat = time_calls(lambda: predict(wav), repeat=n, warmup=2)
    wave = load(wav)
    feats = extract(wave, RECIPES["paper"].features)  # make_model's: the paper's 128 bands
    parts = {"decode": time_calls(lambda: load(wav), repeat=max(5, n // 4)),
             "features": time_calls(lambda: extract(wave, RECIPES["paper"].features), repeat=max(5, n // 4)),
             "model": time_calls(lambda: model_fn(feats), repeat=max(5, n // 4))}
    return {"backend": backend, "clip_s": duration, "startup_s": ready, "first_call_s": first,
            "p50_ms": lat.median_s * 1e3, "p95_ms": lat.p95_s * 1e3, "cpu_p50_ms": lat.cpu_median_s * 1e3,
            "rtf": lat.median_s / duration, "peak_rss_mb": peak_rss_mb(),
            "parts_ms": {k: v.median_s * 1e3 for k, v in parts.items()}, "n": n}


def bench_predict_scaling(folder: str, durations_s, repeat: int) -> list:
    """``Recognizer.predict(path)`` latency (torch, in this process) for clips of growing length."""
    from _common import Row, scaling_rows, time_calls, write_clip
    from bench_model import make_model
    from emospec.checkpoint import ModelBundle
    from emospec.predict import Recognizer
    from emospec.recipe import RECIPES

    rec = Recognizer(ModelBundle(make_model(), RECIPES["paper"].features, ["neutral", "happy", "angry", "sad"]))
    rows, timings = [], {}
    for d in durations_s:
        path = write_clip(folder, d)
        timings[d] = t = time_calls(functools.partial(rec.predict, path), repeat=repeat, warmup=1)
        rows.append(Row("scaling", f"predict (torch), {d:g} s clip", t.median_s * 1e3, "ms",
                        note=f"RTF {t.median_s / d:.3f}", extra={"timing": t.summary()}))
    return scaling_rows(rows, timings)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wav", required=True)
    ap.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "torch-bf16"])
    ap.add_argument("--onnx", help="ONNX model (for --backend onnxruntime)")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.wav, args.backend, args.n, args.threads, args.onnx)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
