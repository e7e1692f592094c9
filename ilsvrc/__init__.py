"""One engine for turning ILSVRC2012 into TFRecords: sources -> plan -> write -> verify.

The upstream-named scripts (build.sh, official/, slim/, verify.sh) are thin front ends
over these modules; metalhead/ is a standalone tool that shares only the error and
file-system helpers.  docs/engine.md maps every module to what it owns.  Nothing here imports TensorFlow at module level: only worker
processes that write or decode images do, once each.
"""

__version__ = "0.1.0"
