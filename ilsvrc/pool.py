"""Worker processes that run jobs with a bounded number in flight.

    with Pool(workers) as p:
        for job, result in p.run(fn, jobs): ...

One pool serves a whole conversion (indexing, writing, verifying), so each worker
starts once and imports TensorFlow at most once; entering the pool starts the workers
at once, while the caller goes on (see `start`).  `jobs` may be a lazy iterator: at
most 2*workers jobs are pickled and waiting at any time, so memory does not grow with
the number of jobs.  Results come in completion order.  workers=0 runs everything in
this process (debugging and tests).  On the first exception the workers are stopped
and the exception is raised in the caller.

Small jobs may travel together (`run(..., weight=, per_batch=)`): consecutive jobs
whose weights add up to at most `per_batch` go to one worker as one batch, run there
in turn, and their results come back together (each still yielded as (job, result)),
so that many small jobs do not each pay the round trip (~0.2 ms of CPU: pickling,
queues, wake-ups).  A job that raises stops its batch: the results of the jobs before
it in the batch are yielded first, then its exception is raised.
"""

import concurrent.futures as cf
import ctypes
import functools
import multiprocessing
import os
import signal

from ilsvrc import tfimport
from ilsvrc.errors import UserError

# Quiet TensorFlow in workers; oneDNN only affects math kernels, not the JPEG codec
# or record I/O used here, and turning it off silences its start-up notice.
_WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _init_worker():
    for key, value in _WORKER_ENV.items():
        os.environ.setdefault(key, value)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent):
    """Have the kernel kill this worker when the process that started it ends, however
    it ends (kill -9 included), so no worker outlives its run with the source open.
    Ctrl-C in a terminal goes to the whole process group: the main process handles it
    and stops the workers, so a worker ignores it (and prints no traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):   # not Linux: the parent's own clean-up remains
        pass
    if os.getppid() != parent:          # the parent ended before prctl took effect
        os._exit(1)


# glibc malloc's M_TRIM_THRESHOLD and M_MMAP_THRESHOLD (mallopt)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
KEEP_FREED, MMAP_ABOVE = 64 << 20, 4 << 20


def _keep_freed_memory():
    """Have glibc's malloc keep up to KEEP_FREED bytes of freed heap for reuse, and
    take blocks up to MMAP_ABOVE from the heap.  A worker allocates and frees each
    image's bytes (~110 KB, read and read back): by default the top of the heap was
    handed back to the kernel and faulted in again, image after image (125,000
    page faults in a 13,000-image run with 2 workers, 46,000 so).  A worker's peak
    memory does not change.  Nothing happens where malloc is not glibc's."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
        mallopt(_M_TRIM_THRESHOLD, KEEP_FREED)
        mallopt(_M_MMAP_THRESHOLD, MMAP_ABOVE)
    except (OSError, AttributeError):
        pass


def _start_worker(parent):
    """Initializer of a worker process: tied to its parent's life, its environment,
    its allocator's settings, and TensorFlow's image ops without the rest of the
    package when it needs them (tfimport.use_light_import)."""
    _die_with_parent(parent)
    _init_worker()
    _keep_freed_memory()
    tfimport.use_light_import()


def _started():
    """Worker: nothing to load (the job that makes a worker start)."""


def _run_batch(fn, jobs):
    """Worker: fn(job) for each of `jobs` in turn; returns ([results], None), or at
    the first exception ([results of the jobs before it], the exception with its
    traceback, raised in the caller as ProcessPoolExecutor raises one)."""
    results = []
    for job in jobs:
        try:
            results.append(fn(job))
        except Exception as err:
            return results, cf.process._ExceptionWithTraceback(err, err.__traceback__)
    return results, None


def _batches(jobs, weight, per_batch):
    """Lists of consecutive jobs whose weights add up to at most `per_batch` (a job
    heavier than that alone), lazily."""
    batch, total = [], 0
    for job in jobs:
        w = weight(job)
        if batch and total + w > per_batch:
            yield batch
            batch, total = [], 0
        batch.append(job)
        total += w
    if batch:
        yield batch


class Pool:
    """`workers` processes (0: this process); `warm_up`, a module-level function,
    runs once in every worker as it starts (say, to load what the jobs will need)."""

    def __init__(self, workers, warm_up=None):
        self.workers = workers
        self.warm_up = warm_up
        self._executor = None

    def __enter__(self):
        self.start()
        return self

    def start(self):
        """Start every worker now and have each run `warm_up` (the write stage
        passes worker.warm_up: its modules and the compiled CRC32C), so that start-up
        overlaps the main process's indexing and planning instead of delaying the
        first shard.  Nothing waits for it."""
        if self.workers > 0 and self._executor is None:
            executor = self._get()
            # one job per worker: ProcessPoolExecutor starts a process per job
            # submitted while none is idle
            for _ in range(self.workers):
                executor.submit(self.warm_up or _started)

    def __exit__(self, *exc):
        self.close(abort=exc[0] is not None)

    def _get(self):
        if self._executor is None:
            ctx = multiprocessing.get_context("spawn")
            self._executor = cf.ProcessPoolExecutor(max_workers=self.workers,
                                                    mp_context=ctx,
                                                    initializer=_start_worker,
                                                    initargs=(os.getpid(),))
        return self._executor

    def close(self, abort=False):
        """Stop the workers.  They are terminated rather than asked to exit: all
        results are in when a run ends (workers keep no state and nothing unwritten),
        and a worker that has imported TensorFlow takes about a second to exit."""
        ex, self._executor = self._executor, None
        if ex is None:
            return
        for proc in list((getattr(ex, "_processes", None) or {}).values()):
            try:
                proc.terminate()
            except Exception:
                pass
        ex.shutdown(wait=True, cancel_futures=True)

    def run(self, fn, jobs, weight=None, per_batch=0):
        """(job, fn(job)) of every job, in completion order; with `weight` (job ->
        number), jobs go out in batches of at most `per_batch` (module docstring)."""
        if self.workers <= 0:
            _init_worker()
            for job in jobs:
                yield job, fn(job)
            return
        if weight is not None and per_batch > 0:
            yield from self._batched(fn, jobs, weight, per_batch)
            return
        yield from self._run(fn, jobs)

    def _batched(self, fn, jobs, weight, per_batch):
        try:
            for batch, (results, err) in self._run(functools.partial(_run_batch, fn),
                                                   _batches(jobs, weight, per_batch)):
                yield from zip(batch, results)
                if err is not None:      # rebuilt here as the exception itself
                    raise err
        except BaseException:
            self.close(abort=True)
            raise

    def _run(self, fn, jobs):
        executor = self._get()
        pending = {}
        jobs = iter(jobs)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < 2 * self.workers:
                    try:
                        job = next(jobs)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[executor.submit(fn, job)] = job
                if not pending:
                    break
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    yield job, fut.result()
        except cf.process.BrokenProcessPool:
            self.close(abort=True)
            raise UserError("a worker process died (killed, or out of memory?). Finished "
                            "shards are kept: rerun the same command, with fewer workers "
                            "if memory is short.")
        except BaseException:
            self.close(abort=True)
            raise
