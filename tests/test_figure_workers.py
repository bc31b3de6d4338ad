"""Figure workers: jobs run in other processes, errors reach the caller, 0 workers run inline."""

from __future__ import annotations

import os
import time
from concurrent.futures.process import BrokenProcessPool

import pytest
import torch  # noqa: F401 - imported as in a test session, for the worker count
from conftest import python_output

from llrformer.config import load_config
from llrformer.errors import UserError
from llrformer.figure_workers import FigureWorkers, default_worker_count
from llrformer.script_support import FIGURE_MODULES


def test_jobs_run_in_workers():
    with FigureWorkers(2, ["json"]) as workers:
        jobs = [workers.submit(os.getpid) for _ in range(4)]
        process_ids = {job.result() for job in jobs}
    assert os.getpid() not in process_ids
    assert 1 <= len(process_ids) <= 2


@pytest.mark.parametrize("count", [0, 1])
def test_worker_error_reaches_caller(tmp_path, count):
    with FigureWorkers(count, []) as workers:
        job = workers.submit(load_config, tmp_path / "missing.yaml")
        with pytest.raises(UserError, match="missing.yaml"):
            job.result()


def test_dead_worker_raises():
    with FigureWorkers(1, []) as workers:
        job = workers.submit(os._exit, 3)
        with pytest.raises(BrokenProcessPool):
            job.result(timeout=60)


def test_error_kills_busy_workers():
    workers = FigureWorkers(1, [])
    process_id = workers.submit(os.getpid).result(timeout=60)
    workers.submit(time.sleep, 60)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with workers:
            raise KeyboardInterrupt
    assert time.monotonic() - started < 20
    with pytest.raises(ProcessLookupError):
        os.kill(process_id, 0)


def test_no_workers_runs_inline():
    with FigureWorkers(0, ["json"]) as workers:
        assert workers.submit(os.getpid).result() == os.getpid()


def test_no_workers_after_torch_import():
    assert default_worker_count(2) == 0


def test_figure_modules_do_not_import_torch():
    # Workers unpickle Letterbox and PatchGrid objects, so these modules must stay torch-free.
    modules = list(FIGURE_MODULES) + ["llrformer.preprocess", "llrformer.patch_grid"]
    code = f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
    code += "print('torch' in sys.modules)"
    assert python_output(code).strip() == "False"
