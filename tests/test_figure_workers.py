"""Figure workers: jobs run in other processes, errors reach the caller, 0 workers run inline."""

from __future__ import annotations

import os

import pytest
import torch  # noqa: F401 - imported as in a test session, for the worker count

from llrformer.config import load_config
from llrformer.errors import UserError
from llrformer.figure_workers import FigureWorkers, default_worker_count


def test_jobs_run_in_workers():
    with FigureWorkers(2, ["json"]) as workers:
        jobs = [workers.submit(os.getpid) for _ in range(4)]
        process_ids = {job.get() for job in jobs}
    assert os.getpid() not in process_ids
    assert 1 <= len(process_ids) <= 2


@pytest.mark.parametrize("count", [0, 1])
def test_worker_error_reaches_caller(tmp_path, count):
    with FigureWorkers(count, []) as workers:
        job = workers.submit(load_config, tmp_path / "missing.yaml")
        with pytest.raises(UserError, match="missing.yaml"):
            job.get()


def test_no_workers_runs_inline():
    with FigureWorkers(0, ["json"]) as workers:
        assert workers.submit(os.getpid).get() == os.getpid()


def test_no_workers_after_torch_import():
    assert default_worker_count(2) == 0
