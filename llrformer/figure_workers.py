"""Figure drawing in worker processes that start before the main process imports torch.

On two cores, importing matplotlib takes about 1 s and importing torch 2 to 3 s, each on one
core. A script starts the workers first: they import the figure modules while the main
process imports torch and runs the model, then draw the figures side by side. The main
process never imports matplotlib.

    with FigureWorkers(default_worker_count(2), ["llrformer.figures_attention"]) as workers:
        ...  # import torch, run the model
        jobs = [workers.submit(draw_one, arrays, path), workers.submit(draw_two, ...)]
        for job in jobs:
            job.get()  # re-raises a worker's exception, UserError included

Submitted functions must be module-level functions, and their arguments picklable.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import sys
from typing import Any, Callable, Optional, Sequence

from .errors import setup_logging

logger = logging.getLogger(__name__)


def _prepare_worker(modules: Sequence[str], verbose: bool) -> None:
    # Ctrl-C reaches the whole process group. The main process reports it and stops the
    # workers, so the workers ignore it instead of printing tracebacks of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(verbose)
    for name in modules:
        importlib.import_module(name)


def default_worker_count(wanted: int) -> int:
    """Return `wanted` where workers pay off, else 0 (draw in the calling process).

    Workers pay off when at least two CPU cores are available and torch is not imported yet,
    so that their start overlaps the torch import. A process that has imported torch
    already (a test session, a notebook) draws the figures itself.
    """
    if "torch" in sys.modules:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return wanted if cores >= 2 else 0


class _Finished:
    """Result of a job that ran in the calling process, with the interface of AsyncResult."""

    def __init__(self, value: Any = None, error: Optional[BaseException] = None) -> None:
        self._value = value
        self._error = error

    def get(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class FigureWorkers:
    """A pool of `count` processes that import `modules` at once and then run submitted jobs.

    With `count` 0, `submit` runs each job at once in the calling process. Worker processes
    are started with "spawn", so they inherit no state (threads, torch) from the caller.
    """

    def __init__(self, count: int, modules: Sequence[str], verbose: bool = False) -> None:
        self._pool = None
        logger.debug("figure worker processes: %d", count)
        if count > 0:
            self._pool = multiprocessing.get_context("spawn").Pool(
                count, initializer=_prepare_worker, initargs=(tuple(modules), verbose)
            )

    def submit(self, function: Callable, *args, **kwargs):
        """Run `function(*args, **kwargs)` in a worker and return an object whose get() waits.

        get() returns the function's result or raises its exception.
        """
        if self._pool is not None:
            return self._pool.apply_async(function, args, kwargs)
        try:
            return _Finished(function(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - raised again by get()
            return _Finished(error=error)

    def close(self, stop: bool = False) -> None:
        """Wait for the submitted jobs and end the workers. With `stop`, end them at once."""
        if self._pool is None:
            return
        if stop:
            self._pool.terminate()
        else:
            self._pool.close()
        self._pool.join()
        self._pool = None

    def __enter__(self) -> FigureWorkers:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(stop=exc_type is not None)
