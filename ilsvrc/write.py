"""The write stage: worker processes, each owning whole shards.

A shard is written to `.<name>.partial` in its directory, flushed to disk and renamed
to its final name only when complete, so a final name always means a finished shard.
Workers write and close the partial file; the flush to disk (fsync) and the rename
happen on an I/O thread of the main process (`Finisher`), so that waiting for the
disk overlaps the workers' next shards instead of stalling them.
Shards an earlier run finished with the same plan are skipped (see resume).  Record
bytes depend only on the shard's items, so output is identical for any number of
workers.
"""

import errno
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ilsvrc import containers, features, image, resume, storage, tfrecord
from ilsvrc.errors import UserError
from ilsvrc.fsutil import discard, fsync_path, partial_path
from ilsvrc.progress import Progress


def _disk_error(path, err):
    """UserError for a failed write; `err` is an OSError or a TensorFlow error
    (which has no errno, only a message such as '<path>; File too large')."""
    code = getattr(err, "errno", None)
    text = str(err)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or \
            "quota exceeded" in text.lower():
        what, fix = "disk full", "Free space (or choose another output directory)"
    elif code == errno.EFBIG or "File too large" in text:
        what = "file too large (the file system's or the shell's size limit, ulimit -f)"
        fix = "Raise the limit (or choose another output directory)"
    else:
        reason = getattr(err, "strerror", None) or text.strip().rsplit("; ", 1)[-1]
        return UserError("cannot write %s: %s" % (path, reason or type(err).__name__))
    return UserError("%s while writing %s. %s and rerun the same command: finished "
                     "shards are kept." % (what, path, fix))


def write_shard(job):
    """Worker: write one shard.  Returns (records, bytes read, bytes written).

    job = (path, items, check[, plan]).  The shard is left complete and closed as
    `.NAME.partial`; a `Finisher` in the main process flushes and renames it.  A gs://
    path (job carries the plan fingerprint) is uploaded by this worker when complete.
    """
    path, items, check = job[:3]
    remote = storage.is_remote(path)
    tmp = path if remote else partial_path(path)
    nread = 0
    try:
        writer = storage.ShardWriter(path, job[3]) if remote else tfrecord.open_writer(tmp)
    except Exception as err:
        raise _disk_error(tmp, err)
    reader = containers.Reader()
    try:
        for item, data in zip(items, _reads(items, reader)):
            nread += len(data)
            encoded, height, width = image.prepare(data, item.relpath, check, item.where)
            feats = features.common_features(encoded, height, width,
                                             item.relpath.rsplit("/", 1)[-1])
            feats.update(item.features)
            writer.write(features.encode(feats))
        reader.close()
        nwritten = writer.close()
    except UserError:
        reader.close()
        _discard(tmp, writer)
        raise
    except Exception as err:  # OSError, or TensorFlow's errors for a failed write
        reader.close()
        _discard(tmp, writer)
        if isinstance(err, OSError) or type(err).__module__.startswith("tensorflow"):
            raise _disk_error(path, err)
        raise
    return len(items), nread, nwritten if remote else os.path.getsize(tmp)


def _reads(items, reader):
    """Image bytes of `items` in order; reads from a bucket are kept in flight."""
    def one(item):
        try:
            return reader.read(item.container, item.offset, item.size)
        except OSError as err:
            raise UserError("cannot read %s: %s" % (item.where, err.strerror or err))
    return storage.read_ahead(items, one)


def _discard(path, writer):
    if storage.is_remote(path):   # nothing was uploaded: drop the buffer
        if writer is not None and hasattr(writer, "abort"):
            writer.abort()
    else:
        discard(path)


class Finisher:
    """Flushes finished partial shards to disk and renames them, off the workers'
    path: one I/O thread of the main process (an executor with one worker), so
    shards become final in the order they finished.

    `add(path)` queues the complete `.NAME.partial` of shard `path`; `close()` waits
    for the queue and raises the first error (a full disk shows up here: delayed
    allocation can fail at fsync).  After an error, queued partial files are removed,
    not renamed.  A kill leaves only partial files, which the next run removes.
    """

    def __init__(self):
        self.error = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finisher")

    def _finish(self, path):
        tmp = partial_path(path)
        if self.error is not None:
            discard(tmp)
            return
        try:
            fsync_path(tmp)
            os.replace(tmp, path)
        except OSError as err:
            discard(tmp)
            self.error = _disk_error(path, err)

    def add(self, path):
        if self.error is not None:
            raise self.error
        if storage.is_remote(path):   # uploaded complete by its worker
            return
        self._io.submit(self._finish, path)

    def close(self, check=True):
        self._io.shutdown(wait=True)
        if check and self.error is not None:
            raise self.error


# --------------------------------------------------------------------------- driver

def write_splits(splits, runner, check="header", label="writing"):
    """Write every shard of `splits` that is not already done; return totals."""
    if check not in image.CHECKS:
        raise UserError("unknown image check '%s' (use one of: %s)"
                        % (check, ", ".join(image.CHECKS)))
    todo = []
    plans = {}
    for split in splits:
        plans[split.prefix] = fingerprint = resume.fingerprint(split, check)
        if storage.is_remote(split.out_dir):   # the bucket records what is done
            done = storage.remote_done(split, fingerprint)
        else:
            done = resume.prepare_dir(split, fingerprint)
        todo.extend((split, k) for k in range(split.num_shards) if k not in done)
    total = sum(split.ranges[k][1] - split.ranges[k][0] for split, k in todo)
    skipped = sum(s.num_shards for s in splits) - len(todo)
    if skipped:
        sys.stderr.write("%s: %d shards already complete from an earlier run, %d to "
                         "write\n" % (label, skipped, len(todo)))
    progress = Progress(total, label)
    jobs = ((split.path(k), split.shard_items(k), check)
            + ((plans[split.prefix],) if storage.is_remote(split.out_dir) else ())
            for split, k in todo)
    written = 0
    finisher = Finisher()
    try:
        for job, (records, nread, nwritten) in runner.run(write_shard, jobs):
            finisher.add(job[0])
            written += nwritten
            progress.update(records, nread)
    except BaseException:
        finisher.close(check=False)   # shards finished so far are kept
        raise
    finisher.close()
    progress.update(0, 0, force=True)
    return {"shards": len(todo), "images": total, "bytes_written": written,
            "seconds": time.monotonic() - progress.start}
