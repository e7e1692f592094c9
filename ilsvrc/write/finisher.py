"""The `Finisher`: finished partial shards (and their DALI index files) flushed to disk
and renamed to their final names on one I/O thread of the main process, off the
workers' path, each after a check that the directory is still this run's."""

import os
from concurrent.futures import ThreadPoolExecutor

from ilsvrc.errors import UserError
from ilsvrc.fsutil import discard, fsync_path, partial_path
from ilsvrc.write.worker import disk_error


class Finisher:
    """Flushes finished partial shards to disk and renames them, off the workers'
    path: one I/O thread of the main process (an executor with one worker), so
    shards become final in the order they finished.

    `add(path, index_path, check)` queues the complete partial file of shard
    `path`; `check` (or None) is called just before its renames and raises a
    UserError when the shard must not become final (another run took the directory
    over: lock.check_plan).  `close()` waits for the queue and raises the first error
    (a full disk shows up here: delayed allocation can fail at fsync).  After an
    error, queued partial files are removed, not renamed.  A kill leaves only partial
    files, which the next run removes.
    """

    def __init__(self):
        self.error = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finisher")

    def _finish(self, path, index_path=None, check=None):
        tmp = partial_path(path)
        later = [tmp] + ([partial_path(index_path)] if index_path else [])
        if self.error is None and check is not None:
            try:
                check()
            except UserError as err:
                self.error = err
        if self.error is not None:
            for p in later:
                discard(p)
            return
        current = index_path or path
        try:
            if index_path:   # the index first: a final shard always has its index
                fsync_path(later[1])
                os.replace(later[1], index_path)
            current = path
            fsync_path(tmp)
            os.replace(tmp, path)
        except OSError as err:
            for p in later:
                discard(p)
            self.error = disk_error(current, err)

    def add(self, path, index_path=None, check=None):
        if self.error is not None:
            for p in [path] + ([index_path] if index_path else []):
                discard(partial_path(p))
            raise self.error
        self._io.submit(self._finish, path, index_path, check)

    def close(self, check=True):
        self._io.shutdown(wait=True)
        if check and self.error is not None:
            raise self.error
