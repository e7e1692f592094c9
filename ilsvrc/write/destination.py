"""Where shards go -- a local directory or a gs:// prefix -- behind one set of calls:
prepare a split for a plan and say which of its shards that plan already finished,
name each shard's target (what a worker opens, reads back, keeps or discards), finish
a shard in the main process, and whether the output takes a run lock.

A local shard is written to `.<name>.<host>.<pid>.<token>.partial` (fsutil, lock),
read back from there, left complete and closed by its worker, and made final by the
main process's `Finisher` (fsync, rename; its DALI index file first) once it has
checked that the directory still holds this run's plan (lock.check_plan).  A gs://
shard has no partial file: its worker frames it into upload.ShardWriter's buffer,
reads it back from that buffer and uploads it create-if-absent; the bucket records
what is done (upload.remote_done), so a gs:// output takes no run lock.
"""

import functools
import os
from typing import NamedTuple, Optional

from ilsvrc import storage
from ilsvrc.fsutil import discard, partial_path
from ilsvrc.readerfiles import dali
from ilsvrc.records import tfrecord
from ilsvrc.write import lock, resume, upload


def at(path):
    """The destination of output path `path` (the one place the write stage asks
    whether a path is local or in a bucket)."""
    return Bucket() if storage.is_remote(path) else LocalDir()


class LocalShard(NamedTuple):
    """A local shard's target: its final path, its partial file and (with DALI index
    files) the partial file of its index."""
    path: str
    tmp: str
    index_tmp: Optional[str] = None

    @property
    def scratch(self):
        """What the worker writes first (named in errors about opening it)."""
        return self.tmp

    def open(self):
        return tfrecord.open_writer(self.tmp)

    def readback(self, writer):
        """What the in-worker check reads the shard back from."""
        return self.tmp

    def seal(self, writer):
        """Make every record readable for the final check."""
        writer.close()

    def keep(self, writer, payload_sizes):
        """After the check: the shard's index (when asked for), writeback started;
        returns the bytes written."""
        if self.index_tmp:
            dali.write_partial(self.index_tmp, payload_sizes)
        _start_writeback(self.tmp)
        return os.path.getsize(self.tmp)

    def discard(self, writer):
        discard(self.tmp)
        if self.index_tmp:
            discard(self.index_tmp)


class BucketShard(NamedTuple):
    """A gs:// shard's target: its object path, and the plan fingerprint and the
    inputs' digest recorded with the object."""
    path: str
    plan: str
    inputs: str = ""

    @property
    def scratch(self):
        return self.path

    def open(self):
        return upload.ShardWriter(self.path, self.plan, inputs=self.inputs)

    def readback(self, writer):
        return writer.buffer()

    def seal(self, writer):
        """The buffer is read back as it is: nothing to close before the check."""

    def keep(self, writer, payload_sizes):
        """Upload (create-if-absent); returns the object's size."""
        return writer.close()

    def discard(self, writer):
        """Nothing was uploaded: drop the buffer."""
        if writer is not None:
            writer.abort()


class LocalDir:
    """Shards in a local directory: partial file, fsync and rename, resume state
    beside the shards, a run lock."""
    in_bucket = False
    takes_lock = True
    where = "disk"
    _check = None

    def prepare(self, split, digest, alone=True):
        """Ready `split`'s directory for plan `digest`; the k's already finished.
        Every later rename into it first checks that its plan record still names
        `digest` (the one state file of resume)."""
        done = resume.prepare_dir(split, digest, alone)
        self._check = functools.partial(lock.check_plan, split.out_dir,
                                        resume._state_path(split), digest)
        return done

    def stale(self, split, done, inputs):
        """(the finished k's that were written from other inputs than `inputs` (a
        resume.Inputs), what changed); with none finished, `inputs` is recorded as
        what this run's shards come from."""
        if not done:
            resume.record_inputs(split, inputs)
            return set(), None
        changed = resume.what_changed(split, inputs)
        return (set(done), changed) if changed else (set(), None)

    def record(self, split, inputs):
        """The finished shards were checked against `inputs`: remember them."""
        resume.record_inputs(split, inputs)

    def target(self, path, digest, index_path=None, inputs=None):
        return LocalShard(path, partial_path(path),
                          partial_path(index_path) if index_path else None)

    def finish(self, finisher, path, index_path=None):
        """Queue the shard (written and checked by its worker) to be made final."""
        finisher.add(path, index_path, self._check)


class Bucket:
    """Shards as gs:// objects, each uploaded complete by its worker."""
    in_bucket = True
    takes_lock = False
    where = "the bucket"

    def __init__(self):
        self._found = {}

    def prepare(self, split, digest, alone=True):
        self._found[split.prefix] = upload.remote_shards(split, digest)
        return set(self._found[split.prefix])

    def stale(self, split, done, inputs):
        """The finished shards whose objects record other inputs than `inputs`."""
        found = self._found.get(split.prefix, {})
        old = {k for k in done if upload.inputs_of(found[k]) != inputs.digest}
        return old, ("an input changed (size, generation or CRC32C)" if old else None)

    def record(self, split, inputs):
        """Each object records its own inputs: nothing to add."""

    def target(self, path, digest, index_path=None, inputs=None):
        return BucketShard(path, digest, inputs.digest if inputs else "")

    def finish(self, finisher, path, index_path=None):
        """Nothing left to do: the worker uploaded the shard complete."""


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
