"""TensorFlow's JPEG and PNG kernels run through its C API (ctypes), without importing
the tensorflow package: what a worker needs for the 23 re-encoded images and the
decode check.

Loading libtensorflow_cc and creating an eager context takes ~0.25 s of CPU here,
against ~1.5-2 s for tfimport.image_ops() (the Python modules behind the ops, numpy,
ml_dtypes and their extension modules) and ~4 s for `import tensorflow`.  The
kernels are the same compiled code, run with the same attributes (the op
definitions' defaults, which tf.io's wrappers pass), so the bytes and sizes are the
same (tests/test_fastpath.py compares them with tf.io).  `ops()` gives a namespace
with decode_jpeg, decode_png and encode_jpeg taking bytes or a handle; a result has
`.shape` and, for a string, `.numpy()` (its bytes); a failed op raises OpError
(a ValueError) with TensorFlow's message.  ops() is None where the libraries or a
symbol are not found (another platform or TensorFlow build) or the self-test fails;
image.py then uses tfimport.image_ops().
"""

import ctypes
import os
import types

from ilsvrc import tfimport

_P = ctypes.c_void_p
_TF_STRING = 7
_TSTRING_SIZE = 24        # sizeof(TF_TString)
# (library, name, result type, argument types)
_SIGNATURES = [
    ("fw", "TF_NewStatus", _P, ()),
    ("fw", "TF_GetCode", ctypes.c_int, (_P,)),
    ("fw", "TF_Message", ctypes.c_char_p, (_P,)),
    ("fw", "TF_AllocateTensor", _P, (ctypes.c_int, _P, ctypes.c_int, ctypes.c_size_t)),
    ("fw", "TF_TensorData", _P, (_P,)),
    ("fw", "TF_DeleteTensor", None, (_P,)),
    ("cc", "TF_StringInit", None, (_P,)),
    ("cc", "TF_StringAssignView", None, (_P, ctypes.c_char_p, ctypes.c_size_t)),
    ("cc", "TF_StringGetDataPointer", _P, (_P,)),
    ("cc", "TF_StringGetSize", ctypes.c_size_t, (_P,)),
    ("cc", "TFE_NewContextOptions", _P, ()),
    ("cc", "TFE_NewContext", _P, (_P, _P)),
    ("cc", "TFE_NewTensorHandle", _P, (_P, _P)),
    ("cc", "TFE_DeleteTensorHandle", None, (_P,)),
    ("cc", "TFE_TensorHandleResolve", _P, (_P, _P)),
    ("cc", "TFE_TensorHandleNumDims", ctypes.c_int, (_P, _P)),
    ("cc", "TFE_TensorHandleDim", ctypes.c_int64, (_P, ctypes.c_int, _P)),
    ("cc", "TFE_NewOp", _P, (_P, ctypes.c_char_p, _P)),
    ("cc", "TFE_DeleteOp", None, (_P,)),
    ("cc", "TFE_OpAddInput", None, (_P, _P, _P)),
    ("cc", "TFE_OpSetAttrInt", None, (_P, ctypes.c_char_p, ctypes.c_int64)),
    ("cc", "TFE_OpSetAttrString", None, (_P, ctypes.c_char_p, ctypes.c_char_p,
                                         ctypes.c_size_t)),
    ("cc", "TFE_Execute", None, (_P, ctypes.POINTER(_P), ctypes.POINTER(ctypes.c_int),
                                 _P)),
]

_loaded = False
_ops = None


class OpError(ValueError):
    """A kernel's failure, with TensorFlow's message."""


