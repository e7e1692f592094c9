"""One engine for turning ILSVRC2012 into TFRecords: sources -> plan -> write -> verify.

The upstream-named scripts (official/, slim/, metalhead/) are thin front ends over
these modules.  Nothing here imports TensorFlow at module level: only worker
processes that write or decode images do, once each.
"""

__version__ = "0.1.0"
