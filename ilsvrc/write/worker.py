"""The shard-writing worker: one shard's images read (with read-ahead), prepared,
encoded and written to its target (write.destination), checked by reading it back
(shardcheck), and disk errors told as one line with the fix.

Record bytes depend only on the shard's items, so output is identical for any number
of workers.
"""

import errno
from typing import NamedTuple, Optional

from ilsvrc import crc32c
from ilsvrc.errors import UserError
from ilsvrc.records import planned
from ilsvrc.sources import containers, reading
from ilsvrc.write import shardcheck



class WriteJob(NamedTuple):
    """One shard to write (pickled to a worker)."""
    path: str                  # the shard's final name
    items: list                # its planned images, in order
    check: str                 # the image check (image.CHECKS)
    target: object             # destination.LocalShard or destination.BucketShard
    verify: Optional[tuple]    # None, or (schema, label_range): check it read back


class WriteResult(NamedTuple):
    """What a worker did with one shard; `checked` (records read back) and `pairs`
    ({synset: {labels}} of them) are None when it was not checked."""
    records: int
    bytes_read: int
    bytes_written: int
    checked: Optional[int]
    pairs: Optional[dict]


def warm_up():
    """Worker: load what writing needs before the first shard (this module, and so
    the write stage, is imported to run it; the compiled CRC32C, no TensorFlow)."""
    crc32c.compiled()


def disk_error(path, err):
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
    """Worker: write one shard (a WriteJob) to its target and return a WriteResult.

    With job.verify, every record is read back from the target (the partial file,
    or a gs:// shard's upload buffer) and checked against the items
    (shardcheck.ShardCheck) before the shard is kept: a local shard is left complete
    and closed as partial files (shard and DALI index) for the main process's
    `Finisher`; a gs:// shard is uploaded by this worker with create-if-absent (the
    storage layer checks the CRC32C the bucket reports).  On any failure the target
    is discarded.
    """
    target = job.target
    try:
        writer = target.open()
    except Exception as err:
        raise disk_error(target.scratch, err)
    checker = None
    if job.verify is not None:
        checker = shardcheck.ShardCheck(target.readback(writer), job.path, *job.verify)
    reader = containers.Reader()
    try:
        nread, sizes = _write_records(job, writer, checker, reader)
        reader.close()
        target.seal(writer)
        checked = checker.finish() if checker is not None else None
        nwritten = target.keep(writer, sizes)
    except UserError:
        reader.close()
        target.discard(writer)
        raise
    except Exception as err:  # OSError, or TensorFlow's errors for a failed write
        reader.close()
        target.discard(writer)
        if isinstance(err, OSError) or type(err).__module__.startswith("tensorflow"):
            raise disk_error(job.path, err)
        raise
    return WriteResult(len(job.items), nread, nwritten, checked,
                       checker.pairs if checker is not None else None)


def _write_records(job, writer, checker, reader):
    """Read, prepare and write every image of the shard (each record handed to the
    checker); returns (bytes read, [payload size of each record]).  A writer that
    frames pieces (tfrecord.PyRecordWriter.write_parts) gets the payload unjoined
    (the image bytes never copied into it); others get it joined."""
    write_parts = getattr(writer, "write_parts", None)
    nread, sizes = 0, []
    for item, data in zip(job.items, reading.read_items(job.items, reader)):
        nread += len(data)
        feats, parts = planned.record_parts(item, data, job.check)
        if write_parts is not None:
            write_parts(parts)
            sizes.append(sum(map(len, parts)))
        else:
            payload = b"".join(parts)
            writer.write(payload)
            sizes.append(len(payload))
        if checker is not None:
            checker.add(feats, writer.flush)
    return nread, sizes
