"""Where bytes live: one narrow interface over local files and gs:// objects.

    store = storage.store_for(path)
    store.stat(path)                     -> Info or None
    store.list(prefix)                   -> [Info] of paths starting with prefix
    store.read(path, offset, size)       -> exactly `size` bytes (UserError if short)
    store.create(path, fileobj, size, crc32c, metadata)
                                         -> Info; creates the object only if absent,
                                            raises Exists otherwise, and checks the size
                                            and CRC32C that storage reports

`local.LocalStore` serves plain paths, `gcs.GcsStore` gs:// paths (base: the shared
helpers and exceptions; cache: small objects copied to a local cache directory).
Nothing here knows a listing, a plan or a TFRecord.
"""

import os

from ilsvrc.storage.base import (GS, Exists, Info, Transient, is_remote, join,  # noqa: F401
                                 short_read, split_path, with_retries)
from ilsvrc.storage.gcs import GcsStore
from ilsvrc.storage.local import LocalStore

_LOCAL = LocalStore()
_GCS = {}
_override = None   # tests: a store that replaces GcsStore for gs:// paths


def store_for(path):
    if not is_remote(path):
        return _LOCAL
    if _override is not None:
        return _override
    pid = os.getpid()
    if pid not in _GCS:
        _GCS[pid] = GcsStore(os.environ.get("GOOGLE_CLOUD_PROJECT"))
    return _GCS[pid]


def check_bucket(path, doing):
    store = store_for(path)
    if hasattr(store, "check_bucket"):
        store.check_bucket(path, doing)



def read(path, offset, size):
    return store_for(path).read(path, offset, size)
