"""The in-worker check of a shard being written: its bytes are read back from the
partial file (from the page cache: it is not yet flushed to disk or renamed) and every
record is checked against what the worker planned to put at that position, before the
shard is kept.

What is checked, record by record, from the file's bytes: the framing and both CRC32Cs,
that the payload parses as an Example with exactly the format's keys and kinds and a
label in range (checks.check_record, the same rules as ./verify.sh), and that every
feature equals the planned one: file name, label, synset and the format's other
per-image features, height and width, and the encoded image bytes (compared byte for
byte with the bytes the worker prepared).  Then the record count and the end of the
file.  To hold at most BUDGET bytes of planned images, the records written so far are
checked whenever that much is pending, and the rest at the end.  A mismatch raises
UserError; the writer discards the partial shard.  `./verify.sh` remains the full,
independent re-read of finished shards from disk.
"""

import os
import struct

from ilsvrc import crc32c
from ilsvrc.records import checks, features, tfrecord
from ilsvrc.errors import UserError

ENCODED = "image/encoded"


def _canonical(kind, values):
    """Comparable form of a feature's values (floats as the float32 stored)."""
    if kind == features.FLOAT:
        return struct.pack("<%df" % len(values), *values)
    if kind == features.BYTES:
        return tuple(bytes(v) for v in values)
    return tuple(int(v) for v in values)


BUDGET = 32 << 20
FIX = ("The shard was not kept. Rerun the same command (finished shards are kept); if "
       "this repeats, check the disk and memory of this machine.")


def _plan(features):
    planned = {}
    for key, (kind, values) in features.items():
        if key == ENCODED:
            planned[key] = (kind, tuple(values))      # the image bytes themselves
        else:
            planned[key] = (kind, _canonical(kind, values))
    return planned


def _differences(feats, planned):
    problems = []
    for key, (kind, want) in planned.items():
        got_kind, values = feats.get(key, (None, []))
        if got_kind != kind:
            continue              # check_record reports missing keys and wrong kinds
        if key == ENCODED:
            if len(values) != len(want) or any(
                    len(v) != len(w) or bytes(v) != w for v, w in zip(values, want)):
                problems.append("%s differs from the planned image bytes" % key)
            continue
        got = _canonical(kind, values)
        if got != want:
            problems.append("%s is %r, planned %r" % (key, got, want))
    return problems


class ShardCheck:
    """The planned records of the shard being written to `tmp` (final name `path`),
    checked against what the file holds: `add` each record's features after writing
    it (with `flush`, the writer's flush, to call before reading the file back),
    `finish` after closing the writer."""

    def __init__(self, tmp, path, schema, label_range):
        # tmp: the partial file's path, or (a gs:// shard) the writer's seekable
        # buffer, read back before the object is uploaded
        self.tmp, self.path, self.schema, self.label_range = tmp, path, schema, label_range
        self.pending, self.pending_bytes = [], 0
        self.checked = 0          # records checked so far
        self.pairs = {}           # {synset: {labels}} of the records read back
        self.offset = 0           # where the next unchecked record starts

    def add(self, features, flush=None):
        self.pending.append(_plan(features))
        self.pending_bytes += sum(len(v) for v in features[ENCODED][1])
        if self.pending_bytes >= BUDGET:
            if flush is not None:
                flush()
            self._check(final=False)

    def finish(self):
        """Check the rest; return the number of records in the shard."""
        self._check(final=True)
        return self.checked

    def _records(self):
        """(payload) of the records after the checked ones, both CRCs checked: framed
        here with the compiled CRC32C when it is available, else by TensorFlow's
        reader (from the start, skipping the records already checked)."""
        if hasattr(self.tmp, "read"):   # a gs:// shard's buffer, before upload
            return _read_buffer(self.tmp, self, self.offset)
        if crc32c.compiled() is not None:
            return _read_from(self.tmp, self, self.offset)
        it = checks.local_records(self.tmp)
        for _ in range(self.checked):
            next(it)
        return it

    def _check(self, final):
        want = len(self.pending)
        n = 0
        try:
            for payload in self._records():
                index = self.checked + n
                if n >= want:
                    if not final:
                        break
                    raise UserError("%s record %d (read back after writing): more "
                                      "records than the %d planned. %s"
                                      % (self.path, index, self.checked + want, FIX))
                where = "%s record %d (read back after writing)" % (self.path, index)
                try:
                    feats = features.decode(payload, copy=False)
                except features.DecodeError as err:
                    raise UserError("%s: not an Example (%s). %s" % (where, err, FIX))
                problems = checks.check_record(feats, self.schema, self.label_range)
                problems.extend(_differences(feats, self.pending[n]))
                if problems:
                    raise UserError("%s: %s. %s" % (where, "; ".join(problems), FIX))
                checks.note_label(self.pairs, feats)
                n += 1
                if n == want and not final:
                    break
        except tfrecord.CorruptRecord as err:
            raise UserError("%s: corrupt when read back after writing, after %d good "
                              "records (%s). %s" % (self.path, self.checked + n, err, FIX))
        except FileNotFoundError:
            raise UserError("%s: its partial file %s vanished before it was checked. "
                              "Make sure no other program cleans the output directory, "
                              "and rerun the same command."
                              % (self.path, os.path.basename(self.tmp)))
        if n != want:
            raise UserError("%s: %d records read back after writing, planned %d. %s"
                              % (self.path, self.checked + n, self.checked + want, FIX))
        self.checked += n
        self.pending, self.pending_bytes = [], 0


def _read_from(path, state, offset):
    """tfrecord.read_records from byte `offset`; keeps state.offset at the end of the
    last record yielded."""
    with open(path, "rb") as f:
        f.seek(offset)
        for payload in tfrecord.read_records(f):
            state.offset += 16 + len(payload)
            yield payload


def _read_buffer(f, state, offset):
    """_read_from over an open seekable buffer (upload.ShardWriter.buffer()); the
    writer appends at the end whatever position this leaves."""
    f.seek(offset)
    for payload in tfrecord.read_records(f):
        state.offset += 16 + len(payload)
        yield payload
