"""TFRecord framing: length (8 bytes, little-endian), masked CRC32C of the length, payload,
masked CRC32C of the payload.

Real conversions frame records here with a compiled CRC32C (ilsvrc.crc32c, which holds
every CRC32C implementation: google-crc32c's where installed, else TensorFlow's loaded
without importing TensorFlow), else with TensorFlow's C++ writer (see `open_writer`).
A payload may be framed in pieces (`frame_pieces`, PyRecordWriter.write_parts), so
that the image bytes are never copied into a joined payload.
"""

import os
import struct

from ilsvrc import crc32c, tfimport

masked_crc = crc32c.masked


def frame_parts(payload):
    """One record as (header, payload, footer): the 8-byte length and its masked CRC,
    the payload itself (not copied), the payload's masked CRC."""
    header, footer = frame_pieces((payload,))
    return header, payload, footer


def frame_pieces(pieces):
    """(header, footer) of the record whose payload is b"".join(pieces), without
    joining them: the CRC runs over the pieces in turn (one call each)."""
    crc, n = 0, 0
    fast = crc32c.compiled()
    for piece in pieces:
        crc = fast(piece, crc) if fast is not None else crc32c.extend(crc, piece)
        n += len(piece)
    length = struct.pack("<Q", n)
    return (length + struct.pack("<I", masked_crc(length)),
            struct.pack("<I", crc32c.mask(crc)))


def frame(payload):
    """One framed record."""
    return b"".join(frame_parts(payload))


class CorruptRecord(ValueError):
    pass


def read_records(path):
    """Yield payloads of the records in `path` (a path, or a binary file object read
    from where it stands); CorruptRecord on bad framing or CRC."""
    if hasattr(path, "read"):
        yield from read_stream(path)
        return
    with open(path, "rb") as f:
        yield from read_stream(f)


def read_stream(f, masked=masked_crc):
    """read_records over an open binary file; `masked` computes the masked CRC."""
    index = 0
    while True:
        head = f.read(12)
        if not head:
            return
        if len(head) < 12:
            raise CorruptRecord("record %d: file ends inside a record header" % index)
        length_bytes, length_crc = head[:8], struct.unpack("<I", head[8:])[0]
        if masked(length_bytes) != length_crc:
            raise CorruptRecord("record %d: length CRC mismatch" % index)
        (length,) = struct.unpack("<Q", length_bytes)
        payload = f.read(length)
        tail = f.read(4)
        if len(payload) < length or len(tail) < 4:
            raise CorruptRecord("record %d: file ends inside the record" % index)
        if masked(payload) != struct.unpack("<I", tail)[0]:
            raise CorruptRecord("record %d: data CRC mismatch" % index)
        yield payload
        index += 1


class PyRecordWriter:
    """Same output as tf.io.TFRecordWriter, framed here (CRC from `crc32c`).

    Records are queued, payloads not copied, and written by one writev call per
    BATCH bytes (or IOVECS pieces): flush() writes what is queued, close() too, and
    then flushes to disk unless sync=False (the conversion's finisher does that)."""

    BATCH, IOVECS = 4 << 20, 512

    def __init__(self, path, sync=True):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                           | getattr(os, "O_CLOEXEC", 0), 0o666)
        self._sync = sync
        self._queue, self._queued = [], 0

    def write(self, payload):
        self.write_parts((payload,))

    def write_parts(self, pieces):
        """Queue one record whose payload is b"".join(pieces) (not joined).  Pieces
        that are not bytes are copied first, so that what is written is what the
        CRC was computed over however long it stays queued."""
        pieces = [p if type(p) is bytes else bytes(p) for p in pieces]
        header, footer = frame_pieces(pieces)
        queue = self._queue
        queue.append(header)
        queue.extend(pieces)
        queue.append(footer)
        self._queued += 16 + sum(map(len, pieces))
        if self._queued >= self.BATCH or len(queue) >= self.IOVECS:
            self.flush()

    def flush(self):
        """Write every queued record to the file (not to disk)."""
        queue, total = self._queue, self._queued
        if not queue:
            return
        self._queue, self._queued = [], 0
        done = os.writev(self._fd, queue)
        if done < total:                  # a short write: write the rest
            rest = memoryview(b"".join(queue))[done:]
            while rest:
                rest = rest[os.write(self._fd, rest):]

    def close(self):
        fd = self._fd
        if fd is None:
            return
        try:
            self.flush()
            if self._sync:
                os.fsync(fd)
        finally:
            self._fd = None
            os.close(fd)


def open_writer(path, use_tf=True):
    """A record writer for `path` whose close() leaves flushing to disk to the caller:
    our framing with the compiled CRC32C when ilsvrc.crc32c finds it (no TensorFlow
    import), else TensorFlow's writer, else the pure-Python one."""
    if crc32c.compiled() is not None:
        return PyRecordWriter(path, sync=False)
    if use_tf:
        try:
            tf = tfimport.tensorflow()
        except ImportError:
            tf = None
        if tf is not None:
            return tf.io.TFRecordWriter(path)
    return PyRecordWriter(path, sync=False)
