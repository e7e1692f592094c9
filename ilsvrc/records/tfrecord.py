"""TFRecord framing: length (8 bytes, little-endian), masked CRC32C of the length, payload,
masked CRC32C of the payload.

Real conversions frame records here with TensorFlow's compiled CRC32C loaded without
importing TensorFlow (ilsvrc.crc32c, which holds every CRC32C implementation), else
with TensorFlow's C++ writer (see `open_writer`).
"""

import os
import struct

from ilsvrc import crc32c, tfimport

masked_crc = crc32c.masked


def frame_parts(payload):
    """One record as (header, payload, footer): the 8-byte length and its masked CRC,
    the payload itself (not copied), the payload's masked CRC."""
    length = struct.pack("<Q", len(payload))
    return (length + struct.pack("<I", masked_crc(length)), payload,
            struct.pack("<I", masked_crc(payload)))


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

    Each record goes to the file in one writev call, payload not copied.  close()
    flushes to disk unless sync=False (the conversion's finisher does that)."""

    def __init__(self, path, sync=True):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                           | getattr(os, "O_CLOEXEC", 0), 0o666)
        self._sync = sync

    def write(self, payload):
        parts = frame_parts(payload)
        done = os.writev(self._fd, parts)
        if done < 16 + len(payload):      # a short write: write the rest
            rest = memoryview(b"".join(parts))[done:]
            while rest:
                rest = rest[os.write(self._fd, rest):]

    def flush(self):
        """Nothing to do: each record is already in the file (unbuffered)."""

    def close(self):
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._sync:
                os.fsync(fd)
        finally:
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
