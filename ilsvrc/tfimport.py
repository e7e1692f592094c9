"""Import TensorFlow once per process, quietly."""

import os

_tf = None


def tensorflow():
    """The tensorflow module; ImportError when it is not installed."""
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        tf.get_logger().setLevel("ERROR")  # no deprecation chatter
        _tf = tf
    return _tf

