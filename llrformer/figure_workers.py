"""Figure drawing in worker processes that start before the main process imports torch.

On two cores, importing matplotlib takes about 1 s and importing torch 2 to 3 s, each on one
core. A script starts the workers first: they import the figure modules while the main
process imports torch and runs the model, then draw the figures side by side. The main
process never imports matplotlib.

    with FigureWorkers(2, ["llrformer.figures_outputs"], verbose) as workers:
        ...  # import torch, run the model
        pending = [workers.submit(draw_one, arrays, path), workers.submit(draw_two, ...)]
        for job in pending:
            job.result()  # re-raises a worker's exception, UserError included

Submitted functions must be module-level functions, and their arguments picklable.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Optional, Sequence

from .errors import setup_logging

logger = logging.getLogger(__name__)


def _prepare_worker(modules: Sequence[str], verbose: bool) -> None:
    # Ctrl-C reaches the whole process group. The main process reports it and shuts the pool
    # down, so the workers ignore it instead of printing tracebacks of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(verbose)
    for name in modules:
        importlib.import_module(name)


def _started() -> int:
    return os.getpid()


def default_worker_count() -> int:
    """Return 2 where at least two CPU cores are available to this process, else 0."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 0


class FigureWorkers:
    """A pool of `count` processes that import `modules` at once and then run submitted jobs.

    With `count` 0, `submit` runs each job at once in the calling process. Worker processes
    are started with "spawn", so they inherit no state (threads, torch) from the caller.
    """

    def __init__(self, count: int, modules: Sequence[str], verbose: bool = False) -> None:
        self._executor: Optional[ProcessPoolExecutor] = None
        if count < 1:
            return
        self._executor = ProcessPoolExecutor(
            max_workers=count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_prepare_worker,
            initargs=(tuple(modules), verbose),
        )
        # One job per worker starts every process now, so their imports overlap the caller's.
        for _ in range(count):
            self._executor.submit(_started)

    def submit(self, function: Callable, *args, **kwargs) -> Future:
        """Run `function(*args, **kwargs)` in a worker and return its Future."""
        if self._executor is not None:
            return self._executor.submit(function, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(function(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - re-raised by future.result()
            future.set_exception(error)
        return future

    def close(self, cancel: bool = False) -> None:
        """Stop the workers. With `cancel`, jobs that have not started are dropped."""
        if self._executor is not None:
            self._executor.shutdown(wait=not cancel, cancel_futures=cancel)
            self._executor = None

    def __enter__(self) -> FigureWorkers:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(cancel=exc_type is not None)
