"""TFRecord framing: length (8 bytes, little-endian), masked CRC32C of the length, payload,
masked CRC32C of the payload.

The pure-Python CRC here is the independent reference the tests compare TensorFlow's
writer against, and the fallback where TensorFlow is absent.  It runs at a few MB/s,
so real conversions frame records with TensorFlow's C++ writer (see `open_writer`).
"""

import os
import struct

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected


def _table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload):
    """One framed record."""
    length = struct.pack("<Q", len(payload))
    return (length + struct.pack("<I", masked_crc(length)) + payload
            + struct.pack("<I", masked_crc(payload)))


class CorruptRecord(ValueError):
    pass


def read_records(path, check_crc=True):
    """Yield payloads of the records in `path`; CorruptRecord on bad framing or CRC."""
    with open(path, "rb") as f:
        yield from read_stream(f, check_crc)


def read_stream(f, check_crc=True, masked=masked_crc):
    """read_records over an open binary file; `masked` computes the masked CRC (the
    pure-Python reference by default; storage passes google-crc32c's)."""
    index = 0
    while True:
        head = f.read(12)
        if not head:
            return
        if len(head) < 12:
            raise CorruptRecord("record %d: file ends inside a record header" % index)
        length_bytes, length_crc = head[:8], struct.unpack("<I", head[8:])[0]
        if check_crc and masked(length_bytes) != length_crc:
            raise CorruptRecord("record %d: length CRC mismatch" % index)
        (length,) = struct.unpack("<Q", length_bytes)
        payload = f.read(length)
        tail = f.read(4)
        if len(payload) < length or len(tail) < 4:
            raise CorruptRecord("record %d: file ends inside the record" % index)
        if check_crc and masked(payload) != struct.unpack("<I", tail)[0]:
            raise CorruptRecord("record %d: data CRC mismatch" % index)
        yield payload
        index += 1


class PyRecordWriter:
    """Same output as tf.io.TFRecordWriter, in pure Python (slow CRC)."""

    def __init__(self, path):
        self._f = open(path, "wb")

    def write(self, payload):
        self._f.write(frame(payload))

    def close(self):
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


def open_writer(path, use_tf=True):
    """A record writer for `path`: TensorFlow's when available, else PyRecordWriter."""
    if use_tf:
        try:
            from ilsvrc import tfimport
            tf = tfimport.tensorflow()
        except ImportError:
            tf = None
        if tf is not None:
            return tf.io.TFRecordWriter(path)
    return PyRecordWriter(path)
