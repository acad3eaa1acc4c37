"""emospec benchmarks: one command, one table, one JSON file.

    python benchmarks/run.py            # full run (~10 min on 2 busy cores)
    python benchmarks/run.py --quick    # smaller samples (~2 min)
    make bench ARGS=--quick

Sections: features (emospec vs librosa on the same real clips, with parity),
corpus (decode + features over RAVDESS; feature cache cold/warm when the
branch has one), decode (48 kHz WAV -> 16 kHz vs librosa.load), forward
(eager / channels_last / torch.compile / onnxruntime / bf16, batch 1 and
32), training (samples/s, GFLOP/s vs a conv2d peak measured in the same run),
predict (end to end on a 4 s clip, each backend in a fresh process: p50/p95,
real-time factor, peak RSS) and scaling (1, 4, 16, 64 s clips).
Real speech comes from ``$EMOSPEC_DATA`` (default ``../shared/data``).
Results: the table on stdout, JSON in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _common import DATA, REPO, Row, limit_threads, machine, skipped, table, write_clip  # noqa: E402

SECTIONS = ["features", "corpus", "decode", "forward", "training", "predict", "scaling"]


def _predict_rows(args, folder: str, onnx_path) -> list:
    """One fresh process per backend on a 4 s clip of real speech."""
    wav = write_clip(folder, 4.0)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=str(args.threads))
    backends = ["torch", "torch-bf16"] + (["onnxruntime"] if onnx_path else [])
    rows, results = [], {}
    for backend in backends:
        cmd = [sys.executable, str(HERE / "bench_predict.py"), "--wav", str(wav), "--backend", backend,
               "--n", str(args.predict_n), "--threads", str(args.threads)] + (["--onnx", str(onnx_path)] if onnx_path else [])
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            rows.append(skipped("predict", f"4 s clip, {backend}", (r.stderr.strip().splitlines() or ["failed"])[-1][:100]))
            continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        results[backend] = res
        parts = ", ".join(f"{k} {v:.1f}" for k, v in res["parts_ms"].items())
        rows.append(Row("predict", f"4 s clip, {backend}: p50", res["p50_ms"], "ms", "torch" if backend != "torch" else "",
                        results["torch"]["p50_ms"] / res["p50_ms"] if backend != "torch" and "torch" in results else None,
                        f"p95 {res['p95_ms']:.1f} ms; CPU p50 {res['cpu_p50_ms']:.1f} ms; RTF {res['rtf']:.4f}; "
                        f"peak RSS {res['peak_rss_mb']:.0f} MiB; "
                        f"parts ms: {parts}; start-up {res['startup_s']:.1f} s", extra=res))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="emospec benchmarks: prints one table and writes JSON.")
    ap.add_argument("--quick", action="store_true", help="smaller samples, no torch.compile (~2 min)")
    ap.add_argument("--threads", type=int, default=1, help="threads for torch, BLAS and onnxruntime (default 1)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler tables (where the time goes)")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for the JSON results")
    args = ap.parse_args(argv)
    if not (DATA / "ravdess").is_dir():
        print(f"benchmarks: real clips not found at {DATA} (set EMOSPEC_DATA)", file=sys.stderr)
        return 1
    q = args.quick
    args.predict_n = 30 if q else 150
    limit_threads(args.threads)
    info = machine(args.threads)
    wanted = set(args.only or SECTIONS)
    t_start = time.perf_counter()
    rows, profiles = [], {}

    import bench_features as bf
    import bench_model as bm
    from bench_predict import bench_predict_scaling

    def log(msg):
        print(f"[{time.perf_counter() - t_start:5.0f} s] {msg}", file=sys.stderr, flush=True)

    folder = bm.new_tmpdir()
    onnx_path, onnx_why = None, "not needed"
    if wanted & {"forward", "predict"}:
        log("exporting the model to ONNX")
        onnx_path, onnx_why = bm.try_export(bm.make_model(), bm.FRAMES_4S, folder)
        if onnx_path is None:
            log(f"ONNX export failed: {onnx_why}")
    if "features" in wanted:
        log("features")
        rows += bf.bench_features(n_clips=24 if q else 96, repeat=5 if q else 7)
    if "corpus" in wanted:
        log("corpus")
        rows += bf.bench_corpus(actors=2 if q else 24, workers=args.threads)
    if "decode" in wanted:
        log("decode")
        rows += bf.bench_decode(n_files=20 if q else 60, repeat=5 if q else 7)
    if "forward" in wanted:
        log("forward" + ("" if q else " (with torch.compile: ~1 min per shape)"))
        rows += bm.bench_forward(args.threads, repeat=3 if q else 7, compile_=not q, onnx_path=onnx_path)
    if "training" in wanted:
        log("training")
        peak, label = bm.conv_peak(repeat=3 if q else 7)
        rows += bm.bench_training(batch=16 if q else 32, repeat=3 if q else 7, peak_gflops=peak, peak_label=label)
        rows += bm.bench_width(batch=16 if q else 32, repeat=3 if q else 7)
        rows += bm.bench_layout(batch=16 if q else 32, repeat=3 if q else 7)
        rows += bm.bench_side_by_side(steps=8 if q else 20, cores=os.cpu_count() or 1)
    if "predict" in wanted:
        log("predict (fresh process per backend)")
        rows += _predict_rows(args, folder, onnx_path)
    if "scaling" in wanted:
        log("scaling")
        durations = [1.0, 4.0, 16.0, 64.0]
        rows += bf.bench_feature_scaling(durations, repeat=3 if q else 7)
        rows += bench_predict_scaling(folder, durations, repeat=3 if q else 5)
    if args.profile:
        log("profiles")
        profiles.update(bf.profile_features())
        profiles.update(bm.profile_model(onnx_path))

    info["loadavg_end"] = os.getloadavg()
    info["wall_s"] = time.perf_counter() - t_start
    info["mode"] = "quick" if q else "full"
    print(table(rows))
    print(f"\n{info['cpu']}, {info['cores']} cores, {args.threads} thread(s); torch {info['torch']}; "
          f"load average {info['loadavg_start'][0]:.1f} -> {info['loadavg_end'][0]:.1f}; {info['wall_s']:.0f} s")
    for name, text in profiles.items():
        print(f"\n== profile: {name}\n{text}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{info['mode']}.json"
    path.write_text(json.dumps({"machine": info, "rows": [r.to_dict() for r in rows], "profiles": profiles},
                               indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
