"""Load test of `emospec serve` over loopback: concurrent predict requests, latency, throughput, errors, RSS.

Starts ``python -m emospec serve`` on 127.0.0.1 (never another address),
warms it up, then runs ``--rounds`` rounds of ``--requests`` predict requests
all launched at once (httpx.AsyncClient, one connection each), each round
bounded by ``--round-timeout-s``. A request counts as an error when it fails,
does not answer 200, or answers a label other than the warm-up's (the same
clip every time). The server's resident memory (VmRSS from /proc) is read
before and after each round. Prints a table and writes JSON.

    python benchmarks/bench_serve_load.py [--model RUN] [--clip FILE] [--requests 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = "ravdess/Actor_01/03-01-05-01-01-01-01.flac"


def rss_mb(pid: int) -> Optional[float]:
    """Resident set size of process ``pid`` in MiB (Linux /proc), or None where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def tiny_model(folder: Path) -> Path:
    """A seeded, untrained 4-class model (inference costs the same as a trained one)."""
    import torch

    from emospec.checkpoint import save_model
    from emospec.model import EmoAlexNet
    from emospec.recipe import RECIPES

    torch.manual_seed(0)
    path = folder / "model.pt"
    paper = RECIPES["paper"]  # the model the README's serving figures are for
    save_model(path, EmoAlexNet(config=paper.model_for(4)), paper.features, ["neutral", "happy", "angry", "sad"])
    return path


async def one_round(url: str, data: bytes, name: str, n: int, expect: str, timeout_s: float) -> Dict:
    """``n`` predict requests launched together; latencies of the successful ones and error counts."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    latencies: List[float] = []
    errors: Dict[str, int] = {}

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout_s) as client:
        async def request() -> None:
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/v1/predict", files={"file": (name, data)})
            except httpx.HTTPError as e:
                error(type(e).__name__)
                return
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                error(f"HTTP {r.status_code}")
            elif r.json().get("label") != expect:
                error("wrong label")
            else:
                latencies.append(dt)

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(request()) for _ in range(n)]
        done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for t in pending:
            t.cancel()
            error("round timeout")
        wall = time.perf_counter() - t0
    ms = np.asarray(latencies) * 1000.0
    pct = {f"p{q}_ms": float(np.percentile(ms, q)) if ms.size else None for q in (50, 90, 99)}
    return {"requests": n, "ok": int(ms.size), "errors": sum(errors.values()), "error_kinds": errors,
            **pct, "max_ms": float(ms.max()) if ms.size else None, "wall_s": wall,
            "throughput_rps": ms.size / wall if wall > 0 else 0.0}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="run directory or model.pt (default: a seeded untrained model)")
    p.add_argument("--clip", help=f"audio file to send (default: $EMOSPEC_DATA/{DEFAULT_CLIP})")
    p.add_argument("--requests", type=int, default=200, help="concurrent requests per round (default 200)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--round-timeout-s", type=float, default=300.0, help="time limit per round (default 300)")
    p.add_argument("--max-concurrency", type=int, help="server's parallel analyses (default: its own)")
    p.add_argument("--warmup", type=int, default=5, help="sequential requests before timing (default 5)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serve_load.json"))
    args = p.parse_args(argv)
    if not 1 <= args.requests <= 1000 or not 1 <= args.rounds <= 10:
        p.error("--requests must be in 1..1000 and --rounds in 1..10")
    sys.path.insert(0, str(REPO / "src"))
    from emospec.files import save_json
    from emospec.serve.process import serve_subprocess
    from emospec.versions import environment

    data_root = Path(os.environ.get("EMOSPEC_DATA", REPO.parent / "shared" / "data"))
    clip = Path(args.clip) if args.clip else data_root / DEFAULT_CLIP
    if not clip.is_file():
        raise SystemExit(f"{clip}: clip not found (pass --clip or set EMOSPEC_DATA)")
    data = clip.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else tiny_model(Path(tmp))
        extra = ["--max-concurrency", str(args.max_concurrency)] if args.max_concurrency else []
        with serve_subprocess(model, *extra) as server:  # listens on 127.0.0.1 only
            url = server.url
            card = httpx.get(f"{url}/api/v1/model", timeout=10).json()
            expect = None
            for _ in range(max(1, args.warmup)):
                expect = httpx.post(f"{url}/api/v1/predict", files={"file": (clip.name, data)}, timeout=60).json()["label"]
            rounds = []
            for k in range(args.rounds):
                before = rss_mb(server.pid)
                res = asyncio.run(one_round(url, data, clip.name, args.requests, expect, args.round_timeout_s))
                time.sleep(0.5)  # let the server release per-request buffers before reading RSS
                rounds.append({"round": k + 1, "rss_before_mb": before, "rss_after_mb": rss_mb(server.pid), **res})
    report = {"benchmark": "serve_load", "clip": str(clip), "clip_bytes": len(data), "model": str(args.model or "untrained seed 0"),
              "server_max_concurrency": card["limits"]["max_concurrency"], "device": card["device"],
              "cpu_count": os.cpu_count(), "environment": environment(), "rounds": rounds}
    fmt = lambda v, f="{:.0f}": "-" if v is None else f.format(v)  # noqa: E731
    print(f"emospec serve load: {args.requests} concurrent POST /api/v1/predict of {clip.name} ({len(data)} bytes), "
          f"server max_concurrency={report['server_max_concurrency']}, {report['device']}, {os.cpu_count()} CPUs")
    head = (f"{'round':>5} {'ok':>5} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>7} {'wall s':>7} "
            f"{'RSS before MB':>14} {'RSS after MB':>13}")
    print(head)
    print("-" * len(head))
    for r in rounds:
        print(f"{r['round']:>5} {r['ok']:>5} {r['errors']:>6} {fmt(r['p50_ms']):>8} {fmt(r['p90_ms']):>8} "
              f"{fmt(r['p99_ms']):>8} {fmt(r['max_ms']):>8} {r['throughput_rps']:>7.1f} {r['wall_s']:>7.1f} "
              f"{fmt(r['rss_before_mb'], '{:.1f}'):>14} {fmt(r['rss_after_mb'], '{:.1f}'):>13}")
        if r["error_kinds"]:
            print(f"      errors: {r['error_kinds']}")
    save_json(args.out, report)
    print(f"written {args.out}")
    return 1 if any(r["errors"] for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
