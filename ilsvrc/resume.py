"""Resume state: a fingerprint of each split's plan, kept beside its shards, and which
shards of an earlier run with the same plan are already done.

A rerun with the same plan skips the shards that are there (resume after a kill);
a rerun with a different plan removes them and writes them all again.  The
fingerprint covers only what decides the records' bytes -- each image's container
(base name and size), offset, size, relpath and features -- so moving the input
directory, or rewording a message, keeps the finished shards.
"""

import hashlib
import os

from ilsvrc import fsutil
from ilsvrc.errors import UserError

STATE_VERSION = "ilsvrc-write-2"


def fingerprint(split, settings):
    """A digest of everything that decides the bytes of `split`'s shards."""
    h = hashlib.sha256(repr((STATE_VERSION, settings, split.prefix, split.ranges)).encode())
    for j in range(split.count):
        item = split.item(j)
        h.update(repr((item.container.identity(), item.offset, item.size, item.relpath,
                       sorted(item.features.items()))).encode())
    return h.hexdigest()


def _state_path(split):
    return os.path.join(split.out_dir, ".%s-of-%05d.plan" % (split.prefix, split.num_shards))


def prepare_dir(split, digest):
    """Make the directory, drop stale partial files; return the shards already done."""
    try:
        os.makedirs(split.out_dir, exist_ok=True)
        for entry in os.scandir(split.out_dir):
            if entry.name.startswith("." + split.prefix + "-") and \
                    entry.name.endswith(".partial"):
                os.remove(entry.path)
        state = _state_path(split)
        try:
            with open(state) as f:
                same = f.read().strip() == digest
        except FileNotFoundError:
            same = False
        if same:
            return {k for k in range(split.num_shards) if os.path.exists(split.path(k))}
        for k in range(split.num_shards):
            if os.path.exists(split.path(k)):
                os.remove(split.path(k))
        with fsutil.partial_file(state, "w") as f:
            f.write(digest + "\n")
    except OSError as err:
        raise UserError("cannot prepare output directory %s: %s. Choose a writable "
                        "directory." % (split.out_dir, err.strerror or err))
    return set()
