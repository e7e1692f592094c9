"""The Example codec of the write path: `encode_parts` builds only the small headers in
Python and leaves large values (the image bytes) as pieces of their own, never
copied; `matches` reads a payload back, directed by the planned features, and tells
whether it is exactly their canonical encoding.  features.py stays the reference:
`b"".join(encode_parts(f)) == features.encode(f)` for every f (tests/test_fastpath.py),
and `matches(features.encode(f), f)` holds exactly when the reference decoder reads
back f from those bytes in that canonical form.

The encoding is protobuf's deterministic serialization of a tf.train.Example:

    Example        1: Features (length-delimited)
    Features       1: map entry, once per key, sorted by key
    map entry      1: key (UTF-8), 2: Feature
    Feature        1: BytesList | 2: FloatList | 3: Int64List (one of them)
    BytesList      1: value, once per value
    FloatList      1: packed little-endian float32s (absent when empty)
    Int64List      1: packed varints, negatives as 10-byte two's complement (absent
                   when empty)
"""

import struct

from ilsvrc.records.features import BYTES, FLOAT, INT64

# Values at least this long are pieces of their own (not copied into a header).
BIG = 1024

_ONE = [bytes([n]) for n in range(128)]
_KIND_TAG = {BYTES: b"\x0a", FLOAT: b"\x12", INT64: b"\x1a"}
_KIND_BYTE = {BYTES: 0x0A, FLOAT: 0x12, INT64: 0x1A}


def varint(n):
    """Protobuf varint of a non-negative int below 2**64."""
    if n < 128:
        return _ONE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_keys = {}      # key -> its map-entry key field (tag, length, UTF-8 bytes)


def _key_field(key):
    field = _keys.get(key)
    if field is None:
        raw = key.encode("utf-8")
        field = _keys[key] = b"\x0a" + varint(len(raw)) + raw
    return field


def _int64s(values):
    out = []
    for v in values:
        v = int(v)
        out.append(_ONE[v] if 0 <= v < 128 else varint(v + (1 << 64) if v < 0 else v))
    return b"".join(out)


def _list_body(kind, values):
    """(pieces, size) of a BytesList/FloatList/Int64List message's fields."""
    if kind == BYTES:
        pieces, size = [], 0
        for v in values:
            n = len(v)
            head = b"\x0a" + (_ONE[n] if n < 128 else varint(n))
            pieces.append(head)
            pieces.append(v)
            size += len(head) + n
        return pieces, size
    if not values:
        return [], 0
    if kind == FLOAT:
        packed = struct.pack("<%df" % len(values), *values)
    elif kind == INT64:
        packed = _int64s(values)
    else:
        raise ValueError("unknown feature kind %r" % (kind,))
    body = b"\x0a" + varint(len(packed)) + packed
    return [body], len(body)


# Map entries of small bytes and int64 values recur from record to record (label,
# synset, sizes, format): each is built once.  Not floats: 0.0 == -0.0 as a key, not
# as bytes.  Cleared when full (file names never recur).
_entries = {}
_MEMO = 4096


def _memo_key(key, kind, values):
    """(key, kind, value) as a dict key when the entry may be remembered (one small
    bytes or int value), else None."""
    if len(values) == 1:
        v = values[0]
        t = type(v)
        if t is int and kind == INT64 or t is bytes and kind == BYTES and len(v) < BIG:
            return key, kind, v
    return None


_orders = {}    # the keys of a feature dict (as given) -> the same keys sorted


def _sorted(features):
    keys = tuple(features)
    order = _orders.get(keys)
    if order is None:
        if len(_orders) >= 64:
            _orders.clear()
        order = _orders[keys] = sorted(keys)
    return order


def _entry(key, kind, values):
    """The pieces of one map entry (large values as pieces of their own)."""
    pieces, size = _list_body(kind, values)
    feature_head = _KIND_TAG[kind] + varint(size)
    feature_len = len(feature_head) + size
    key_field = _key_field(key)
    value_head = b"\x12" + varint(feature_len)
    entry_len = len(key_field) + len(value_head) + feature_len
    return [b"\x0a" + varint(entry_len) + key_field + value_head + feature_head] + pieces


