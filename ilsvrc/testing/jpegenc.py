"""A tiny baseline JPEG (and PNG) writer for generated test data, no TensorFlow needed.

It does not transform pixels: the caller gives DCT coefficients directly (a DC level
per 8x8 block and a few AC terms), which is a perfectly valid JPEG that any decoder
reads.  That is enough to make RGB (YCbCr), grayscale and real 4-component CMYK files
(with an Adobe marker) of any size, deterministically.

Huffman tables are our own flat codes: 12 DC categories of 4 bits, 162 AC symbols of
8 bits, written into the file's DHT segment like any other table.
"""

import random
import struct
import zlib

_DC_SYMBOLS = list(range(12))
_AC_SYMBOLS = [0x00, 0xF0] + [(run << 4) | size for run in range(16) for size in range(1, 11)]
_DC_CODE = {s: (i, 4) for i, s in enumerate(_DC_SYMBOLS)}
_AC_CODE = {s: (i, 8) for i, s in enumerate(_AC_SYMBOLS)}
_QUANT = 16


def _segment(marker, payload):
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _dht(table_class, symbols, length):
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    return bytes([table_class << 4]) + bytes(counts) + bytes(symbols)


class _Bits:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value, length):
        self.acc = (self.acc << length) | (value & ((1 << length) - 1))
        self.n += length
        while self.n >= 8:
            self.n -= 8
            byte = (self.acc >> self.n) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)
        self.acc &= (1 << self.n) - 1

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)
        return bytes(self.out)


def _magnitude(v):
    size = abs(v).bit_length()
    return size, (v if v >= 0 else v + (1 << size) - 1)


def encode(width, height, components, dc_level, ac_terms=0, seed=0, adobe=False):
    """JPEG bytes.  dc_level(c, bx, by) -> sample level 0..255 of component c at block
    (bx, by); `ac_terms` random AC coefficients per block add texture (and size)."""
    rng = random.Random(seed)
    bw, bh = (width + 7) // 8, (height + 7) // 8
    bits = _Bits()
    pred = [0] * components
    for by in range(bh):
        for bx in range(bw):
            for c in range(components):
                dc = int(round((dc_level(c, bx, by) - 128) * 8 / _QUANT))
                diff, pred[c] = dc - pred[c], dc
                size, value = _magnitude(diff)
                code, length = _DC_CODE[size]
                bits.put(code, length)
                if size:
                    bits.put(value, size)
                last = 0
                for k in sorted(rng.sample(range(1, 64), ac_terms)):
                    coef = rng.choice((-1, 1)) * rng.randint(1, 40)
                    run = k - last - 1
                    while run > 15:
                        bits.put(*_AC_CODE[0xF0])
                        run -= 16
                    size, value = _magnitude(coef)
                    bits.put(*_AC_CODE[(run << 4) | size])
                    bits.put(value, size)
                    last = k
                if last < 63:
                    bits.put(*_AC_CODE[0x00])
    scan = bits.flush()
    head = b"\xff\xd8"
    if adobe:  # Adobe APP14, transform 0: the components are CMYK as stored
        head += _segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))
    elif components != 4:
        head += _segment(0xE0, b"JFIF\x00" + struct.pack(">BBBHHBB", 1, 1, 0, 1, 1, 0, 0))
    head += _segment(0xDB, b"\x00" + bytes([_QUANT] * 64))
    head += _segment(0xC0, struct.pack(">BHHB", 8, height, width, components)
                     + b"".join(bytes([c + 1, 0x11, 0]) for c in range(components)))
    head += _segment(0xC4, _dht(0, _DC_SYMBOLS, 4) + _dht(1, _AC_SYMBOLS, 8))
    head += _segment(0xDA, bytes([components])
                     + b"".join(bytes([c + 1, 0x00]) for c in range(components))
                     + bytes([0, 63, 0]))
    return head + scan + b"\xff\xd9"


def encode_png(width, height, pixel):
    """RGB PNG bytes; pixel(x, y) -> (r, g, b)."""
    def chunk(kind, payload):
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in pixel(x, y))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))
