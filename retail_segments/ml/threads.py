"""The threads of the fits.

dbt runs the Python models on several threads of one process (on DuckDB, and on Spark's session
method). OpenMP's thread limits are per thread, so each fit sets its own (`fit_threads`: OpenMP
only). OpenBLAS has one thread pool for the whole process, and threadpoolctl lets only the first
Python thread that sets its size do so: a fit's BLAS limit was ignored whenever another model's
thread had set it first, and t-SNE's two threads then reached another model's KMeans, whose
result depends on the number of BLAS threads (forced, the product categories' silhouettes moved
by up to 1.4%). So BLAS runs on one thread for the whole process, set when this module is first
imported (every fitting module imports it), and no fit changes it.

The worker processes of a grid search (`fit_workers`) ignore Ctrl-C and end with the process
that started them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import AbstractContextManager
from typing import Any

import numpy  # noqa: F401  (loads OpenBLAS, so that the limit below reaches it)
from joblib import parallel_config
from threadpoolctl import threadpool_limits

threadpool_limits(limits=1, user_api="blas")


def fit_threads(limit: int | None) -> AbstractContextManager[Any]:
    """OpenMP threads of the calling thread while a fit runs (None: the library default)."""
    return threadpool_limits(limits=limit, user_api="openmp")


def fit_workers() -> AbstractContextManager[Any]:
    """joblib's worker processes (loky, its default) for the fits the calling thread starts,
    which leave Ctrl-C to the process that runs dbt: the terminal sends it to every process of
    the build, and a worker stopped in the middle of a fit printed its stack trace through dbt's
    (dbt stops the build, and the fit's result is no longer read). A worker ends as soon as that
    process has gone (killed by a second Ctrl-C, say), rather than idling for loky's timeout."""
    return parallel_config(backend="loky", initializer=_leave_ctrl_c_to_dbt)


def _leave_ctrl_c_to_dbt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def end_when_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=end_when_orphaned, name="parent-watch", daemon=True).start()
