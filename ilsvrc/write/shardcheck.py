"""The in-worker check of a shard being written: its bytes are read back from the
partial file (from the page cache: it is not yet flushed to disk or renamed) and every
record is checked against what the worker planned to put at that position, before the
shard is kept.

The guarantee, record by record, from the bytes read back: the framing is right (the
length, both CRC32Cs), the payload parses as an Example with exactly the format's
keys and kinds and a label in range (checks.check_record, the same rules as
./verify.sh), and every feature equals the planned one: file name, label, synset and
the format's other per-image features, height and width, and the encoded image bytes
(byte for byte with the bytes the worker prepared).  Then the record count and the
end of the file.  A mismatch raises UserError; the writer discards the partial shard.
`./verify.sh` remains the full, independent re-read of finished shards from disk.

How (the fast path, ~25 us a record with google-crc32c): the records after the last
one checked are read back one by one with os.pread, straight from the page cache
into each payload's bytes (nothing else is copied); the length's and the payload's
CRC32Cs are recomputed with the compiled CRC32C over exactly the bytes read and
compared with the ones stored; then fastcodec.matches reads the payload directed by
the plan.  That reader accepts exactly one byte string, the canonical encoding
(protobuf's deterministic serialization) of the planned features: it accounts for
every byte and compares every value in place, the image bytes byte for byte.  So a
payload it accepts parses as an Example and holds exactly the planned keys, kinds
and values, and the format's rules (checks.check_record: keys, kinds, label range),
applied to the planned features, are the rules applied to the record read back.  It
is the reference check (features.decode, then each decoded feature compared with the
plan) without building the decoded features, and independent of the encoder.  When
it finds any difference, the records are checked again the reference way, so that
the error names what differs; bytes the reference finds right though they are not
the canonical encoding (another writer's) fail as well.  Where no compiled CRC32C is
found (TensorFlow then frames and reads the records) and for a gs:// shard's buffer,
the records come from checks.local_records / the buffer, both CRCs checked there,
and are compared the same way.  To hold at most BUDGET bytes of planned images, the
records written so far are checked whenever that much is pending, and the rest at
the end.
"""

import os
import struct

from ilsvrc import crc32c
from ilsvrc.records import checks, fastcodec, features, tfrecord
from ilsvrc.errors import UserError

ENCODED = "image/encoded"
BUDGET = 32 << 20
FIX = ("The shard was not kept. Rerun the same command (finished shards are kept); if "
       "this repeats, check the disk and memory of this machine.")


def _canonical(kind, values):
    """Comparable form of a feature's values (floats as the float32 stored)."""
    if kind == features.FLOAT:
        return struct.pack("<%df" % len(values), *values)
    if kind == features.BYTES:
        return tuple(bytes(v) for v in values)
    return tuple(int(v) for v in values)


def _differences(feats, planned):
    """What differs between decoded features and the planned ones (the reference)."""
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
        if got != _canonical(kind, want):
            problems.append("%s is %r, planned %r" % (key, got, _canonical(kind, want)))
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
        self.pending, self.pending_bytes = [], 0    # planned features
        self.checked = 0          # records checked so far
        self.pairs = {}           # {synset: {labels}} of the records read back
        self.offset = 0           # where the next unchecked record starts

    def add(self, features, flush=None):
        self.pending.append(features)
        self.pending_bytes += sum(len(v) for v in features[ENCODED][1])
        if self.pending_bytes >= BUDGET:
            if flush is not None:
                flush()
            self._check(final=False)

    def finish(self):
        """Check the rest; return the number of records in the shard."""
        self._check(final=True)
        return self.checked

    def _check(self, final):
        try:
            fast = self._fast(final)
        except FileNotFoundError:
            raise self._vanished()
        if fast is None:
            self._records_checked(final)
        elif not fast:
            self._records_checked(final, fast_failed=True)
        else:
            self._accept()

    def _accept(self):
        for feats in self.pending:
            checks.note_label(self.pairs, feats)
        self.checked += len(self.pending)
        self.pending, self.pending_bytes = [], 0

    def _vanished(self):
        return UserError("%s: its partial file %s vanished before it was checked. "
                         "Make sure no other program cleans the output directory, "
                         "and rerun the same command."
                         % (self.path, os.path.basename(self.tmp)))

    def _fits(self, buf, feats, start, end):
        """Whether buf[start:end] is exactly the canonical Example of `feats` (the
        plan), which keeps the format's rules."""
        return fastcodec.matches(buf, feats, start, end) and \
            not checks.check_record(feats, self.schema, self.label_range)

    # ------------------------------------------------------------ the fast path

    def _fast(self, final):
        """The pending records read back and compared (module docstring): True when
        every one is right (and, when final, the file ends after the last), False at
        the first difference, None where this path does not apply."""
        if hasattr(self.tmp, "read") or crc32c.compiled() is None:
            return None
        fd = os.open(self.tmp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            pos, size = self.offset, os.fstat(fd).st_size
            head = os.pread(fd, 12, pos)
            for feats in self.pending:
                if len(head) < 12 or crc32c.masked(head[:8]) != \
                        struct.unpack_from("<I", head, 8)[0]:
                    return False
                (length,) = struct.unpack_from("<Q", head)
                if length > size - pos - 16:
                    return False
                payload = os.pread(fd, length, pos + 12)
                tail = os.pread(fd, 16, pos + 12 + length)   # footer, next header
                if len(payload) != length or len(tail) < 4 or crc32c.masked(
                        payload) != struct.unpack_from("<I", tail)[0] or \
                        not self._fits(payload, feats, 0, length):
                    return False
                pos += 16 + length
                head = tail[4:]
        finally:
            os.close(fd)
        if final and pos != size:
            return False
        self.offset = pos
        return True

    # ------------------------------------------------- reading records, reference

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

    def _records_checked(self, final, fast_failed=False):
        """The pending records read back one by one with both CRCs checked, each
        compared with its plan (fastcodec, else the reference naming what differs);
        UserError at the first problem."""
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
                feats = self.pending[n]
                if not self._fits(payload, feats, 0, len(payload)):
                    self._reference(payload, feats, index)
                n += 1
                if n == want and not final:
                    break
        except tfrecord.CorruptRecord as err:
            raise UserError("%s: corrupt when read back after writing, after %d good "
                            "records (%s). %s" % (self.path, self.checked + n, err, FIX))
        except FileNotFoundError:
            raise self._vanished()
        if n != want:
            raise UserError("%s: %d records read back after writing, planned %d. %s"
                            % (self.path, self.checked + n, self.checked + want, FIX))
        if fast_failed:
            raise UserError("%s: read back after writing, it differs from what was "
                            "checked a moment before (is another program writing "
                            "to it?). %s" % (self.path, FIX))
        self._accept()

    def _reference(self, payload, planned, index):
        """The reference check of one record that fastcodec found wrong: UserError
        naming what differs (when nothing does, the bytes are a valid but
        non-canonical encoding of the plan: an error as well)."""
        where = "%s record %d (read back after writing)" % (self.path, index)
        try:
            feats = features.decode(payload, copy=False)
        except features.DecodeError as err:
            raise UserError("%s: not an Example (%s). %s" % (where, err, FIX))
        problems = checks.check_record(feats, self.schema, self.label_range)
        problems.extend(_differences(feats, planned))
        if problems:
            raise UserError("%s: %s. %s" % (where, "; ".join(problems), FIX))
        raise UserError("%s: not the canonical encoding of its features (a valid "
                        "Example, but other bytes than this writer's). %s" % (where, FIX))


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
