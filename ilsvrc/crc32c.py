"""CRC32C at compiled speed without importing TensorFlow: the CRC32C that TensorFlow's
own record writer uses (absl's, in libtensorflow_framework), called through ctypes.

`compiled()` returns a function `crc(data) -> int` (the standard CRC-32C of a bytes-like
object, hardware-accelerated where the CPU has the instructions), or None when the
library or its symbol cannot be found or gives a wrong answer on the self-test; callers
then fall back to TensorFlow's writer/reader or the pure-Python table in tfrecord.py.
Loading the library takes ~30 ms and ~40 MB, against ~2 s and ~500 MB for
`import tensorflow`, so a worker that only frames records never imports TensorFlow.
"""

import ctypes
import glob
import importlib.util
import os
import re
import struct

# The C-ABI signature (uint32 crc, const char *buf, size_t n) of older TensorFlow
# releases, then absl's (crc32c_t crc, std::string_view data) found by pattern: its
# inline namespace (lts_YYYYMMDD) changes between releases.
_PLAIN_SYMBOLS = ("_ZN3tsl6crc32c6ExtendEjPKcm", "_ZN10tensorflow6crc32c6ExtendEjPKcm")
_ABSL_SYMBOL = re.compile(
    rb"_ZN4absl\d+lts_\w+?12crc_internal20ExtendCrc32cInternalENS0_8crc32c_t"
    rb"ESt17basic_string_viewIcSt11char_traitsIcEE(?=\x00)")
_CHECK = b"123456789"
_CHECK_CRC = 0xE3069283          # the standard CRC-32C check value

_loaded = False
_crc = None


def _library_path():
    spec = importlib.util.find_spec("tensorflow")   # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        return None
    for top in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(top, "libtensorflow_framework.so*")))
        if found:
            return found[0]
    return None


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
            return lambda data, fn=fn: fn(0, *_pointer(data))
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

    def crc(data, fn=fn):
        ptr, n = _pointer(data)
        return fn(0, n, ptr)
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


def compiled():
    """The compiled CRC-32C function, or None (see the module docstring)."""
    global _loaded, _crc
    if not _loaded:
        _loaded = True
        if os.environ.get("ILSVRC_NO_COMPILED_CRC"):
            return None
        try:
            path = _library_path()
            if path is not None:
                crc = _bind(ctypes.CDLL(path))
                if crc is not None and crc(_CHECK) == _CHECK_CRC and \
                        crc(bytearray(_CHECK * 1000)) == _reference(_CHECK * 1000):
                    _crc = crc
        except (OSError, AttributeError, ValueError, ImportError):
            _crc = None
    return _crc


def _reference(data):
    from ilsvrc.tfrecord import crc32c_table
    return crc32c_table(data)
