"""All of CRC32C (Castagnoli) in one place: the pure-Python table (the reference the tests
check against), the compiled one TensorFlow's own record writer uses (absl's, in
libtensorflow_framework, called through ctypes without importing TensorFlow), the
google-crc32c package where installed (hardware CRC instructions: ~20 GB/s here
against absl's portable ~3.5 GB/s), TFRecord's masking and Cloud Storage's base64
spelling.

    value(data)          CRC32C of data, the fastest implementation available
    extend(crc, data)    the CRC32C continued over more data (value(a + b) ==
                         extend(value(a), b)), any implementation
    masked(data)         TFRecord's masked CRC32C; mask(crc) the masking alone
    table(data, crc=0)   the pure-Python reference
    compiled()           the fastest compiled function crc(data, crc=0) -> int:
                         google-crc32c's C extension where installed, else TensorFlow's
                         (absl); None when neither is found or passes the self-test
    b64(crc), from_b64(text)   Cloud Storage's spelling (base64 of 4 big-endian bytes)

Loading the compiled library takes ~30 ms and ~40 MB, against ~2 s and ~500 MB for
`import tensorflow`, so a worker that only frames records never imports TensorFlow.
"""

import base64
import ctypes
import os
import re
import struct

from ilsvrc import tfimport

# The C-ABI signature (uint32 crc, const char *buf, size_t n) of older TensorFlow
# releases, then absl's (crc32c_t crc, std::string_view data) found by pattern: its
# inline namespace (lts_YYYYMMDD) changes between releases.
_PLAIN_SYMBOLS = ("_ZN3tsl6crc32c6ExtendEjPKcm", "_ZN10tensorflow6crc32c6ExtendEjPKcm")
_ABSL_SYMBOL = re.compile(
    rb"_ZN4absl\d+lts_\w+?12crc_internal20ExtendCrc32cInternalENS0_8crc32c_t"
    rb"ESt17basic_string_viewIcSt11char_traitsIcEE(?=\x00)")
_CHECK = b"123456789"
_CHECK_CRC = 0xE3069283          # the standard CRC-32C check value
_POLY = 0x82F63B78               # CRC-32C (Castagnoli), reflected

_loaded = False
_crc = None


def _make_table():
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        out.append(c)
    return out


_TABLE = _make_table()


def table(data, crc=0):
    """CRC-32C in pure Python (table-driven): the reference, a few MB/s."""
    crc ^= 0xFFFFFFFF
    tab = _TABLE
    for b in bytes(data):
        crc = tab[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the C implementation that comes with google-cloud-storage (optional)
    import google_crc32c as _gcrc
    if getattr(_gcrc, "implementation", "c") != "c":
        _gcrc = None
except ImportError:
    _gcrc = None


def _dynstr(path):
    """The dynamic string table of an ELF64 little-endian shared library (bytes)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return b""
        shoff, = struct.unpack_from("<Q", head, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", head, 0x3A)
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        sections = [struct.unpack_from("<IIQQQQII", table, i * shentsize)
                    for i in range(shnum)]
        for _, sh_type, _, _, _, _, link, _ in sections:
            if sh_type == 11:                       # SHT_DYNSYM -> its string table
                _, _, _, _, offset, size, _, _ = sections[link]
                f.seek(offset)
                return f.read(size)
    return b""


def _bind(lib):
    for name in _PLAIN_SYMBOLS:
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.argtypes = (ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
            fn.restype = ctypes.c_uint32
            return lambda data, crc=0, fn=fn: fn(crc, *_pointer(data))
    m = _ABSL_SYMBOL.search(_dynstr(lib._name))
    if m is None:
        return None
    fn = getattr(lib, m.group(0).decode("ascii"), None)
    if fn is None:
        return None
    # crc32c_t is a uint32 in a register; a string_view is {size_t len; const char *}
    # passed by value in two registers (x86-64 and aarch64 alike).
    fn.argtypes = (ctypes.c_uint32, ctypes.c_size_t, ctypes.c_void_p)
    fn.restype = ctypes.c_uint32

    def crc(data, start=0, fn=fn):
        ptr, n = _pointer(data)
        return fn(start, n, ptr)
    return crc


def _pointer(data):
    """(pointer, length) for a bytes-like object, without copying bytes or writable
    buffers (a read-only memoryview of something else is copied once)."""
    if isinstance(data, bytes):
        return data, len(data)
    view = memoryview(data).cast("B")
    if view.readonly:
        data = bytes(view)
        return data, len(data)
    return (ctypes.c_char * len(view)).from_buffer(view), len(view)


def _google():
    """google-crc32c's C function as crc(data, crc=0), or None where not installed
    (it takes only read-only buffers: anything else is copied)."""
    if _gcrc is None:
        return None
    ext = _gcrc.extend

    def crc(data, start=0):
        return ext(start, data if type(data) is bytes else bytes(data))
    return crc


def _tensorflow():
    """TensorFlow's compiled CRC32C through ctypes, or None where not found."""
    found = tfimport.shared_libraries("libtensorflow_framework")
    if found is None:
        return None
    path = found[0]
    # Loading the library logs oneDNN's notice (and absl's "before InitializeLog"),
    # whatever the log level, unless oneDNN is off: it only affects math kernels.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    return _bind(ctypes.CDLL(path))


def _passes(crc):
    return crc(_CHECK) == _CHECK_CRC and \
        crc(bytearray(_CHECK * 1000)) == table(_CHECK * 1000) and \
        crc(_CHECK[4:], crc(_CHECK[:4])) == _CHECK_CRC


def compiled():
    """The fastest compiled CRC-32C function, or None (see the module docstring)."""
    global _loaded, _crc
    if not _loaded:
        _loaded = True
        if os.environ.get("ILSVRC_NO_COMPILED_CRC"):
            return None
        for find in (_google, _tensorflow):
            try:
                crc = find()
                if crc is not None and _passes(crc):
                    _crc = crc
                    break
            except (OSError, AttributeError, ValueError, ImportError, TypeError):
                pass
    return _crc


def value(data):
    """CRC-32C of `data`: compiled when found, else google-crc32c, else the table."""
    return extend(0, data)


def extend(crc, data):
    """The CRC-32C `crc` (of earlier data) continued over `data`."""
    fast = compiled()
    if fast is not None:
        return fast(data, crc)
    if _gcrc is not None:
        return _gcrc.extend(crc, bytes(data) if isinstance(data, memoryview) else data)
    return table(data, crc)


def masked(data):
    """TFRecord's masked CRC-32C of `data`."""
    return mask(value(data))


def mask(c):
    """TFRecord's masking of the CRC-32C `c`."""
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def b64(crc):
    """Cloud Storage's spelling of a CRC32C: base64 of the big-endian 4 bytes."""
    return base64.b64encode(struct.pack(">I", crc)).decode("ascii")


def from_b64(text):
    return struct.unpack(">I", base64.b64decode(text))[0] if text else None
