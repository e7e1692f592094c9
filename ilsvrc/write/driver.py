"""The write stage: worker processes, each owning whole shards.

A shard is written to `.<name>.<host>.<pid>.partial` in its directory (fsutil, lock),
flushed to disk and renamed to its final name only when complete, so a final name
always means a finished shard.
Workers write and close the partial file; the flush to disk (fsync) and the rename
happen on an I/O thread of the main process (`Finisher`), so that waiting for the
disk overlaps the workers' next shards instead of stalling them.
Shards an earlier run finished with the same plan are skipped (see resume).  A run
holds its output directories' run lock (lock.py) while it writes; in task mode
(tasks.py) it writes only the shards its task owns.  Record bytes depend only on
the shard's items, so output is identical for any number of workers.
A gs:// shard (upload.ShardWriter) has no partial file: its worker checks it from
the upload buffer and uploads it create-if-absent; gs:// outputs take no run lock
(the bucket records what is done, upload.remote_done).
"""

import errno
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ilsvrc import storage
from ilsvrc.sources import containers
from ilsvrc.readerfiles import dali
from ilsvrc.records import features, image
from ilsvrc.write import lock, resume, shardcheck
from ilsvrc import tasks
from ilsvrc.records import tfrecord
from ilsvrc.errors import UserError
from ilsvrc.fsutil import discard, fsync_path, partial_path
from ilsvrc.progress import Progress
from ilsvrc.write import upload
from ilsvrc.sources import remote

# Images read ahead: while a worker prepares one batch of a shard's images, the reads
# of the next batch are already queued at the disk (containers.Reader.prefetch).  The
# shuffled training order makes these reads random over the whole tar; out of the page
# cache (26 GB release, 2 workers) 64 took 191 s end to end where 16 took 207-217 s
# (docs/performance.md).  64 images are ~7 MB of page cache per worker.
READ_AHEAD = 64


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
    records checked, {synset: {labels}} of the records read back; both None when
    not checked).

    job = (path, items, check, tmp, verify, index_tmp, plan): tmp is the partial
    file, named by the main process (fsutil.partial_path); verify is None or (schema,
    label_range), and then the worker reads the shard back and checks every record
    against the items (shardcheck.ShardCheck) before it returns; index_tmp, when not
    None, is where the shard's DALI index file is written (dali.write_partial).  The
    shard and its index are left complete and closed as partial files; a `Finisher`
    in the main process flushes and renames them.

    A gs:// path has no partial file (tmp is None) and plan is the plan fingerprint:
    the shard is framed into upload.ShardWriter's buffer, checked from that buffer
    (verify), and only then uploaded by this worker with create-if-absent; the
    storage layer checks the CRC32C the bucket reports.
    """
    path, items, check, tmp, verify, index_tmp, plan = job
    remote = storage.is_remote(path)
    writer = None
    nread = 0
    sizes = []
    try:
        writer = upload.ShardWriter(path, plan) if remote else tfrecord.open_writer(tmp)
    except Exception as err:
        raise _disk_error(tmp or path, err)
    checker = None
    if verify is not None:
        checker = shardcheck.ShardCheck(writer.buffer() if remote else tmp, path, *verify)
    reader = containers.Reader()
    try:
        for item, data in zip(items, _reads(items, reader)):
            nread += len(data)
            encoded, height, width = image.prepare(data, item.relpath, check, item.where)
            feats = features.common_features(encoded, height, width,
                                             item.relpath.rsplit("/", 1)[-1])
            feats.update(item.features)
            payload = features.encode(feats)
            sizes.append(len(payload))
            writer.write(payload)
            if checker is not None:
                checker.add(feats, writer.flush)
        reader.close()
        if remote:   # checked from the buffer, then uploaded (create-if-absent)
            checked = checker.finish() if checker is not None else None
            nwritten = writer.close()
        else:
            writer.close()
            checked = checker.finish() if checker is not None else None
            if index_tmp:
                dali.write_partial(index_tmp, sizes)
            _start_writeback(tmp)
            nwritten = os.path.getsize(tmp)
    except UserError:
        reader.close()
        _discard(tmp, index_tmp, writer)
        raise
    except Exception as err:  # OSError, or TensorFlow's errors for a failed write
        reader.close()
        _discard(tmp, index_tmp, writer)
        if isinstance(err, OSError) or type(err).__module__.startswith("tensorflow"):
            raise _disk_error(path, err)
        raise
    return (len(items), nread, nwritten, checked,
            checker.pairs if checker is not None else None)


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


def _reads(items, reader):
    """Image bytes of `items` in order.  Reads from a bucket are kept in flight on
    threads (remote.read_ahead); local reads are queued at the disk READ_AHEAD
    images ahead (containers.Reader.prefetch)."""
    def one(item):
        try:
            return reader.read(item.container, item.offset, item.size)
        except OSError as err:
            raise UserError("cannot read %s: %s" % (item.where, err.strerror or err))
    if any(isinstance(item.container, remote.ObjectSlices) for item in items):
        yield from remote.read_ahead(items, one)
        return
    for i, item in enumerate(items):
        if i % READ_AHEAD == 0:       # the next images' reads go to the disk now
            for ahead in items[i + (READ_AHEAD if i else 0):i + 2 * READ_AHEAD]:
                reader.prefetch(ahead.container, ahead.offset, ahead.size)
        yield one(item)


def _discard(tmp, index_tmp, writer):
    if tmp is None:   # a gs:// shard: nothing was uploaded, drop the buffer
        if writer is not None and hasattr(writer, "abort"):
            writer.abort()
        return
    discard(tmp)
    if index_tmp:
        discard(index_tmp)


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

    def _finish(self, path, index_path=None):
        tmp = partial_path(path)
        later = [tmp] + ([partial_path(index_path)] if index_path else [])
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
            self.error = _disk_error(current, err)

    def add(self, path, index_path=None):
        if self.error is not None:
            raise self.error
        if storage.is_remote(path):   # uploaded complete by its worker
            return
        self._io.submit(self._finish, path, index_path)

    def close(self, check=True):
        self._io.shutdown(wait=True)
        if check and self.error is not None:
            raise self.error


# --------------------------------------------------------------------------- driver

def owned_shards(splits, task, log=None):
    """[(split, k)] of the shards `task` writes (all of them when task is None);
    with `log`, write the task's line saying who it is and what it owns."""
    keys = [(split, k) for split in splits for k in range(split.num_shards)]
    if task is None:
        return keys
    weights = [w for split in splits for w in tasks.shard_weights(split)]
    mine = tasks.owned(keys, weights, task)
    if log is not None:
        known = all(not s.count or s.item(0).size >= 0 for s in splits)
        chosen = set(mine)
        nbytes = sum(w for key, w in zip(keys, weights) if key in chosen)
        log.write(tasks.describe(task, [(s.prefix, k) for s, k in mine], len(keys),
                                 nbytes if known else None) + "\n")
    return mine