def encode_parts(features):
    """features.encode(features) as a list of pieces: the headers and small values
    joined, each large value (len >= BIG) a piece of its own, the very object given."""
    out, small, total = [], [], 0
    for key in _sorted(features):
        kind, values = features[key]
        memo = _memo_key(key, kind, values)
        if memo is not None:
            entry = _entries.get(memo)
            if entry is not None:
                small.append(entry)
                total += len(entry)
                continue
        pieces = _entry(key, kind, values)
        if memo is not None:
            if len(_entries) >= _MEMO:
                _entries.clear()
            _entries[memo] = b"".join(pieces)
        for piece in pieces:
            total += len(piece)
            if len(piece) >= BIG:
                out.append(b"".join(small))
                out.append(piece)
                small = []
            else:
                small.append(piece)
    out.append(b"".join(small))
    out[0] = b"\x0a" + varint(total) + out[0]
    return out


# --------------------------------------------------------------------------- reading

def _varint_at(buf, pos):
    """(value, position after) of the varint at `pos`; IndexError past the end,
    ValueError when longer than 10 bytes or not in its shortest form."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0:
                raise ValueError("varint not in its shortest form")
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def matches(buf, features, start=0, end=None):
    """Whether buf[start:end] (buf: bytes or bytearray; end: its length by default) is
    exactly the canonical Example of `features` ({key: (kind, values)}): each entry
    in key order, each value equal to the planned one (image bytes compared byte for
    byte, floats as the float32 stored), every byte accounted for.  Any other bytes
    -- a wrong value, a missing or extra key, another kind, a truncation, trailing
    bytes, or a valid but non-canonical encoding of the same features -- give
    False.  Nothing is copied: values are compared in place."""
    end = len(buf) if end is None else end
    try:
        return 0 <= start < end <= len(buf) and _walk(buf, start, end, features)
    except (IndexError, ValueError, struct.error):
        return False


# Entries the walk found to be exactly the canonical encoding of their (key, kind,
# values), by the same keys as _entries: that encoding is unique, so bytes equal to a
# remembered one are it.  Filled only by the walk, never by the encoder.
_verified = {}


def _walk(buf, pos, end, features):
    if buf[pos] != 0x0A:
        return False
    n, pos = _varint_at(buf, pos + 1)
    if pos + n != end:
        return False
    for key in _sorted(features):
        kind, values = features[key]
        memo = _memo_key(key, kind, values)
        if memo is not None:
            known = _verified.get(memo)
            if known is not None:
                if pos + len(known) > end or not buf.startswith(known, pos):
                    return False
                pos += len(known)
                continue
        start = pos
        pos = _walk_entry(buf, pos, end, key, kind, values)
        if pos < 0:
            return False
        if memo is not None:
            if len(_verified) >= _MEMO:
                _verified.clear()
            _verified[memo] = bytes(buf[start:pos])
    return pos == end


def _walk_entry(buf, pos, end, key, kind, values):
    """The end of the map entry at `pos` when it is exactly the canonical one of
    (key, kind, values), else -1."""
    if buf[pos] != 0x0A:
        return -1
    n, pos = _varint_at(buf, pos + 1)
    entry_end = pos + n
    field = _key_field(key)
    stop = pos + len(field)
    if entry_end > end or not buf.startswith(field, pos) or buf[stop] != 0x12:
        return -1
    n, pos = _varint_at(buf, stop + 1)
    if pos + n != entry_end or buf[pos] != _KIND_BYTE[kind]:
        return -1
    n, pos = _varint_at(buf, pos + 1)
    if pos + n != entry_end or not _values_match(buf, pos, entry_end, kind, values):
        return -1
    return entry_end


def _values_match(buf, pos, end, kind, values):
    """Whether buf[pos:end], a list message of `kind`, holds exactly `values`."""
    if kind == BYTES:
        for v in values:
            if pos >= end or buf[pos] != 0x0A:
                return False
            n, pos = _varint_at(buf, pos + 1)
            if n != len(v) or pos + n > end or not buf.startswith(v, pos):
                return False
            pos += n
        return pos == end
    if not values:
        return pos == end
    if buf[pos] != 0x0A:
        return False
    n, pos = _varint_at(buf, pos + 1)
    if pos + n != end:
        return False
    if kind == FLOAT:
        return n == 4 * len(values) and \
            buf.startswith(struct.pack("<%df" % len(values), *values), pos)
    for v in values:
        if pos >= end:
            return False
        got, pos = _varint_at(buf, pos)
        if got >= 1 << 63:
            got -= 1 << 64
        if got != int(v):
            return False
    return pos == end
