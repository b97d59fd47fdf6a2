"""What the debug probes cost: the time of one probe (a captured forward on the probe batch, the
per-layer norms, spectral-norm power iterations, the update ratios, one host fetch) against one
training step, measured in one run, interleaved; for ``tensorlite train``'s loop and for a
nanoGPT-style PyTorch loop with :class:`~tensorlite.debug.RunRecorder`.

    python bench/probe_overhead.py [--repeats 20] [--device cpu|cuda] [--torch-threads 1] [--only tensorlite|torch]

At ``Probes(interval=k)`` (``tensorlite train --probe-interval k``, ``RunRecorder(probe_interval=k)``)
the probes add (probe time + (k - 1) x the recorder's time on other steps) / k / step time to a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SIZES = [
    ("tiny", dict(seq_len=64, d_model=64, n_layers=2, n_heads=4, batch_size=16)),
    ("small", dict(seq_len=128, d_model=256, n_layers=4, n_heads=8, batch_size=16)),
]


def _row(framework, name, step, probe, other, rows):
    cost = (probe + 9 * other) / 10 / step
    print(f"{framework:<11}{name:<8}{step * 1e3:>10.1f}{probe * 1e3:>10.1f}{other * 1e3:>10.2f}"
          f"{probe / step:>7.2f}x{100 * cost:>18.1f}%")
    rows.append((framework, name, step, probe, other))


def bench_tensorlite(args, rows):
    from tensorlite.debug import Probes
    from tensorlite.train import TrainConfig, Trainer

    for name, cfg in SIZES:
        trainer = Trainer(TrainConfig().replace(**cfg, steps=10_000, corpus_max_chars=200_000, device=args.device,
                                                eval_interval=0, ckpt_interval=0, progress=False,
                                                out_dir=tempfile.mkdtemp(), name="bench"))
        probes = Probes(interval=1)
        probes.on_train_start(trainer)
        steps, probe = [], []
        for i in range(args.repeats + 2):
            trainer.step = i
            t0 = time.perf_counter()
            metrics = trainer.train_step()
            t1 = time.perf_counter()
            probes.on_before_optimizer_step(trainer)  # measured after the step: same work
            probes.on_step_end(trainer, metrics)
            t2 = time.perf_counter()
            if i >= 2:  # warm-up
                steps.append(t1 - t0)
                probe.append(t2 - t1)
        # the callback does nothing on other steps but count the clipped flag
        _row("tensorlite", name, statistics.median(steps), statistics.median(probe), 0.0, rows)


def bench_torch(args, rows):
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from user_models import torch_lm  # a nanoGPT-style GPT: transformer.h, c_attn, sdpa, tied head

    from tensorlite.debug import RunRecorder

    torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)
    V = 256
    for name, cfg in SIZES:
        torch.manual_seed(0)
        model = torch_lm.GPT(torch_lm.Config(block_size=cfg["seq_len"], vocab_size=V, n_layer=cfg["n_layers"],
                                             n_head=cfg["n_heads"], n_embd=cfg["d_model"])).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        rng = np.random.default_rng(0)
        B, T = cfg["batch_size"], cfg["seq_len"]
        # the probes are called by hand (optimizer=None) so that their time is measured apart
        rec = RunRecorder(tempfile.mkdtemp() + "/run", model, probe_interval=2, grad_clip=1.0, dashboard=False)
        steps, probe, other = [], [], []
        for i in range(2 * args.repeats + 4):
            s = torch.from_numpy(rng.integers(0, V, size=(B, T + 1))).to(device)
            t0 = time.perf_counter()
            _, loss = model(s[:, :-1], s[:, 1:])
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            t1 = time.perf_counter()
            rec.before_optimizer_step(i)
            t2 = time.perf_counter()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            rec.step(i, loss, grad_norm=norm)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t4 = time.perf_counter()
            if i >= 4:
                steps.append((t1 - t0) + (t3 - t2))
                (probe if i % 2 == 0 else other).append((t2 - t1) + (t4 - t3))
        rec.close()
        _row("torch", name, statistics.median(steps), statistics.median(probe), statistics.median(other), rows)


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads (default: 1)")
    ap.add_argument("--only", choices=("tensorlite", "torch"), default=None)
    args = ap.parse_args(argv)

    print(f"device: {args.device}; cores: {os.cpu_count()}; torch threads: {args.torch_threads}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'framework':<11}{'model':<8}{'step ms':>10}{'probe ms':>10}{'other ms':>10}{'ratio':>8}"
          f"{'at interval 10':>19}")
    rows: list = []
    if args.only in (None, "tensorlite"):
        bench_tensorlite(args, rows)
    if args.only in (None, "torch"):
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch: not installed, skipped")
        else:
            bench_torch(args, rows)
    return rows


if __name__ == "__main__":
    main()
