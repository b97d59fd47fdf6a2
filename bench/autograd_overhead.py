"""Autograd overhead: microseconds per op for a 300-op chain of 64x64 elementwise ops, tensorlite
vs PyTorch in the same run.

The benchmark lives in ``tensorlite.benchmarks.autograd_overhead`` (its docstring says how it
times); ``tensorlite bench autograd`` runs the same code.

    python bench/autograd_overhead.py [--ops 300] [--size 64] [--repeats 200] [--chain mul,add,tanh]
"""

from tensorlite.benchmarks import main

if __name__ == "__main__":
    main("autograd")
