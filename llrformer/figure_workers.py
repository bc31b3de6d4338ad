"""Figure drawing in worker processes that start before the main process imports torch.

On two cores, importing matplotlib takes about 1 s and importing torch 2 to 3 s, each on one
core. A script starts the workers first: they import the figure modules while the main
process imports torch and runs the model, then draw the figures side by side. The main
process never imports matplotlib.

    with FigureWorkers(default_worker_count(2), ["llrformer.figures_attention"]) as workers:
        ...  # import torch, run the model
        jobs = [workers.submit(draw_one, arrays, path), workers.submit(draw_two, ...)]
        for job in jobs:
            job.result()  # raises a worker's exception again, UserError included

Submitted functions must be module-level functions, and their arguments picklable.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Optional, Sequence

from .errors import setup_logging

logger = logging.getLogger(__name__)


def _prepare_worker(modules: Sequence[str], verbose: bool) -> None:
    # Ctrl-C reaches the whole process group. The main process reports it and stops the
    # workers, so the workers ignore it instead of printing tracebacks of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(verbose)
    for name in modules:
        importlib.import_module(name)


def default_worker_count(requested: int) -> int:
    """Return `requested` where workers pay off, else 0 (draw in the calling process).

    Workers pay off when at least two CPU cores are available and torch is not imported yet,
    so that their start overlaps the torch import. A process that has imported torch
    already (a test session, a notebook) draws the figures itself. The environment variable
    LLRFORMER_FIGURE_WORKERS=0 turns the workers off.
    """
    if os.environ.get("LLRFORMER_FIGURE_WORKERS", "").strip() == "0" or "torch" in sys.modules:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return requested if cores >= 2 else 0


class FigureWorkers:
    """A pool of `count` processes that import `modules` at once and then run submitted jobs.

    With `count` 0, `submit` runs each job at once in the calling process. Worker processes
    are started with "spawn", so they inherit no state (threads, torch) from the caller. A
    worker that dies (killed, out of memory) makes `result()` raise BrokenProcessPool
    instead of waiting forever.
    """

    def __init__(self, count: int, modules: Sequence[str], verbose: bool = False) -> None:
        self._executor: Optional[ProcessPoolExecutor] = None
        logger.debug("figure worker processes: %d", count)
        if count < 1:
            return
        self._executor = ProcessPoolExecutor(
            max_workers=count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_prepare_worker,
            initargs=(tuple(modules), verbose),
        )
        # The executor starts a process per submitted job, up to `count`. Starting them all
        # now lets their imports overlap the caller's work.
        for _ in range(count):
            self._executor.submit(os.getpid)

    def submit(self, function: Callable, *args, **kwargs) -> Future:
        """Run `function(*args, **kwargs)` in a worker and return its Future.

        result() returns the function's result or raises its exception.
        """
        if self._executor is not None:
            return self._executor.submit(function, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(function(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - raised again by result()
            future.set_exception(error)
        return future

    def close(self, cancel: bool = False) -> None:
        """Wait for the submitted jobs and end the workers.

        With `cancel` (after an error or Ctrl-C), the workers are killed at once instead, so
        that nothing waits on a worker and no worker outlives the script.
        """
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        if not cancel:
            executor.shutdown(wait=True)
            return
        # ProcessPoolExecutor has no public way to stop running jobs. Its _processes maps the
        # worker ids to their multiprocessing.Process objects (checked on CPython 3.11).
        processes = list((getattr(executor, "_processes", None) or {}).values())
        for process in processes:
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(timeout=5)

    def __enter__(self) -> FigureWorkers:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(cancel=exc_type is not None)
