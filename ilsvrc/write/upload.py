"""A shard written to a bucket: records framed (the one TFRecord framing) into a buffer
while the object's CRC32C is computed, uploaded complete with create-if-absent; which
shards of a plan the bucket already holds."""

import io
import tempfile

from ilsvrc import crc32c
from ilsvrc.errors import UserError
from ilsvrc.records import tfrecord
from ilsvrc.storage import Exists, check_bucket, join, store_for

# Shards up to this size are built in memory; larger ones (far fewer shards than the
# default layouts) spill to a temporary file that is deleted once uploaded.
SPOOL_BYTES = 512 << 20
META_PLAN, META_SIZE, META_CRC = "ilsvrc-plan", "ilsvrc-size", "ilsvrc-crc32c"
META_INPUTS = "ilsvrc-inputs"     # digest of the inputs' state (write.resume.survey)


class ShardWriter:
    """A TFRecord writer for a worker whose shard goes to an object: records are
    framed here (same bytes as TensorFlow's writer) while the object's CRC32C is
    computed, kept in memory (spilling to a temporary file past SPOOL_BYTES), and
    uploaded by close() with create-if-absent.  Nothing reaches the destination
    before the shard is complete; a kill leaves no object."""

    def __init__(self, path, plan, spool_dir=None, inputs=""):
        self.path, self.plan, self.inputs = path, plan, inputs
        self._buf = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=spool_dir)
        self.size, self.crc = 0, 0
        self.existed = False

    def buffer(self):
        """The shard's bytes so far, as a seekable file (shardcheck reads the shard
        back from it before close() uploads it); write() appends at the end wherever
        a reader left the position."""
        return self._buf

    def flush(self):
        self._buf.flush()

    def write(self, payload):
        self._buf.seek(0, io.SEEK_END)
        for part in tfrecord.frame_parts(payload):
            self._buf.write(part)
            self.crc = crc32c.extend(self.crc, part)
            self.size += len(part)

    def close(self):
        """Upload; returns the object's size.  An object already there that holds
        exactly this shard (same plan, size and CRC32C: another task wrote it) is
        accepted; any other is left alone and reported."""
        meta = {META_PLAN: self.plan, META_SIZE: str(self.size),
                META_CRC: crc32c.b64(self.crc)}
        if self.inputs:
            meta[META_INPUTS] = self.inputs
        store = store_for(self.path)
        try:
            store.create(self.path, self._buf, self.size, self.crc, meta)
        except Exists:
            other = store.stat(self.path)
            if other is None or not finished_by(other, self.plan):
                raise not_ours(self.path)
            self.existed = True
        finally:
            self._buf.close()
        return self.size

    def abort(self):
        self._buf.close()


def finished_by(info, plan):
    """Whether object `info` is a complete shard of `plan`: written by ShardWriter
    for this plan, with the size and CRC32C it computed while writing."""
    meta = info.metadata or {}
    return (meta.get(META_PLAN) == plan and meta.get(META_SIZE) == str(info.size)
            and (info.crc32c is None or meta.get(META_CRC) == crc32c.b64(info.crc32c)))


def not_ours(path):
    d = path.rsplit("/", 1)[0]
    return UserError("%s already exists and is not a shard of this conversion (another "
                     "plan or another tool wrote it); objects are never overwritten. "
                     "Delete them (gcloud storage rm '%s/*') or choose another prefix."
                     % (path, d))


def remote_done(split, plan):
    """Shards of `split` already in the bucket (k's), from one listing.  Any object
    with a shard's name that is not that shard of this plan stops the run."""
    return set(remote_shards(split, plan))


def remote_shards(split, plan):
    """{k: storage Info} of the shards of `split` already in the bucket (see
    remote_done)."""
    prefix = join(split.out_dir, split.prefix + "-")
    check_bucket(prefix, "writing to")
    have = {info.path: info for info in store_for(prefix).list(prefix)}
    done = {}
    for k in range(split.num_shards):
        info = have.get(split.path(k))
        if info is None:
            continue
        if not finished_by(info, plan):
            raise not_ours(info.path)
        done[k] = info
    return done


def inputs_of(info):
    """The inputs' digest an object records ('' when none: written before it was)."""
    return (info.metadata or {}).get(META_INPUTS, "")
