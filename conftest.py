"""Settings for the whole test run (unit tests and docs code blocks alike).

The suite runs as two xdist workers on two cores. OpenBLAS's own threads would oversubscribe
them, and on tiny matrices its spinning threads make a matmul 10-30x slower under load, so each
worker's BLAS gets one thread. torch's intra-op pool is not loaded yet when this runs, so
threadpoolctl cannot reach it: OMP_NUM_THREADS, which torch reads when it is first imported, gives
it one thread too (a float16 training block of the mixed-precision page took 28 s with torch's
default two threads beside another worker, 3 s with one).
"""

import os

from threadpoolctl import threadpool_limits

os.environ.setdefault("OMP_NUM_THREADS", "1")
threadpool_limits(limits=1)
