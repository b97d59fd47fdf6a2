"""Settings for the whole test run (unit tests and docs code blocks alike).

The suite runs as two xdist workers on two cores. OpenBLAS's own threads would oversubscribe
them, and on tiny matrices its spinning threads make a matmul 10-30x slower under load, so each
worker's BLAS gets one thread.
"""

from threadpoolctl import threadpool_limits

threadpool_limits(limits=1)
