"""The threads of the fits.

dbt runs the Python models on several threads of one process (on DuckDB, and on Spark's session
method). OpenMP's thread limits are per thread, so each fit sets its own (`fit_threads`: OpenMP
only). OpenBLAS has one thread pool for the whole process, and threadpoolctl lets only the first
Python thread that sets its size do so: a fit's BLAS limit was ignored whenever another model's
thread had set it first, and t-SNE's two threads then reached another model's KMeans, whose
result depends on the number of BLAS threads (forced, the product categories' silhouettes moved
by up to 1.4%). So BLAS runs on one thread for the whole process, set when this module is first
imported (every fitting module imports it), and no fit changes it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import numpy  # noqa: F401  (loads OpenBLAS, so that the limit below reaches it)
from threadpoolctl import threadpool_limits

threadpool_limits(limits=1, user_api="blas")


def fit_threads(limit: int | None) -> AbstractContextManager[Any]:
    """OpenMP threads of the calling thread while a fit runs (None: the library default)."""
    return threadpool_limits(limits=limit, user_api="openmp")
