"""The write stage: worker processes, each owning whole shards.

A shard is written to `.<name>.partial` in its directory, flushed to disk and renamed
to its final name only when complete, so a final name always means a finished shard.
Workers write and close the partial file; the flush to disk (fsync) and the rename
happen on an I/O thread of the main process (`Finisher`), so that waiting for the
disk overlaps the workers' next shards instead of stalling them.
A small state file per split records a fingerprint of the plan; a rerun with the same
plan skips the shards that are already there (resume after a kill), a rerun with a
different plan rewrites them all.  Record bytes depend only on the shard's items, so
output is identical for any number of workers.
"""

import errno
import hashlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ilsvrc import containers, features, image, tfrecord
from ilsvrc.errors import UserError

B, F, I = features.BYTES, features.FLOAT, features.INT64
STATE_VERSION = "ilsvrc-write-1"


def shard_name(prefix, k, num_shards):
    return "%s-%05d-of-%05d" % (prefix, k, num_shards)


class Split:
    """One output split: where its shards go and which items each holds.

    `ranges[k]` is the (start, end) slice of planned positions in shard k and
    `item(j)` builds the item at planned position j:
        (path, offset, size, where, relpath, static_features)
    where static_features are the format's per-image features ({key: (kind, list)}).
    """

    def __init__(self, prefix, out_dir, ranges, item, count):
        self.prefix, self.out_dir, self.ranges, self.item = prefix, out_dir, ranges, item
        self.count = count

    @property
    def num_shards(self):
        return len(self.ranges)

    def path(self, k):
        return os.path.join(self.out_dir, shard_name(self.prefix, k, self.num_shards))

    def shard_items(self, k):
        start, end = self.ranges[k]
        return [self.item(j) for j in range(start, end)]

    def fingerprint(self, settings):
        h = hashlib.sha256(repr((STATE_VERSION, settings, self.prefix, self.ranges)).encode())
        for j in range(self.count):
            _, _, size, where, _, static = self.item(j)
            h.update(repr((where, size, sorted(static.items()))).encode())
        return h.hexdigest()


def common_features(encoded, height, width, filename):
    """The seven features both formats share (spec §2.7, §4.6)."""
    return {
        "image/height": (I, [height]),
        "image/width": (I, [width]),
        "image/colorspace": (B, [b"RGB"]),
        "image/channels": (I, [3]),
        "image/format": (B, [b"JPEG"]),
        "image/filename": (B, [filename.encode("utf-8")]),
        "image/encoded": (B, [encoded]),
    }


def _partial(path):
    d, name = os.path.split(path)
    return os.path.join(d, "." + name + ".partial")


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


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_shard(job):
    """Worker: write one shard.  Returns (records, bytes read, bytes written).

    job = (path, items, check).  The shard is left complete and closed as
    `.NAME.partial`; a `Finisher` in the main process flushes and renames it.
    """
    path, items, check = job
    tmp = _partial(path)
    nread = 0
    try:
        writer = tfrecord.open_writer(tmp)
    except Exception as err:
        raise _disk_error(tmp, err)
    reader = containers.Reader()
    try:
        for src, offset, size, where, relpath, static in items:
            try:
                data = reader.read(src, offset, size)
            except OSError as err:
                raise UserError("cannot read %s: %s" % (where, err.strerror or err))
            nread += len(data)
            encoded, height, width = image.prepare(data, relpath, check, where)
            feats = common_features(encoded, height, width, relpath.rsplit("/", 1)[-1])
            feats.update(static)
            writer.write(features.encode(feats))
        reader.close()
        writer.close()
    except UserError:
        reader.close()
        _discard(tmp)
        raise
    except Exception as err:  # OSError, or TensorFlow's errors for a failed write
        reader.close()
        _discard(tmp)
        if isinstance(err, OSError) or type(err).__module__.startswith("tensorflow"):
            raise _disk_error(path, err)
        raise
    return len(items), nread, os.path.getsize(tmp)


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
        tmp = _partial(path)
        if self.error is not None:
            _discard(tmp)
            return
        try:
            _fsync_file(tmp)
            os.replace(tmp, path)
        except OSError as err:
            _discard(tmp)
            self.error = _disk_error(path, err)

    def add(self, path):
        if self.error is not None:
            raise self.error
        self._io.submit(self._finish, path)

    def close(self, check=True):
        self._io.shutdown(wait=True)
        if check and self.error is not None:
            raise self.error


def _discard(path):
    try:
        os.remove(path)
    except OSError:
        pass


# --------------------------------------------------------------------------- resume

def _state_path(split):
    return os.path.join(split.out_dir, ".%s-of-%05d.plan" % (split.prefix, split.num_shards))


def prepare_dir(split, fingerprint):
    """Make the directory, drop stale partial files; return the shards already done."""
    try:
        os.makedirs(split.out_dir, exist_ok=True)
        for entry in os.scandir(split.out_dir):
            if entry.name.startswith("." + split.prefix + "-") and \
                    entry.name.endswith(".partial"):
                os.remove(entry.path)
        state = _state_path(split)
        try:
            with open(state) as f:
                same = f.read().strip() == fingerprint
        except FileNotFoundError:
            same = False
        if same:
            return {k for k in range(split.num_shards) if os.path.exists(split.path(k))}
        for k in range(split.num_shards):
            if os.path.exists(split.path(k)):
                os.remove(split.path(k))
        with open(state + ".tmp", "w") as f:
            f.write(fingerprint + "\n")
        os.replace(state + ".tmp", state)
    except OSError as err:
        raise UserError("cannot prepare output directory %s: %s. Choose a writable "
                        "directory." % (split.out_dir, err.strerror or err))
    return set()


# --------------------------------------------------------------------------- progress

def _fmt_time(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dm%02ds" % (seconds // 60, seconds % 60)


class Progress:
    """Rate and ETA on stderr: a line every `every` seconds (overwritten on a tty)."""

    def __init__(self, total, label, every=None, stream=None):
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every if every is not None else (1.0 if self.tty else 15.0)
        self.start = self.last = time.monotonic()
        self.done = self.nbytes = 0

    def update(self, images, nbytes, force=False):
        self.done += images
        self.nbytes += nbytes
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else 0
        line = "%s: %d/%d images  %.0f images/s  %.1f MB/s  elapsed %s  ETA %s" % (
            self.label, self.done, self.total, rate, self.nbytes / elapsed / 1e6,
            _fmt_time(elapsed), _fmt_time(left))
        if self.tty:
            self.stream.write("\r" + line + ("\n" if force else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# --------------------------------------------------------------------------- driver

def write_splits(splits, runner, check="header", label="writing"):
    """Write every shard of `splits` that is not already done; return totals."""
    if check not in image.CHECKS:
        raise UserError("unknown image check '%s' (use one of: %s)"
                        % (check, ", ".join(image.CHECKS)))
    todo = []
    for split in splits:
        done = prepare_dir(split, split.fingerprint(check))
        todo.extend((split, k) for k in range(split.num_shards) if k not in done)
    total = sum(split.ranges[k][1] - split.ranges[k][0] for split, k in todo)
    skipped = sum(s.num_shards for s in splits) - len(todo)
    if skipped:
        sys.stderr.write("%s: %d shards already complete from an earlier run, %d to "
                         "write\n" % (label, skipped, len(todo)))
    progress = Progress(total, label)
    jobs = ((split.path(k), split.shard_items(k), check) for split, k in todo)
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
