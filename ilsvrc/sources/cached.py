"""A source's listings, from its index file when it is valid, else walked."""

import hashlib
import os
import sys
import time

from ilsvrc.errors import UserError
from ilsvrc.sources import index as idx
from ilsvrc.sources.remote import object_stats
from ilsvrc.storage.cache import index_dir


def cached_listings(paths, build, cache_dir=None, log=sys.stderr):
    """(train, validation) listings of the bucket tars `paths`: from the index file
    in index_dir(cache_dir) when it matches the objects' sizes and generations (a
    stale or damaged index is rebuilt, not trusted), else build() them (reading the
    tars' headers from the bucket) and save the index."""
    stats = object_stats(paths)
    meta = {"source": "gs", "objects": list(paths)}
    path = os.path.join(index_dir(cache_dir), "gs-%s.index" % hashlib.sha256(
        repr(list(paths)).encode()).hexdigest()[:16])
    if os.path.exists(path):
        try:
            listings = tuple(idx.load(path, stats, meta=meta))
            log.write("index of %s from %s\n" % (", ".join(paths), path))
            return listings
        except UserError as err:
            log.write("note: %s; indexing the bucket again\n" % err)
    t0 = time.monotonic()
    listings = tuple(build())
    log.write("indexed %s in %.1f s (%d images); index saved to %s\n"
              % (", ".join(paths), time.monotonic() - t0, sum(map(len, listings)), path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    idx.save(path, listings, stats, meta=meta)
    return listings
