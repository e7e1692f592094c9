"""pool.Pool: small jobs travel to the workers in batches (run's weight/per_batch),
and every job still gives its own (job, result); a job that raises stops the run
after the results of the jobs before it in its batch."""

import math

import pytest

from ilsvrc import pool


def test_batches_of_consecutive_jobs_up_to_the_weight():
    jobs = [1, 1, 1, 5, 2, 2, 9, 1]
    got = list(pool._batches(iter(jobs), lambda j: j, 4))
    assert got == [[1, 1, 1], [5], [2, 2], [9], [1]]
    assert list(pool._batches(iter([]), lambda j: j, 4)) == []


@pytest.mark.parametrize("per_batch", [0, 1, 7, 1000])
def test_batched_run_gives_every_job_its_result(per_batch):
    jobs = [float(n) for n in range(40)]
    with pool.Pool(2) as p:
        got = list(p.run(math.sqrt, jobs, weight=lambda j: 1, per_batch=per_batch))
    assert sorted(got) == [(j, math.sqrt(j)) for j in jobs]


def test_a_job_that_raises_stops_its_batch_after_the_ones_before_it():
    jobs = [4.0, 9.0, -1.0, 16.0]
    seen = []
    with pool.Pool(1) as p:
        with pytest.raises(ValueError, match="math domain error") as err:
            for job, result in p.run(math.sqrt, jobs, weight=lambda j: 1, per_batch=10):
                seen.append((job, result))
    assert seen == [(4.0, 2.0), (9.0, 3.0)]
    assert "math domain error" in str(err.value.__cause__)   # the worker's traceback