class _Api:
    """The C functions, one eager context and one status."""

    def __init__(self, paths):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # lazy binding: functions are looked up when first called, not all ~400,000
        # at load (~0.15 s less CPU)
        mode = getattr(os, "RTLD_LAZY", 1) | getattr(os, "RTLD_LOCAL", 0)
        libs = {"fw": ctypes.CDLL(paths[0], mode=mode),
                "cc": ctypes.CDLL(paths[1], mode=mode)}
        for lib, name, restype, argtypes in _SIGNATURES:
            fn = getattr(libs[lib], name)
            fn.restype, fn.argtypes = restype, argtypes
            setattr(self, name, fn)
        self.status = self.TF_NewStatus()
        self.context = self.TFE_NewContext(self.TFE_NewContextOptions(), self.status)
        self.check()

    def check(self):
        if self.TF_GetCode(self.status) != 0:
            raise OpError(self.TF_Message(self.status).decode("utf-8", "replace"))

    def string(self, data):
        """A handle on a scalar string tensor whose string is a view of `data` (not
        a copy: a tensor allocated here does not free what its strings own, so a
        copy would leak).  The handle keeps `data` alive until it is deleted."""
        data = bytes(data)
        tensor = self.TF_AllocateTensor(_TF_STRING, None, 0, _TSTRING_SIZE)
        tstring = self.TF_TensorData(tensor)
        self.TF_StringInit(tstring)
        self.TF_StringAssignView(tstring, data, len(data))
        try:
            handle = self.TFE_NewTensorHandle(tensor, self.status)
            self.check()
        finally:
            self.TF_DeleteTensor(tensor)
        return Handle(self, handle, data)

    def run(self, name, inputs, ints=(), strings=()):
        """Run op `name` on `inputs` (bytes or Handles) eagerly; its one output."""
        inputs = [x if isinstance(x, Handle) else self.string(x) for x in inputs]
        op = self.TFE_NewOp(self.context, name.encode("ascii"), self.status)
        self.check()
        try:
            for handle in inputs:
                self.TFE_OpAddInput(op, handle.ptr, self.status)
                self.check()
            for key, value in ints:
                self.TFE_OpSetAttrInt(op, key.encode("ascii"), value)
            for key, value in strings:
                self.TFE_OpSetAttrString(op, key.encode("ascii"), value, len(value))
            out, count = (_P * 1)(), ctypes.c_int(1)
            self.TFE_Execute(op, out, ctypes.byref(count), self.status)
            self.check()
        finally:
            self.TFE_DeleteOp(op)
        return Handle(self, out[0])


class Handle:
    """An eager tensor handle: `.shape`, `.numpy()` (a scalar string's bytes);
    `keep`: what must outlive it (the bytes a string view points into)."""

    def __init__(self, api, ptr, keep=None):
        self.api, self.ptr, self.keep = api, ptr, keep

    def __del__(self):
        if self.ptr:
            self.api.TFE_DeleteTensorHandle(self.ptr)
            self.ptr = None

    @property
    def shape(self):
        api = self.api
        dims = api.TFE_TensorHandleNumDims(self.ptr, api.status)
        api.check()
        return tuple(api.TFE_TensorHandleDim(self.ptr, i, api.status) for i in range(dims))

    def numpy(self):
        api = self.api
        tensor = api.TFE_TensorHandleResolve(self.ptr, api.status)
        api.check()
        try:
            tstring = api.TF_TensorData(tensor)
            return ctypes.string_at(api.TF_StringGetDataPointer(tstring),
                                    api.TF_StringGetSize(tstring))
        finally:
            api.TF_DeleteTensor(tensor)


def _namespace(api):
    return types.SimpleNamespace(
        decode_jpeg=lambda contents, channels=0: api.run(
            "DecodeJpeg", [contents], ints=[("channels", channels)]),
        decode_png=lambda contents, channels=0: api.run(
            "DecodePng", [contents], ints=[("channels", channels)]),
        encode_jpeg=lambda image, format="", quality=95: api.run(
            "EncodeJpeg", [image], ints=[("quality", quality)],
            strings=[("format", format.encode("ascii"))]))


# A 2x2 RGB JPEG (TensorFlow's, quality 50): the self-test decodes it and encodes
# the pixels again.
_PROBE = bytes.fromhex(
    "ffd8ffe000104a46494600010101012c012c0000ffdb004300100b0c0e0c0a100e0d0e1211101318"
    "281a181616183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d"
    "71797064785c656763ffdb0043011112121815182f1a1a2f63423842636363636363636363636363"
    "6363636363636363636363636363636363636363636363636363636363636363636363636363ffc0"
    "0011080002000203012200021101031101ffc4001500010100000000000000000000000000000006"
    "ffc4001b10000203000300000000000000000000000102000305041221ffc4001401010000000000"
    "0000000000000000000000ffc40014110100000000000000000000000000000000ffda000c030100"
    "02110311003f0092d6b2c4d7e6aabb2a8bdc000f8076311103ffd9")


def ops():
    """The namespace of the module docstring, or None."""
    global _loaded, _ops
    if not _loaded:
        _loaded = True
        if os.environ.get("ILSVRC_NO_TF_C_API"):
            return None
        try:
            paths = tfimport.shared_libraries("libtensorflow_framework",
                                              "libtensorflow_cc")
            if paths is not None:
                candidate = _namespace(_Api(paths))
                pixels = candidate.decode_jpeg(_PROBE, channels=3)
                again = candidate.encode_jpeg(pixels, format="rgb", quality=100)
                if pixels.shape == (2, 2, 3) and again.numpy()[:2] == b"\xff\xd8":
                    _ops = candidate
        except (OSError, AttributeError, ValueError, TypeError):
            _ops = None
    return _ops
