"""tf.train.Example wire format, written and read without TensorFlow.

Encoding is deterministic: map entries are emitted sorted by key, which is what
protobuf's deterministic serialization does (decision A1).  A test checks
the bytes against `tf.train.Example(...).SerializeToString(deterministic=True)`.

A feature value is a pair (kind, list) with kind one of "bytes", "float", "int64".
"""

import struct

BYTES, FLOAT, INT64 = "bytes", "float", "int64"
# Feature oneof field numbers: bytes_list=1, float_list=2, int64_list=3.
_KIND_FIELD = {BYTES: 1, FLOAT: 2, INT64: 3}
_FIELD_KIND = {v: k for k, v in _KIND_FIELD.items()}


def _varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(field, payload):
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def _value_list(kind, values):
    if kind == BYTES:
        return b"".join(_len_field(1, v) for v in values)
    if not values:
        return b""
    if kind == FLOAT:
        return _len_field(1, struct.pack("<%df" % len(values), *values))
    return _len_field(1, b"".join(_varint(int(v)) for v in values))


# Tags of the length-delimited fields on the path Example.features (1) ->
# Features.feature map entry (1) -> key (1) / value (2) -> Feature.<kind>_list.
_TAG1, _TAG2 = _varint((1 << 3) | 2), _varint((2 << 3) | 2)
_KIND_TAG = {kind: _varint((field << 3) | 2) for kind, field in _KIND_FIELD.items()}


def encode(features):
    """Serialize {key: (kind, values)} as an Example, entries sorted by key.

    Large values (the image bytes) are copied once, into the final join: every
    enclosing header is built from lengths alone.
    """
    pieces = []
    total = 0
    for key in sorted(features):
        kind, values = features[key]
        if kind == BYTES:
            # Feature.bytes_list (1) -> BytesList.value (1), one field per value.
            items = []
            size = 0
            for v in values:
                head = _TAG1 + _varint(len(v))
                items.append(head)
                items.append(v)
                size += len(head) + len(v)
        else:
            body = _value_list(kind, values)
            items, size = [body], len(body)
        feature_head = _KIND_TAG[kind] + _varint(size)
        feature_len = len(feature_head) + size
        key_field = _len_field(1, key.encode("utf-8"))
        value_head = _TAG2 + _varint(feature_len)
        entry_len = len(key_field) + len(value_head) + feature_len
        head = _TAG1 + _varint(entry_len) + key_field + value_head + feature_head
        pieces.append(head)
        pieces.extend(items)
        total += len(head) + size
    return b"".join([_TAG1, _varint(total)] + pieces)


# --------------------------------------------------------------------------- reading

class DecodeError(ValueError):
    pass


def _read_varint(buf, pos):
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def _fields(buf):
    """Yield (field_number, wire_type, value) of a message; value is bytes or int."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 2:
            n, pos = _read_varint(buf, pos)
            if pos + n > end:
                raise DecodeError("field %d runs past the end" % field)
            yield field, wire, buf[pos:pos + n]
            pos += n
        elif wire == 0:
            v, pos = _read_varint(buf, pos)
            yield field, wire, v
        elif wire == 5:
            yield field, wire, buf[pos:pos + 4]
            pos += 4
        elif wire == 1:
            yield field, wire, buf[pos:pos + 8]
            pos += 8
        else:
            raise DecodeError("unsupported wire type %d" % wire)


def _decode_list(kind, buf, copy=True):
    values = []
    for field, wire, v in _fields(buf):
        if field != 1:
            continue
        if kind == BYTES:
            values.append(bytes(v) if copy else v)
        elif kind == FLOAT:
            if wire == 2:
                values.extend(struct.unpack("<%df" % (len(v) // 4), v))
            else:
                values.append(struct.unpack("<f", v)[0])
        else:
            if wire == 2:
                pos = 0
                while pos < len(v):
                    n, pos = _read_varint(v, pos)
                    values.append(n - (1 << 64) if n >= 1 << 63 else n)
            else:
                values.append(v - (1 << 64) if v >= 1 << 63 else v)
    return values


def decode(data, copy=True):
    """Parse Example bytes into {key: (kind, values)}; raises DecodeError.

    With copy=False, bytes values are memoryviews into `data` (no copy of the image
    bytes, for checks that only look at the other features)."""
    data = memoryview(data)
    features = {}
    for field, _, features_msg in _fields(data):
        if field != 1:
            continue
        for f2, _, entry in _fields(features_msg):
            if f2 != 1:
                continue
            key, feature = None, b""
            for f3, _, v in _fields(entry):
                if f3 == 1:
                    key = bytes(v).decode("utf-8")
                elif f3 == 2:
                    feature = v
            if key is None:
                raise DecodeError("map entry without a key")
            kind, values = None, []
            for f4, _, v in _fields(feature):
                if f4 in _FIELD_KIND:
                    kind = _FIELD_KIND[f4]
                    values = _decode_list(kind, v, copy)
            features[key] = (kind, values)
    return features


# --------------------------------------------------------------------------- shared

def common_features(encoded, height, width, filename):
    """The seven features both formats share: size, colorspace RGB, 3 channels,
    format JPEG, the file name and the image bytes."""
    return {
        "image/height": (INT64, [height]),
        "image/width": (INT64, [width]),
        "image/colorspace": (BYTES, [b"RGB"]),
        "image/channels": (INT64, [3]),
        "image/format": (BYTES, [b"JPEG"]),
        "image/filename": (BYTES, [filename.encode("utf-8")]),
        "image/encoded": (BYTES, [encoded]),
    }
