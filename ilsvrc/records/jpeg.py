"""Reading what we need from a JPEG without decoding it.

`header_info` walks the marker segments up to the first scan and returns the frame
size, as TensorFlow's decoder reports it (height/width from the SOF, no EXIF rotation).
It also checks the structure: start-of-image marker, well-formed segments, one frame
header of a type and precision TensorFlow decodes with non-zero dimensions, a scan,
and an end-of-image marker after it.  The entropy-coded data is not decoded.  A truncated or non-JPEG file fails with BadImage.  Bytes after the
end-of-image marker are ignored, as libjpeg ignores them.
"""

import struct


class BadImage(ValueError):
    pass


# Exactly the frame types TensorFlow 2.21's libjpeg-turbo decodes (measured): SOF0
# baseline, SOF1 extended sequential, SOF2 progressive with Huffman coding, and SOF9 /
# SOF10, the same with arithmetic coding; 8-bit samples only.  Lossless (SOF3, SOF11)
# and hierarchical (SOF5-7, SOF13-15) frames and 12- or 16-bit precision are refused
# by TF ("Unsupported JPEG process" / "data precision"), and so here.
SUPPORTED_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive",
                 0xC9: "arithmetic extended", 0xCA: "arithmetic progressive"}
PRECISION = 8
_ALL_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = set(range(0xD0, 0xD8)) | {0x01}
SOI, EOI, SOS = 0xD8, 0xD9, 0xDA


def header_info(data):
    """Return (height, width, components) of JPEG bytes, or raise BadImage."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != SOI:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            raise BadImage("not a JPEG: the file is a PNG")
        raise BadImage("not a JPEG: no start-of-image marker")
    pos = 2
    frame = None
    while True:
        if pos >= n:
            raise BadImage("truncated: ends before the image data")
        if data[pos] != 0xFF:
            raise BadImage("corrupt: expected a marker at byte %d" % pos)
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise BadImage("truncated: ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == EOI:
            raise BadImage("corrupt: end-of-image marker before any image data")
        if marker == SOI:
            raise BadImage("corrupt: second start-of-image marker at byte %d" % (pos - 2))
        if pos + 2 > n:
            raise BadImage("truncated: ends inside a segment header")
        (seglen,) = struct.unpack_from(">H", data, pos)
        if seglen < 2 or pos + seglen > n:
            raise BadImage("truncated: segment 0x%02X at byte %d runs past the end"
                           % (marker, pos - 2))
        if marker in _ALL_SOF:
            if frame is not None:
                raise BadImage("corrupt: more than one frame header")
            if marker not in SUPPORTED_SOF:
                raise BadImage("unsupported JPEG frame type 0x%02X (lossless or "
                               "hierarchical; TensorFlow cannot decode it)" % marker)
            if seglen < 8:
                raise BadImage("corrupt: frame header too short")
            precision, height, width, comps = struct.unpack_from(">BHHB", data, pos + 2)
            if precision != PRECISION:
                raise BadImage("unsupported JPEG sample precision %d bits (TensorFlow "
                               "decodes 8-bit JPEGs only)" % precision)
            if height == 0 or width == 0:
                raise BadImage("corrupt: frame header says %dx%d pixels" % (width, height))
            if comps not in (1, 3, 4) or seglen != 8 + 3 * comps:
                raise BadImage("corrupt: frame header with %d components" % comps)
            frame = (height, width, comps)
        elif marker == SOS:
            if frame is None:
                raise BadImage("corrupt: image data before a frame header")
            scan_start = pos + seglen
            break
        pos += seglen
    end = data.rfind(b"\xff\xd9", scan_start)
    if end < 0:
        raise BadImage("truncated: no end-of-image marker after the image data")
    return frame
