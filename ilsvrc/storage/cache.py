"""A local cache directory for what a bucket source needs on local disk (its index,
small label files): where it is, and copying a small object into it."""

import hashlib
import os

from ilsvrc.errors import UserError
from ilsvrc.fsutil import atomic_write
from ilsvrc.storage import store_for


def index_dir(cache_dir=None):
    """Where the index of a bucket source is kept: `cache_dir` (a front end's choice,
    e.g. --local_scratch_dir), else $ILSVRC_INDEX_DIR, else ~/.cache/ilsvrc-prep."""
    return cache_dir or os.environ.get("ILSVRC_INDEX_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ilsvrc-prep")


def fetch_small(path, cache_dir=None, limit=16 << 20):
    """Copy a small object (a label file) into index_dir(cache_dir); its local path,
    or None when there is no such object.  The object is read on every call (a copy
    is never reused), into a folder of its name and generation: a replaced object is
    a new copy, and one replaced while it was read is refused."""
    store = store_for(path)
    info = store.stat(path)
    if info is None:
        return None
    if info.size > limit:
        raise UserError("%s is %d bytes; a label file is far smaller. Check the path."
                        % (path, info.size))
    data = store.read(path, 0, info.size)
    after = store.stat(path)
    if after is None or (after.generation, after.size) != (info.generation, info.size):
        raise UserError("%s was replaced (or removed) while it was read. Rerun once "
                        "it is no longer being written." % path)
    d = os.path.join(index_dir(cache_dir), "files-" + hashlib.sha256(
        repr((path, info.generation)).encode()).hexdigest()[:16])
    local = os.path.join(d, path.rsplit("/", 1)[-1])
    try:
        os.makedirs(d, exist_ok=True)
        atomic_write(local, data)
    except OSError as err:
        raise UserError("cannot write %s: %s" % (local, err.strerror or err))
    return local
