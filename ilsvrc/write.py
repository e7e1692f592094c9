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

from ilsvrc import containers, features, image, resume, shardcheck, tfrecord
from ilsvrc.errors import UserError
from ilsvrc.fsutil import discard, fsync_path, partial_path
from ilsvrc.progress import Progress

# Images read ahead: while a worker prepares one batch of a shard's images, the reads
# of the next batch are already queued at the disk (containers.Reader.prefetch).
READ_AHEAD = 16


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
    """Worker: write one shard.  Returns (records, bytes read, bytes written,
    records checked: None when not checked).

    job = (path, items, check, verify): verify is None or (schema, label_range); then
    the worker reads the shard back and checks every record against the items
    (shardcheck.ShardCheck) before it returns.  The shard is left complete and
    closed as `.NAME.partial`; a `Finisher` in the main process flushes and renames it.
    """
    path, items, check = job[:3]
    verify = job[3] if len(job) > 3 else None
    tmp = partial_path(path)
    checker = shardcheck.ShardCheck(tmp, path, *verify) if verify is not None else None
    nread = 0
    try:
        writer = tfrecord.open_writer(tmp)
    except Exception as err:
        raise _disk_error(tmp, err)
    reader = containers.Reader()
    try:
        for i, item in enumerate(items):
            if i % READ_AHEAD == 0:       # the next images' reads go to the disk now
                for ahead in items[i + (READ_AHEAD if i else 0):i + 2 * READ_AHEAD]:
                    reader.prefetch(ahead.container, ahead.offset, ahead.size)
            try:
                data = reader.read(item.container, item.offset, item.size)
            except OSError as err:
                raise UserError("cannot read %s: %s" % (item.where, err.strerror or err))
            nread += len(data)
            encoded, height, width = image.prepare(data, item.relpath, check, item.where)
            feats = features.common_features(encoded, height, width,
                                             item.relpath.rsplit("/", 1)[-1])
            feats.update(item.features)
            writer.write(features.encode(feats))
            if checker is not None:
                checker.add(feats, writer.flush)
        reader.close()
        writer.close()
        checked = checker.finish() if checker is not None else None
        _start_writeback(tmp)
    except UserError:
        reader.close()
        discard(tmp)
        raise
    except Exception as err:  # OSError, or TensorFlow's errors for a failed write
        reader.close()
        discard(tmp)
        if isinstance(err, OSError) or type(err).__module__.startswith("tensorflow"):
            raise _disk_error(path, err)
        raise
    return len(items), nread, os.path.getsize(tmp), checked


def _start_writeback(path):
    """Ask the kernel to start writing the shard out now (POSIX_FADV_DONTNEED starts
    writeback of dirty pages without waiting), so the finisher's fsync finds most of
    it on disk and the disk stays busy while the worker goes on."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        self._io.submit(self._finish, path)

    def close(self, check=True):
        self._io.shutdown(wait=True)
        if check and self.error is not None:
            raise self.error


# --------------------------------------------------------------------------- driver

def write_splits(splits, runner, check="header", label="writing", verify=None):
    """Write every shard of `splits` that is not already done; return totals.

    verify: None, or (schema, label_range) to have each worker check every shard it
    writes (shardcheck).  The totals then hold `checked` ({prefix: records checked})
    and always `kept` (the (split, k) of shards already complete, not rewritten).
    Shards go out biggest first (most images, then plan order): output does not depend
    on the order, and the last shards to finish are then the small ones.
    """
    if check not in image.CHECKS:
        raise UserError("unknown image check '%s' (use one of: %s)"
                        % (check, ", ".join(image.CHECKS)))
    todo, kept = [], []
    for split in splits:
        done = resume.prepare_dir(split, resume.fingerprint(split, check))
        todo.extend((split, k) for k in range(split.num_shards) if k not in done)
        kept.extend((split, k) for k in sorted(done))
    order = {id(split): i for i, split in enumerate(splits)}
    todo.sort(key=lambda t: (t[0].ranges[t[1]][0] - t[0].ranges[t[1]][1],
                             order[id(t[0])], t[1]))
    total = sum(split.ranges[k][1] - split.ranges[k][0] for split, k in todo)
    if kept:
        sys.stderr.write("%s: %d shards already complete from an earlier run, %d to "
                         "write\n" % (label, len(kept), len(todo)))
    progress = Progress(total, label)
    jobs = ((split.path(k), split.shard_items(k), check, verify) for split, k in todo)
    prefix_of = {split.path(k): split.prefix for split, k in todo}
    checked = {split.prefix: 0 for split in splits}
    written = 0
    finisher = Finisher()
    try:
        for job, (records, nread, nwritten, nchecked) in runner.run(write_shard, jobs):
            finisher.add(job[0])
            written += nwritten
            if nchecked is not None:
                checked[prefix_of[job[0]]] += nchecked
            progress.update(records, nread)
    except BaseException:
        finisher.close(check=False)   # shards finished so far are kept
        raise
    finisher.close()
    progress.update(0, 0, force=True)
    return {"shards": len(todo), "images": total, "bytes_written": written,
            "seconds": time.monotonic() - progress.start,
            "checked": checked if verify is not None else None, "kept": kept}
