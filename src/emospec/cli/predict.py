"""``emospec predict`` and ``emospec export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List

from ..errors import EmospecError
from .common import audio_files

# --------------------------------------------------------------------------- predict
_PREDICT_EPILOG = """\
Folders contribute their audio files (by extension: .wav .flac .ogg .mp3 .opus .aiff ...; with
--recursive also those of sub-folders); files named explicitly are always tried. Results go to
stdout (a table, or JSON with --json); progress and one line per bad file (file: cause) go to
stderr. Bad files are skipped and the rest processed. Silence is not an emotion: a clip whose
loudest 50 ms is below -60 dBFS gets no label (table: "(silent)"; JSON: "label": null, "scores": {}; CSV: empty label and
scores, silent=true). Exit status: 0 when every file was classified, 1 when any failed (or the
model could not be loaded), 2 on a usage error.
"""


def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify audio files and folders (or --timeline for long recordings)",
                       epilog=_PREDICT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files and/or folders")
    p.add_argument("-r", "--recursive", action="store_true", help="also take audio files in sub-folders")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of a table")
    out.add_argument("--csv", metavar="FILE", help="also write the results as CSV to FILE")
    p.add_argument("--top-k", type=int, default=1, help="how many ranked classes to show (default 1)")
    p.add_argument("--embeddings", action="store_true", help="include the 256-d embeddings in --json output")
    p.add_argument("--model", help="run directory, model.pt or model.onnx (default: the bundled model)")
    p.add_argument("--backend", choices=["torch", "onnx"], help="default: onnx for .onnx files, else torch")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per model call (default 16)")
    p.add_argument("--adapt-norm", nargs="+", metavar="PATH",
                   help="standardise with statistics pooled over these clips (the same speaker or recording set; "
                        "for models trained with per-speaker/corpus norm; default: the training population's); "
                        "clips of several emotions work best")
    p.add_argument("--adapt-weight", type=float, metavar="W",
                   help="how far --adapt-norm moves from the training population's statistics to the clips' "
                        "(0-1; 1: the clips' alone; default: the model's own, else emospec.norm.ADAPT_WEIGHT, halfway)")
    p.add_argument("--adapt-bn", action="store_true",
                   help="also re-estimate the model's BatchNorm statistics on the --adapt-norm clips (AdaBN): helps most "
                        "on recordings unlike the training corpora, but clips of one emotion can cost accuracy (README)")
    p.add_argument("--timeline", action="store_true", help="slide a window over each recording instead")
    p.add_argument("--window-s", type=float, default=3.0, help="timeline window in seconds (default 3)")
    p.add_argument("--hop-s", type=float, default=1.0, help="timeline hop in seconds (default 1)")
    p.add_argument("--plot", metavar="OUT.png", help="timeline plot (several files: OUT_<file>.png)")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args) -> int:
    import csv
    import io
    import json

    from tqdm.auto import tqdm

    from ..errors import ConfigError
    from ..files import atomic_write_bytes
    from ..predict import load

    if args.plot and not args.timeline:
        raise ConfigError("--plot needs --timeline")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    files = audio_files(args.paths, args.recursive)
    if not files:
        raise ConfigError(f"no audio files found in {', '.join(args.paths)}")
    if args.backend == "onnx" and not str(args.model or "").lower().endswith(".onnx"):
        print("exporting the model to ONNX first (run `emospec export --onnx FILE` once and pass --model FILE to skip this)",
              file=sys.stderr)
    rec = load(args.model, device=args.device, backend=args.backend)
    if args.adapt_bn and not args.adapt_norm:
        raise ConfigError("--adapt-bn needs --adapt-norm PATH...: the clips to re-estimate the BatchNorm statistics on")
    if args.adapt_norm:
        adapt = audio_files(args.adapt_norm, args.recursive)
        if not adapt:
            raise ConfigError(f"--adapt-norm: no audio files in {', '.join(args.adapt_norm)}")
        rec = rec.adapt(adapt, weight=args.adapt_weight, batchnorm=args.adapt_bn)
        for line in rec.meta["adapted"]["skipped"]:
            print(f"skipped for --adapt-norm: {line}", file=sys.stderr)
        adapted = rec.meta["adapted"]
        print(f"standardising with statistics of {adapted['clips']} clip(s) ({adapted['seconds']:.0f} s), weight "
              f"{adapted['weight']:g} against the training population's"
              + (f"; BatchNorm statistics re-estimated on {adapted['batchnorm_clips']} clip(s)" if args.adapt_bn else ""),
              file=sys.stderr)
    results: Dict[int, Any] = {}  # file index -> Prediction, or Timeline with --timeline
    failed: List[Dict[str, str]] = []
    bar = tqdm(total=len(files), desc="predict", unit="file", disable=args.quiet, file=sys.stderr, leave=False)
    if args.timeline:
        for i, f in enumerate(files):
            try:
                results[i] = rec.timeline(f, args.window_s, args.hop_s, batch_size=args.batch_size)
            except EmospecError as e:
                failed.append({"file": f, "error": str(e)})
                tqdm.write(f"error: {e}", file=sys.stderr)
            bar.update()
    else:
        for i, res in rec.predict_iter(files, args.batch_size):
            if isinstance(res, EmospecError):
                failed.append({"file": files[i], "error": str(res)})
                tqdm.write(f"error: {res}", file=sys.stderr)
            else:
                results[i] = res
            bar.update()
    bar.close()
    order = sorted(results)
    rows: List[List[str]] = []
    if args.timeline:
        header = ["file", "start_s", "end_s", "label", *[f"p_{c}" for c in rec.labels]]
        for i in order:
            for w in results[i].to_dict()["windows"]:
                rows.append([files[i], f"{w['start_s']:.2f}", f"{w['end_s']:.2f}", w["label"] or "",  # silent: no label
                             *[f"{w['scores'][c]:.4f}" if w["scores"] else "" for c in rec.labels]])
        if args.plot:
            for i in order:
                out = Path(args.plot)
                if len(files) > 1:
                    out = out.with_name(f"{out.stem}_{Path(files[i]).stem}{out.suffix or '.png'}")
                results[i].plot(out, title=f"{Path(files[i]).name}: emotion over time")
                print(f"plot: {out}", file=sys.stderr)
    else:
        header = ["file", "label", "score", "duration_s", "silent", *[f"p_{c}" for c in rec.labels]]
        for i in order:
            r = results[i]
            scores = [f"{r.scores[c]:.4f}" if r.scores else "" for c in rec.labels]  # silent: no label, no scores
            rows.append([files[i], r.label or "", f"{r.scores[r.label]:.4f}" if r.label else "", f"{r.duration_s:.2f}",
                         str(r.silent).lower(), *scores])
    if args.json:
        if args.timeline:
            items = [{"source": files[i], **results[i].to_dict()} for i in order]
        else:
            items = [results[i].to_dict(args.top_k, embedding=args.embeddings) for i in order]
        print(json.dumps({"model": rec.path, "backend": rec.backend, "results": items, "failed": failed}, indent=2))
    else:
        if args.timeline:
            table = [[r[0], f"{r[1]}-{r[2]}", r[3] or "(silent)", ", ".join(f"{c} {v}" for c, v in
                     sorted(zip(rec.labels, r[4:]), key=lambda cv: -float(cv[1]))[: args.top_k]) if r[3] else "no emotion"]
                     for r in rows]
            head = ["file", "window_s", "label", f"top-{args.top_k}"]
        else:
            table = [[files[i], results[i].label or "(silent)",
                      ", ".join(f"{c} {v:.2f}" for c, v in results[i].top(args.top_k)) or "no emotion",
                      f"{results[i].duration_s:.2f}"] for i in order]
            head = ["file", "label", f"top-{args.top_k}", "duration_s"]
        widths = [max(len(h), *(len(r[k]) for r in table)) if table else len(h) for k, h in enumerate(head)]
        for line in [head] + table:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    if args.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        atomic_write_bytes(args.csv, buf.getvalue().encode("utf-8", "surrogateescape"))  # file names as on disk
        print(f"csv: {args.csv}", file=sys.stderr)
    print(f"{len(results)} of {len(files)} file(s) done, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


# --------------------------------------------------------------------------- export
def add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (dynamic batch and time axes) and check parity")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--model", help="run directory or model.pt (default: the bundled model)")
    p.add_argument("--waveform-input", action="store_true",
                   help="put the log-Mel front end in the graph: input (batch, samples) waveforms at 16 kHz")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default 18)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs torch parity check")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from ..checkpoint import load_model
    from ..export import export_onnx
    from ..modelcard import bundled_paths

    bundle = load_model(args.model if args.model else bundled_paths()[0])
    res = export_onnx(bundle, args.onnx, input_kind="waveform" if args.waveform_input else "features",
                      opset=args.opset, check=not args.no_check)
    print(f"wrote {res['path']} ({res['bytes'] / 1e6:.1f} MB, opset {res['opset']}, {res['input_kind']} input, "
          f"dynamic batch and time axes) from {bundle.path}")
    if res["parity"]:
        par = res["parity"]
        print(f"parity onnxruntime vs torch on {par['n_clips']} clips of {', '.join(f'{d:g}' for d in par['durations_s'])} s: "
              f"max |dp| {par['max_abs_diff_probs']:.2e}, max |d embedding| {par['max_abs_diff_embedding']:.2e} "
              f"(tolerance {par['tolerance']:g})")
    return 0
