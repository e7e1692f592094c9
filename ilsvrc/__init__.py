"""One engine for turning ILSVRC2012 into TFRecords: sources -> plan -> write -> verify,
built in layers (docs/engine.md).  The upstream-named scripts (build.sh, official/,
slim/, verify.sh) are thin front ends over ilsvrc/cli; metalhead/ is a standalone tool
that uses only the ground layer.  Nothing here imports TensorFlow at module level:
only worker processes that decode or re-encode images do, once each.
"""

__version__ = "0.1.0"
