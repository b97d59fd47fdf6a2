"""Matmul kernels against NumPy's BLAS, measured in one run: float32 N = 128 .. 2048.

The benchmark lives in ``tensorlite.benchmarks.matmul`` (its docstring says how it times);
``tensorlite bench matmul`` runs the same code.

    python bench/matmul.py [--sizes 128 256 512 1024 2048] [--rounds 5] [--device cpu|cuda]
"""

from tensorlite.benchmarks import main

if __name__ == "__main__":
    main("matmul")