def write_splits(splits, runner, check="header", label="writing", task=None,
                 verify=None, index=None):
    """Write every shard of `splits` (of `task`'s share in task mode) that is not
    already done; return totals.

    verify: None, or (schema, label_range) to have each worker check every shard it
    writes (shardcheck).  The totals then hold `checked` ({prefix: records checked})
    and `pairs` ({synset: {labels}} read back); always `kept` (the (split, k) of
    shards already complete, not rewritten) and `owned` (the [(prefix, k)] of this
    run).  `index`: a dali.Index (DALI index files with the shards), or None.
    """
    if check not in image.CHECKS:
        raise UserError("unknown image check '%s' (use one of: %s)"
                        % (check, ", ".join(image.CHECKS)))
    digests = [resume.fingerprint(split, check) for split in splits]
    mine = owned_shards(splits, task, sys.stderr)
    note = "task %d of %d" % (task.index, task.count) if task else "an ordinary run"
    remote = [storage.is_remote(s.out_dir) for s in splits]
    if index is not None and index.enabled and any(remote):
        raise UserError("DALI index files are written next to local shards only; drop "
                        "--dali-index for a gs:// output (or write locally)")
    # a bucket records what is done itself (objects are created only if absent), so
    # gs:// outputs take no run lock and have no directory to prepare
    local_dirs = [s.out_dir for s, r in zip(splits, remote) if not r]
    with lock.Claim(local_dirs, task is not None, note) as claim:
        done = {}
        for split, digest, is_remote in zip(splits, digests, remote):
            if is_remote:
                done[split.prefix] = upload.remote_done(split, digest)
                continue
            alone = claim.alone[split.out_dir]
            done[split.prefix] = resume.prepare_dir(split, digest, alone)
            if index is not None and index.prepare(split, done[split.prefix], runner,
                                                   alone):
                sys.stderr.write("%s: wrote the missing DALI index files of finished "
                                 "%s shards\n" % (label, split.prefix))
        claim.ready()
        todo = [(split, k) for split, k in mine if k not in done[split.prefix]]
        kept = [(split, k) for split, k in mine if k in done[split.prefix]]
        plans = dict(zip([s.prefix for s in splits], digests))
        stats = _write(splits, todo, kept, runner, check, label, verify, index, plans)
    stats["owned"] = [(s.prefix, k) for s, k in mine]
    return stats


def _write(splits, todo, kept, runner, check, label, verify, index, plans):
    """Shards go out biggest first (most images, then plan order): output does not
    depend on the order, and the last shards to finish are then the small ones."""
    order = {id(split): i for i, split in enumerate(splits)}
    todo = sorted(todo, key=lambda t: (t[0].ranges[t[1]][0] - t[0].ranges[t[1]][1],
                                       order[id(t[0])], t[1]))
    total = sum(split.ranges[k][1] - split.ranges[k][0] for split, k in todo)
    if kept:
        sys.stderr.write("%s: %d shards already complete from an earlier run, %d to "
                         "write\n" % (label, len(kept), len(todo)))
    progress = Progress(total, label)
    with_index = index is not None and index.enabled
    index_of = {split.path(k): index.path(split, k) if with_index else None
                for split, k in todo}

    def make_job(split, k):
        path = split.path(k)
        if storage.is_remote(path):
            return (path, split.shard_items(k), check, None, verify, None,
                    plans[split.prefix])
        return (path, split.shard_items(k), check, partial_path(path), verify,
                partial_path(index_of[path]) if with_index else None, None)
    jobs = (make_job(split, k) for split, k in todo)
    prefix_of = {split.path(k): split.prefix for split, k in todo}
    checked = {split.prefix: 0 for split in splits}
    pairs = {}
    written = 0
    finisher = Finisher()
    try:
        for job, (records, nread, nwritten, nchecked, shard_pairs) in \
                runner.run(write_shard, jobs):
            finisher.add(job[0], index_of[job[0]])
            written += nwritten
            if nchecked is not None:
                checked[prefix_of[job[0]]] += nchecked
                for synset, labels in shard_pairs.items():
                    pairs.setdefault(synset, set()).update(labels)
            progress.update(records, nread)
    except BaseException:
        finisher.close(check=False)   # shards finished so far are kept
        raise
    finisher.close()
    progress.update(0, 0, force=True)
    return {"shards": len(todo), "images": total, "bytes_written": written,
            "seconds": time.monotonic() - progress.start,
            "checked": checked if verify is not None else None,
            "pairs": pairs if verify is not None else None, "kept": kept}
