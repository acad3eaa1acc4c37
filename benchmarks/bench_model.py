"""Model benchmarks: forward (eager, channels_last, torch.compile, onnxruntime, bf16) and training vs conv peak."""

from __future__ import annotations

import functools
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from _common import Row, interleaved, paired_ratio, skipped, time_calls
from emospec.device import conv_memory_format
from emospec.model import EmoAlexNet
from emospec.recipe import RECIPES

CROP_S = RECIPES["default"].train.crop_s
CROP_FRAMES = int(round(CROP_S * 1000.0 / RECIPES["default"].features.hop_ms))
"""The default recipe's training crop in frames, as :func:`emospec.epoch.build` cuts it (1 s since session 34: 100)."""

FRAMES_4S = 401  # 1 + 64000 // 160: a 4 s clip at the default features


def make_model(seed: int = 0) -> EmoAlexNet:
    """A randomly initialised EmoAlexNet of the paper's recipe (128 mel bands, no BatchNorm: the README's
    figures; timing does not depend on trained weights), eval mode."""
    torch.manual_seed(seed)
    return EmoAlexNet(config=RECIPES["paper"].model_for(4)).eval()


def export_onnx(model: EmoAlexNet, frames: int, path: Path) -> Path:
    """Export ``model`` for ``(batch, 3, n_mels, frames)`` input, batch dynamic, with the torch.onnx dynamo exporter.

    The time axis is fixed: adaptive average pooling exports for one input size.
    """
    x = torch.zeros(2, 3, model.config.n_mels, frames)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (x,), input_names=["features"], output_names=["logits"],
                                 dynamic_shapes=({0: batch},), dynamo=True, verbose=False)
    prog.save(str(path))
    return path


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _variants(model: EmoAlexNet, onnx_path: Optional[Path], threads: int, compile_: bool) -> Dict[str, Callable]:
    """name -> fn(x) giving the logits as a tensor, for each way of running the model."""
    cl = make_model().to(memory_format=torch.channels_last).eval()

    def eager(x):
        with torch.inference_mode():
            return model(x)

    def channels_last(x):
        with torch.inference_mode():
            return cl(x.contiguous(memory_format=torch.channels_last))

    def bf16(x):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return cl(x.contiguous(memory_format=torch.channels_last)).float()

    fns: Dict[str, Callable] = {"eager": eager, "channels_last": channels_last, "bf16 autocast": bf16}
    if compile_:
        compiled = torch.compile(make_model(), dynamic=False)

        def comp(x):
            with torch.inference_mode():
                return compiled(x)

        fns["torch.compile"] = comp
    if onnx_path is not None:
        sess = ort_session(onnx_path, threads)
        fns["onnxruntime"] = lambda x: torch.from_numpy(sess.run(None, {"features": x.numpy()})[0])
    return fns


def bench_forward(threads: int, repeat: int, compile_: bool, onnx_path: Optional[Path]) -> List[Row]:
    """Latency of one forward pass, batch 1 and 32, 4 s of features per clip."""
    model = make_model()
    fns = _variants(model, onnx_path, threads, compile_)
    rows: List[Row] = []
    for batch, rep in ((1, repeat * 4), (32, repeat)):
        x = torch.randn(batch, 3, model.config.n_mels, FRAMES_4S) * 10 - 40
        ref = fns["eager"](x)
        setup = {}
        for name, fn in fns.items():  # first call: compile / session warm-up, timed once
            t0 = time.perf_counter()
            fn(x)
            setup[name] = time.perf_counter() - t0
        t = interleaved({k: functools.partial(f, x) for k, f in fns.items()}, repeat=rep, warmup=1)
        for name in fns:
            dev = float((fns[name](x).float() - ref).abs().max())
            note = (f"{batch / t[name].median_s:.0f} clips/s; CPU {t[name].cpu_median_s * 1e3:.0f} ms; "
                    f"max abs Δlogit {dev:.1e}")
            if name == "torch.compile":
                note += f"; first call {setup[name]:.0f} s"
            if name == "bf16 autocast":
                from emospec.device import cpu_has_fast_bf16

                note += "; native bf16 (training uses it)" if cpu_has_fast_bf16() else \
                    f"; no native bf16 on this CPU ({torch.backends.cpu.get_cpu_capability()}): training runs float32"
            rows.append(Row("forward", f"batch {batch}: {name}", t[name].median_s * 1e3, "ms", "" if name == "eager" else "eager",
                            None if name == "eager" else paired_ratio(t["eager"], t[name]), note,
                            extra={"timing": t[name].summary(), "max_abs_logit_diff": dev, "first_call_s": setup[name]}))
    if not compile_:
        rows.append(skipped("forward", "torch.compile", "--quick (compiling takes ~1 min a shape here)"))
    if onnx_path is None:
        rows.append(skipped("forward", "onnxruntime", "export failed or onnxruntime/onnxscript missing"))
    return rows


