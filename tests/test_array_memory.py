"""tl.debug.array_memory: counts the array bytes a block leaves alive, the same on every run."""

import tracemalloc

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import nn


def test_counts_exactly_the_array_bytes_still_alive():
    with tl.debug.array_memory() as mem:
        kept = np.ones(1_000_000)                  # 8,000,000 bytes of float64
        dropped = np.ones(500_000)
        del dropped
        names = {str(i): [i] for i in range(10_000)}  # Python objects do not count
    assert mem.held_bytes == kept.nbytes == 8_000_000
    assert mem.held_mib == pytest.approx(8_000_000 / 2**20)
    assert len(names) == 10_000


def test_graph_memory_matches_itself_across_runs_and_vanishes_under_no_grad():
    def held(grad_on):
        tl.manual_seed(0)
        model = nn.GPT(nn.GPTConfig(vocab_size=32, seq_len=16, d_model=32, n_layers=2, n_heads=2))
        x = tl.randint(0, 32, (4, 16))
        with tl.set_grad_enabled(grad_on), tl.debug.array_memory() as mem:
            loss = model.loss(x, x)
        assert loss.item() > 0
        return mem.held_bytes

    first, second = held(True), held(True)
    assert first == second > 100_000
    # without a graph only the scalar loss survives
    assert held(False) < 1_000


def test_leaves_an_outer_trace_running_and_stops_its_own():
    assert not tracemalloc.is_tracing()
    with tl.debug.array_memory():
        assert tracemalloc.is_tracing()
    assert not tracemalloc.is_tracing()

    tracemalloc.start()
    try:
        before = np.ones(1000)
        with tl.debug.array_memory() as mem:
            inner = np.ones(2000)
        assert tracemalloc.is_tracing()
        assert mem.held_bytes == inner.nbytes       # what existed before is not counted
        assert before.nbytes == 8000
    finally:
        tracemalloc.stop()


def test_held_mib_before_the_block_ends_is_an_error():
    mem = tl.debug.array_memory()
    with pytest.raises(RuntimeError, match="only after the with block ends"):
        _ = mem.held_mib


@pytest.mark.gpu
def test_on_a_gpu_the_cupy_pool_keeps_the_count():
    with tl.debug.array_memory("cuda") as mem:
        kept = tl.ones(1000, 1000, device="cuda")      # 4,000,000 bytes of float32
        dropped = tl.ones(500, 500, device="cuda")
        del dropped
    # the pool rounds each block up to a multiple of 512 bytes
    assert kept.numpy().nbytes <= mem.held_bytes < kept.numpy().nbytes + 512
