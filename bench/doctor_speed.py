"""How long the doctor takes: the full battery on 2-layer models of both frameworks, with the
slowest checks, and what it is against one training step of the same model (a ratio measured in
the same run, so a loaded machine shifts both).

The doctor is meant to run in seconds before training: a view of the model (one forward), a few
dozen forwards on small batches, one backward, and 60 optimizer steps on one batch for the
overfitting check, which dominates.

    python bench/doctor_speed.py [--repeats 3] [--overfit-steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "examples")]


def cases():
    import torch_gpt
    from user_models import tl_lm, torch_lm

    import tensorlite as tl
    from tensorlite import nn, optim

    def tl_gpt():
        tl.manual_seed(0)
        m = nn.GPT(nn.GPTConfig(vocab_size=64, seq_len=32, d_model=32, n_layers=2, n_heads=4, pos="rope"))
        opt = optim.AdamW(optim.param_groups_for_decay(m, 0.1), lr=3e-3)
        return dict(model=m, optimizer=opt, scheduler=optim.lr_scheduler.WarmupCosine(opt, 20, 200))

    def example():
        m, o, s = torch_gpt.make()
        return dict(model=m, optimizer=o, scheduler=s, batch=torch_gpt.get_batch())

    return {
        "tensorlite nn.GPT": tl_gpt,
        "tensorlite user model (tl_lm)": tl_lm.build,
        "torch user model (torch_lm)": torch_lm.build,
        "torch nanoGPT-style example": example,
    }


def one_step(parts):
    """Seconds of one forward + backward + AdamW step of the model, in its own framework, with the
    threads the doctor uses for a small model (one)."""
    import importlib

    from tensorlite.debug import model_view

    with importlib.import_module("tensorlite.debug.doctor")._few_threads(parts["model"]):
        return _one_step(parts, model_view)


def _one_step(parts, model_view):
    view = model_view(parts["model"])
    x, y = view.random_batch(8, seq_len=view.probe_len)
    params = [p for p in parts["model"].parameters() if p.requires_grad]
    opt = view.native.adamw(params, 1e-3)
    saved = view.native.snapshot(params)
    t = time.perf_counter()
    for _ in range(5):
        opt.zero_grad()
        view.loss_native(x, y).backward()
        opt.step()
    dt = (time.perf_counter() - t) / 5
    view.native.restore(params, saved)
    return dt


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--overfit-steps", type=int, default=60)
    args = ap.parse_args(argv)
    import importlib

    from tensorlite.debug import doctor

    doctor_module = importlib.import_module("tensorlite.debug.doctor")  # the module, not the function

    timings: dict = {}
    run_check = doctor_module._run

    def timed(spec, ctx):
        t = time.perf_counter()
        try:
            return run_check(spec, ctx)
        finally:
            timings[spec.name] = timings.get(spec.name, 0.0) + time.perf_counter() - t

    doctor_module._run = timed
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    print(f"{'model':32s} {'doctor':>8s} {'1 step':>8s} {'ratio':>7s}   slowest checks")
    for name, build in cases().items():
        parts = build()
        kw = {k: parts[k] for k in ("optimizer", "scheduler", "batch", "loss_fn") if parts.get(k) is not None}
        doctor(parts["model"], **kw, overfit_steps=args.overfit_steps)  # warm-up (imports, caches)
        times = []
        timings.clear()
        for _ in range(args.repeats):
            t = time.perf_counter()
            report = doctor(parts["model"], **kw, overfit_steps=args.overfit_steps)
            times.append(time.perf_counter() - t)
        step = one_step(parts)
        med = statistics.median(times)
        slow = sorted(timings.items(), key=lambda kv: -kv[1])[:3]
        slow_txt = ", ".join(f"{k} {v / args.repeats:.2f}s" for k, v in slow)
        print(f"{name:32s} {med:7.2f}s {step * 1e3:6.1f}ms {med / step:6.0f}x   {slow_txt}"
              f"{'' if report.ok else '   (report not ok!)'}")


if __name__ == "__main__":
    main()