def _flops(fn: Callable[[], None]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def conv_peak(repeat: int) -> Tuple[float, str]:
    """GFLOP/s of plain 3x3 convolutions (forward, float32): the attainable peak for this model's kind of work."""
    best, label = 0.0, ""
    for cin, cout, h, w, b in ((192, 384, 16, 48, 32), (256, 256, 32, 32, 16)):
        conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
        x = torch.randn(b, cin, h, w)
        with torch.inference_mode():
            step = functools.partial(conv, x)
            flops = _flops(step)
            t = time_calls(step, repeat=repeat, warmup=2)
        g = flops / t.median_s / 1e9
        if g > best:
            best, label = g, f"conv3x3 {cin}->{cout} on {b}x{h}x{w}"
    return best, label


def bench_training(batch: int, repeat: int, peak_gflops: float, peak_label: str) -> List[Row]:
    """Samples/s and GFLOP/s of a training step (normalise, forward, CE loss, backward, clip, AdamW)."""
    torch.manual_seed(0)
    model = EmoAlexNet(config=RECIPES["paper"].model_for(4)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, model.config.n_mels, 300) * 10 - 40  # 3 s crops, the paper recipe's crop_s
    y = torch.randint(0, 4, (batch,))

    def fwd_bwd():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()

    def step():
        fwd_bwd()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    flops = _flops(fwd_bwd)
    t = time_calls(step, repeat=repeat, warmup=2)
    gflops = flops / t.median_s / 1e9
    return [
        Row("training", f"step, batch {batch}, 3 s crops", batch / t.median_s, "samples/s",
            note=f"{t.median_s * 1e3:.0f} ms/step; {flops / 1e9:.1f} GFLOP/step (fwd+bwd)", extra={"timing": t.summary()}),
        Row("training", "achieved GFLOP/s", gflops, "GFLOP/s", "conv peak", gflops / peak_gflops,
            f"fraction of the conv peak ({peak_gflops:.0f} GFLOP/s)", extra={"flops_per_step": flops}),
        Row("training", "conv2d peak (same run)", peak_gflops, "GFLOP/s", note=peak_label),
        *bench_lrn(batch, repeat),
    ]


def bench_lrn(batch: int, repeat: int) -> List[Row]:
    """Forward + backward of the LRN after conv1 (its output for 2 s crops at 64 bands): torch's against emospec's."""
    from emospec.model import ChannelLRN

    x0 = torch.relu(torch.randn(batch, 64, 15, 49) * 30)
    grad = torch.randn_like(x0)
    layers = {"torch LocalResponseNorm": torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
              "emospec ChannelLRN": ChannelLRN(5, 1e-4, 0.75, 2.0)}

    def run(layer):
        x = x0.clone().requires_grad_()
        layer(x).backward(grad)
        return x.grad

    dev = float((run(layers["emospec ChannelLRN"]) - run(layers["torch LocalResponseNorm"])).abs().max())
    t = interleaved({k: functools.partial(run, m) for k, m in layers.items()}, repeat=repeat * 4, warmup=1)
    ref = "torch LocalResponseNorm"
    return [Row("training", f"LRN fwd+bwd, batch {batch}: {k}", t[k].median_s * 1e3, "ms", "" if k == ref else ref,
                None if k == ref else paired_ratio(t[ref], t[k]), f"max abs Δgrad {dev:.1e}" if k != ref else "",
                extra={"timing": t[k].summary()}) for k in layers]


def _paired_steps(models: Dict[str, Callable[[], EmoAlexNet]], batch: int, repeat: int, source: str) -> List[Row]:
    """A training step (batch of default crops at 64 bands, AdamW) of each model, in alternating rounds; the first is the
    reference the others' paired ratios are against. Each model is built after ``torch.manual_seed(0)``."""
    steps: Dict[str, Callable[[], None]] = {}
    for name, make in models.items():
        torch.manual_seed(0)
        model = make().train()
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        x, y = torch.randn(batch, 3, 64, CROP_FRAMES) * 10 - 40, torch.randint(0, 4, (batch,))

        def step(model=model, opt=opt, x=x, y=y) -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        steps[name] = step
    t = interleaved(steps, repeat=repeat, warmup=1)
    ref = next(iter(models))
    return [Row("training", f"step, batch {batch}, {CROP_S:g} s crops, {k}", t[k].median_s * 1e3, "ms", "" if k == ref else ref,
                None if k == ref else paired_ratio(t[ref], t[k]), source, extra={"timing": t[k].summary()})
            for k in models]


def bench_width(batch: int, repeat: int) -> List[Row]:
    """A training step of the default recipe's model (default crops, 64 bands) at AlexNet's channels (``width=1``) against
    the default's width, in alternating rounds: what ``ModelConfig.width`` saves on this machine."""
    from dataclasses import replace

    default = RECIPES["default"].model_for(4)
    return _paired_steps({"width 1 (AlexNet's channels)": lambda: EmoAlexNet(config=replace(default, width=1.0)),
                          f"width {default.width:g} (the default)": lambda: EmoAlexNet(config=default)},
                         batch, repeat, "ModelConfig.width")


def bench_layout(batch: int, repeat: int) -> List[Row]:
    """A training step of the default recipe's model (default crops, 64 bands) with its conv weights in torch's default
    layout against the layout training uses on this device (:func:`emospec.device.conv_memory_format`: channels-last
    on CPU), in alternating rounds."""
    config = RECIPES["default"].model_for(4)
    formats = {"default layout": torch.contiguous_format, "training's layout": conv_memory_format(torch.device("cpu"))}
    return _paired_steps({f"{k} ({str(v).replace('torch.', '')})": (lambda v=v: EmoAlexNet(config=config).to(memory_format=v))
                          for k, v in formats.items()}, batch, repeat, "emospec.device.conv_memory_format")


def _train_steps(steps: int, threads: int, start_at: float) -> Tuple[float, float]:
    """``steps`` training steps of the default recipe's model (batch 32 of default crops at 64 bands) on ``threads``
    threads, started at wall-clock ``start_at`` (so that processes started together run together); (start, end)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = EmoAlexNet(config=RECIPES["default"].model_for(4)).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.randn(32, 3, 64, CROP_FRAMES), torch.randint(0, 4, (32,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up, before the common start
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.time()
    for _ in range(steps):
        step()
    return t0, time.time()


def bench_side_by_side(steps: int, cores: int) -> List[Row]:
    """Two trainings on ``cores`` threads one after the other, against the two at once in two processes of
    ``cores // 2`` threads each (what ``emospec demo`` and ``emospec evaluate`` do on CPU: emospec.parallel)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if cores < 2:
        return [skipped("training", "2 trainings side by side", "one core")]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()
        one = [pool.submit(_train_steps, steps, cores, time.time()).result() for _ in range(2)]  # one at a time
        start = time.time() + 20.0  # both processes have built their model and warmed up by then
        two = [f.result() for f in [pool.submit(_train_steps, steps, cores // 2, start) for _ in range(2)]]
    serial = sum(b - a for a, b in one)
    side = max(b for _, b in two) - min(a for a, _ in two)
    return [Row("training", f"2 trainings x {steps} steps, one after the other ({cores} threads)", serial, "s",
                note=f"batch 32, {CROP_S:g} s crops, 64 bands (the default recipe)"),
            Row("training", f"2 trainings side by side ({cores // 2} thread(s) each)", side, "s", "one after the other",
                serial / side, "emospec.parallel: the demo's splits, evaluate's folds")]


def profile_model(onnx_path: Optional[Path], top: int = 8) -> Dict[str, str]:
    """Where a batch-1 forward and a batch-16 training step spend their time (torch.profiler, self CPU)."""
    from torch.profiler import profile

    model = make_model()
    x = torch.randn(1, 3, model.config.n_mels, FRAMES_4S)
    with torch.inference_mode():
        model(x)
        with profile() as p1:
            for _ in range(5):
                model(x)
    train = make_model().train()
    xb, yb = torch.randn(16, 3, train.config.n_mels, 300), torch.randint(0, 4, (16,))
    F.cross_entropy(train(xb), yb).backward()
    with profile() as p2:
        for _ in range(2):
            F.cross_entropy(train(xb), yb).backward()
    return {"forward batch 1, 4 s (5 calls)": p1.key_averages().table(sort_by="self_cpu_time_total", row_limit=top),
            "train fwd+bwd batch 16 (2 steps)": p2.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)}


def try_export(model: EmoAlexNet, frames: int, folder: str) -> Tuple[Optional[Path], str]:
    """``(path, "")`` or ``(None, reason)``."""
    try:
        import onnxruntime  # noqa: F401

        return export_onnx(model, frames, Path(folder) / f"emoalexnet-{frames}.onnx"), ""
    except Exception as e:  # the exporter raises many types; the benchmark reports and goes on
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"


def new_tmpdir() -> str:
    return tempfile.mkdtemp(prefix="emospec-bench-")
