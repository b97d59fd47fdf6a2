"""One GPT training step (forward, backward, AdamW) in tensorlite and in PyTorch eager, on the CPU.

Both models have the same config and the same weights (copied through the state dict) and see the
same batch; both use every core (torch.set_num_threads(os.cpu_count()), NumPy's BLAS threads as
they come; ``--threads N`` sets both, and tensorlite's own pool). Steps of the libraries are
interleaved in one process (blocks of a few steps per library in turn), so that a busy machine
slows them alike, and the median of the repeats
is reported, as wall time and
as the process's CPU time (summed over threads). On a machine shared with other work, wall time
with several threads is unreliable (a thread waiting for a descheduled sibling counts); the CPU
time of ``--threads 1`` is the number least affected by the neighbours. Two torch models: ``torch (ref)`` is
``tests/torch_reference.py`` (attention written out: matmul, mask, softmax, matmul, as tensorlite's
reference path), ``torch (sdpa)`` the same model with ``F.scaled_dot_product_attention``, torch's
fused kernel, the fastest eager torch.

Interleaving is fair only if one library's idle threads do not hold the cores the other's step
needs. OpenBLAS's threads spin for ~2**28 cycles after each call by default, which slowed the
*torch* steps that followed a tensorlite step (torch at config (a) measured 44 ms instead of 24):
``OPENBLAS_THREAD_TIMEOUT=4`` (set below before NumPy loads OpenBLAS, as ``import tensorlite``
does) lets them sleep at once. Torch's OpenMP threads spin too after each op (GNU OpenMP's
default), which slowed the tensorlite step that followed a torch step (32 ms instead of 21 at
config (a), two threads). Torch's spinning is part of its speed, so it is left as it is; instead
each library takes ``BLOCK`` timed steps in a row after one untimed step, which pays for whatever
the previous library left spinning.

Peak memory: for each library, a fresh subprocess builds the model, resets the kernel's peak-RSS
counter (``/proc/self/clear_refs``), takes 3 steps and reports ``VmHWM - VmRSS before``: the peak
memory training adds to the model's weights (gradients, AdamW state, activations, temporaries),
measured the same way for both.

Where tensorlite's step time goes, op by op: ``bench/profile_step.py``.

Generation: tokens/s of ``tensorlite.generate.generate`` greedy, 256 new tokens after a 16-token
prompt, with and without the KV cache, on config (b) (a 128-token window, so the text outgrows
it after 112 new tokens and both paths follow ``generate``'s context rule: restart from the last
64 tokens when the window is full). The two must return the same tokens (checked).

    python bench/train_step.py [--repeats 15] [--threads N] [--skip-memory] [--skip-generate] [--skip-train]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as `import tensorlite` sets it: before NumPy loads OpenBLAS

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/torch_reference.py

CONFIGS = {"a": "the `tensorlite train` default", "b": "a larger GPT"}


def config(name: str) -> dict:
    """Model config + batch size of a bench config (vocab 96: the char vocabulary of the corpus)."""
    from tensorlite.train import TrainConfig

    if name == "a":
        d = TrainConfig()
        return dict(vocab_size=96, seq_len=d.model.seq_len, d_model=d.model.d_model, n_layers=d.model.n_layers,
                    n_heads=d.model.n_heads, batch=d.optim.batch_size)
    return dict(vocab_size=96, seq_len=128, d_model=128, n_layers=4, n_heads=4, batch=16)


def build(cfg: dict, seed: int = 0):
    """(tensorlite model + AdamW, torch ref model + AdamW, torch sdpa model + AdamW, batch)."""
    import torch

    import tensorlite as tl
    from tensorlite import optim
    from tensorlite.backend import tune_allocator
    from tensorlite.nn import GPT, GPTConfig

    tune_allocator()  # what tensorlite.train.train() does when a run starts (process-wide)
    gcfg = GPTConfig(**{k: v for k, v in cfg.items() if k != "batch"})
    tl.manual_seed(seed)
    model = GPT(gcfg)
    opt = optim.AdamW(optim.param_groups_for_decay(model, 0.1), lr=1e-3, betas=(0.9, 0.95))
    torch_models = []
    for sdpa in (False, True):
        ref = make_torch_gpt(gcfg, sdpa)
        ref.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()},
                            strict=False)
        decay = [p for p in ref.parameters() if p.ndim >= 2]
        no_decay = [p for p in ref.parameters() if p.ndim < 2]
        topt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                 lr=1e-3, betas=(0.9, 0.95), foreach=True)
        torch_models.append((ref, topt))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg["vocab_size"], (cfg["batch"], cfg["seq_len"]))
    y = rng.integers(0, cfg["vocab_size"], (cfg["batch"], cfg["seq_len"]))
    return (model, opt), torch_models[0], torch_models[1], (x, y)


def make_torch_gpt(gcfg, sdpa: bool):
    import torch.nn.functional as TF
    from torch_reference import RefAttention, RefGPT

    ref = RefGPT(gcfg.to_dict(), gcfg.ffn_dim)
    if sdpa:
        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(x).split(d, dim=-1)
            q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(b, t, d))

        for m in ref.modules():
            if isinstance(m, RefAttention):
                m.forward = forward.__get__(m)
    return ref


def tl_step(model, opt, x, y):
    import tensorlite as tl
    import tensorlite.nn.functional as F

    opt.zero_grad()
    logits = model(tl.tensor(x))
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tl.tensor(y).reshape(-1))
    loss.backward()
    opt.step()
    return loss.item()


def torch_step(model, opt, x, y):
    import torch
    import torch.nn.functional as TF

    opt.zero_grad(set_to_none=True)
    logits = model(torch.from_numpy(x))
    loss = TF.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1))
    loss.backward()
    opt.step()
    return loss.item()


BLOCK = 3  # timed steps per library in a row


def time_steps(cfg: dict, repeats: int) -> dict:
    (m, o), (r, ro), (s, so), (x, y) = build(cfg)
    steps = {
        "tensorlite": lambda: tl_step(m, o, x, y),
        "torch (ref)": lambda: torch_step(r, ro, x, y),
        "torch (sdpa)": lambda: torch_step(s, so, x, y),
    }
    first = {k: f() for k, f in steps.items()}  # warm-up; also: same weights give the same loss
    for f in steps.values():
        f()
    times = {k: [] for k in steps}
    cpu = {k: [] for k in steps}
    for _ in range(repeats):
        for k, f in steps.items():
            f()  # not timed: it pays for the previous library's threads, still spinning on the cores
            for _ in range(BLOCK):
                c0, t0 = time.process_time(), time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
    return {"median_s": {k: statistics.median(v) for k, v in times.items()},
            "min_s": {k: min(v) for k, v in times.items()},
            "median_cpu_s": {k: statistics.median(v) for k, v in cpu.items()}, "first_loss": first}


# ---- memory (run in a subprocess per library) ---------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def memory_child(lib: str, name: str) -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = config(name)
    (m, o), (r, ro), (s, so), (x, y) = build(cfg)
    if lib == "tensorlite":
        del r, ro, s, so
        step = lambda: tl_step(m, o, x, y)
    else:
        del m, o, r, ro
        step = lambda: torch_step(s, so, x, y)
    before = _status_kb("VmRSS")
    try:  # reset the peak (VmHWM) to the current RSS, so the peak is that of the steps alone
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        how = "VmHWM after clear_refs"
    except OSError:
        how = "ru_maxrss (lifetime peak)"
    for _ in range(3):
        step()
    peak = _status_kb("VmHWM") if how.startswith("VmHWM") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_growth_mb": (peak - before) / 1024, "rss_before_mb": before / 1024, "how": how}))


def peak_memory(lib: str, name: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", lib, name], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- generation ---------------------------------------------------------------------------------
def generation(new_tokens: int = 256, repeats: int = 3) -> dict:
    import tensorlite as tl
    from tensorlite.generate import generate
    from tensorlite.nn import GPT, GPTConfig

    tl.manual_seed(0)
    cfg = config("b")
    model = GPT(GPTConfig(**{k: v for k, v in cfg.items() if k != "batch"}))
    model.eval()
    prompt = list(range(16))
    ts = {True: [], False: []}
    cpu = {True: [], False: []}
    ids = {}
    for _ in range(repeats):  # interleaved, as the training steps
        for use_cache in (True, False):
            c0, t0 = time.process_time(), time.perf_counter()
            ids[use_cache] = generate(model, prompt, new_tokens, temperature=0.0, use_cache=use_cache)
            ts[use_cache].append(time.perf_counter() - t0)
            cpu[use_cache].append(time.process_time() - c0)
    assert ids[True] == ids[False], "cached and uncached greedy decoding differ"
    return {f"{'cached' if c else 'uncached'}_{kind}": new_tokens / statistics.median(v[c])
            for c in (True, False) for kind, v in (("tok_s", ts), ("cpu_tok_s", cpu))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both libraries (default: os.cpu_count())")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="only the generation benchmark")
    ap.add_argument("--memory-child", nargs=2, metavar=("LIB", "CONFIG"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return

    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    import tensorlite as tl

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    tl.set_num_threads(threads)  # tensorlite's own pool (elementwise kernels, attention), as torch's
    if args.threads:
        threadpool_limits(threads)
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info()) or "?"
    print(f"CPU threads: {threads}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"tensorlite pool {tl.get_num_threads()} threads; "
          f"NumPy {np.__version__} ({blas}); load average at start "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    for name, label in ({} if args.skip_train else CONFIGS).items():
        cfg = config(name)
        res = time_steps(cfg, args.repeats)
        med, cpu, best = res["median_s"], res["median_cpu_s"], res["min_s"]
        print(f"\n({name}) {label}: d_model {cfg['d_model']}, {cfg['n_layers']} layers, {cfg['n_heads']} heads, "
              f"context {cfg['seq_len']}, batch {cfg['batch']}, vocab {cfg['vocab_size']}")
        print("  first loss: " + ", ".join(f"{k} {v:.5f}" for k, v in res["first_loss"].items()))
        print(f"  {'ms/step':<13} {'wall median':>11} {'wall best':>10} {'CPU median':>11}")
        for k, v in med.items():
            print(f"  {k:<13} {v * 1e3:11.1f} {best[k] * 1e3:10.1f} {cpu[k] * 1e3:11.1f}")
        for ref in ("torch (ref)", "torch (sdpa)"):
            print(f"  tensorlite / {ref + ':':<14} {med['tensorlite'] / med[ref]:.2f}x wall median, "
                  f"{best['tensorlite'] / best[ref]:.2f}x wall best, {cpu['tensorlite'] / cpu[ref]:.2f}x CPU")
        if not args.skip_memory:
            for lib in ("tensorlite", "torch"):
                mem = peak_memory(lib, name)
                which = "torch (sdpa)" if lib == "torch" else lib
                print(f"  step peak memory (RSS peak - RSS before), {which:<13} {mem['peak_growth_mb']:6.1f} MB "
                      f"(RSS before: {mem['rss_before_mb']:.0f} MB; {mem['how']})")
    if not args.skip_generate:
        g = generation()
        print("\ngeneration, config (b) (128-token window), greedy, 16-token prompt + 256 new tokens:")
        print(f"  {'':<10} {'tok/s (wall)':>12} {'tok/CPU-s':>10}")
        print(f"  {'KV cache':<10} {g['cached_tok_s']:12.1f} {g['cached_cpu_tok_s']:10.1f}")
        print(f"  {'no cache':<10} {g['uncached_tok_s']:12.1f} {g['uncached_cpu_tok_s']:10.1f}")
        print(f"  {'speed-up':<10} {g['cached_tok_s'] / g['uncached_tok_s']:11.1f}x "
              f"{g['cached_cpu_tok_s'] / g['uncached_cpu_tok_s']:9.1f}x")


if __name__ == "__main__":
    main()
