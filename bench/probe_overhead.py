"""What the debug probes cost: the time of one probe (a recorded forward on the probe batch, the
per-layer norms, spectral-norm power iterations, the update ratios, one host fetch) against one
training step, measured in one run, interleaved.

    python bench/probe_overhead.py [--repeats 20] [--device cpu|cuda]

At ``Probes(interval=k)`` (``tensorlite train --probe-interval k``) the probes add
(probe time / step time) / k to a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from tensorlite.debug import Probes
    from tensorlite.train import TrainConfig, Trainer

    sizes = [
        ("tiny", dict(seq_len=64, d_model=64, n_layers=2, n_heads=4, batch_size=16)),
        ("small", dict(seq_len=128, d_model=256, n_layers=4, n_heads=8, batch_size=16)),
    ]
    print(f"device: {args.device}; threads: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'model':<8}{'step ms':>10}{'probe ms':>10}{'ratio':>8}{'cost at interval 10':>22}")
    rows = []
    for name, cfg in sizes:
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
        s, p = statistics.median(steps), statistics.median(probe)
        print(f"{name:<8}{s * 1e3:>10.1f}{p * 1e3:>10.1f}{p / s:>7.2f}x{100 * p / s / 10:>21.1f}%")
        rows.append((name, s, p))
    return rows


if __name__ == "__main__":
    main()
