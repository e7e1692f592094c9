"""Import TensorFlow once per process, quietly: all of it (`tensorflow()`), or only
its image codec ops (`image_ops()`), which is all a worker needs for the 23
re-encoded images and for the decode check.

`import tensorflow` costs ~3-4 s of CPU and ~500 MB here, almost all of it in Python
modules a worker never uses (Keras hooks, tf.data, distribution strategies).  The
image ops are the same compiled kernels behind a few modules: importing
`tensorflow.python.ops.gen_image_ops` with the package's own `__init__` skipped
takes ~1 s and ~350 MB.  For that, `sys.modules["tensorflow"]` holds a stand-in
package (`_StandIn`) while the ops are in use (TensorFlow's eager fast path imports
modules by their full name as it runs).  The first attribute anything asks of the
stand-in (`tensorflow.io`, say, after an `import tensorflow` elsewhere in the
process) replaces it with the real package, imported in full as usual, reusing the
modules already loaded.  The ops are the ones `tf.io.decode_jpeg`, `tf.io.decode_png`
and `tf.io.encode_jpeg` run, so the bytes are the same (tests/test_jpeg.py compares
them with the full import).  If the light import fails (another TensorFlow layout),
the full import is used.  Only processes that ask for it (`use_light_import`: the
worker pool's processes) take the light path; elsewhere image_ops() is `tf.io` of
the full import.
"""

import glob
import importlib.util
import os
import sys
import types

_tf = None
_image_ops = None
_light = False   # set in worker processes (pool.Pool's initializer): see use_light_import


def shared_libraries(*names):
    """Paths of TensorFlow's shared libraries `names` ('libtensorflow_framework',
    ...), all from one installation, found without importing the package; None
    where TensorFlow or one of them is not there."""
    spec = importlib.util.find_spec("tensorflow")   # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        return None
    for top in spec.submodule_search_locations:
        found = [sorted(glob.glob(os.path.join(top, name + ".so*"))) for name in names]
        if all(found):
            return tuple(paths[0] for paths in found)
    return None


def use_light_import():
    """Let image_ops() load only the image ops in this process.  Worker processes do
    this at start; a process that may want all of TensorFlow later anyway (the
    in-process runner of tests and debugging, workers=0) keeps the plain import."""
    global _light
    _light = True


def tensorflow():
    """The tensorflow module; ImportError when it is not installed."""
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if isinstance(sys.modules.get("tensorflow"), _StandIn):
            del sys.modules["tensorflow"]   # the real package replaces the stand-in
        import tensorflow as tf
        tf.get_logger().setLevel("ERROR")  # no deprecation chatter
        _tf = tf
    return _tf


class _StandIn(types.ModuleType):
    """`tensorflow` while only the image ops are loaded: asking it for anything it
    does not have imports the real package and answers from it."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(tensorflow(), name)


def image_ops():
    """A namespace with TensorFlow's decode_jpeg, decode_png and encode_jpeg ops
    (eager); ImportError when TensorFlow is not installed."""
    global _image_ops
    if _image_ops is None:
        loaded = sys.modules.get("tensorflow")
        spec = importlib.util.find_spec("tensorflow") if loaded is None else None
        if not _light or loaded is not None or spec is None or \
                not spec.submodule_search_locations:
            _image_ops = tensorflow().io     # ImportError when not installed
        else:
            try:
                _image_ops = _import_image_ops(spec)
            except Exception:   # not the layout expected: take the whole package
                _image_ops = tensorflow().io    # (which replaces the stand-in)
    return _image_ops


def _import_image_ops(spec):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    stand_in = _StandIn("tensorflow")
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__file__ = spec.origin
    sys.modules["tensorflow"] = stand_in
    from tensorflow.python.framework import constant_op  # noqa: F401 (bytes -> tensor)
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import gen_image_ops
    ops.enable_eager_execution()
    return types.SimpleNamespace(decode_jpeg=gen_image_ops.decode_jpeg,
                                 decode_png=gen_image_ops.decode_png,
                                 encode_jpeg=gen_image_ops.encode_jpeg)
