"""Resume state: a fingerprint of each split's plan, kept beside its shards, and which
shards of an earlier run with the same plan are already done.

A rerun with the same plan skips the shards that are there (resume after a kill);
a run with a different plan never deletes them: it stops and names the directory.
The fingerprint covers only what decides the records' bytes -- each image's
container (base name and size), offset, size, relpath and features -- so moving the
input directory, or rewording a message, keeps the finished shards.
"""

import hashlib
import os
import re

from ilsvrc.write import lock
from ilsvrc.errors import UserError
from ilsvrc.fsutil import atomic_write

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


def _finished_shards(split):
    pattern = re.compile(re.escape(split.prefix) + r"-\d{5}-of-\d{5}")
    return sorted(n for n in os.listdir(split.out_dir) if pattern.fullmatch(n))


def prepare_dir(split, digest, alone=True):
    """Drop orphaned partial files and check or record the plan; return the shards
    already done.  Called under the directory's plan lock (lock.Claim); `alone`:
    no other run holds the directory.  Never deletes a finished shard: output of
    another plan is an error naming the directory."""
    try:
        os.makedirs(split.out_dir, exist_ok=True)
        lock.remove_orphans(split.out_dir, split.prefix, alone)
        state = _state_path(split)
        try:
            with open(state) as f:
                recorded = f.read().strip()
        except FileNotFoundError:
            recorded = None
        if recorded == digest:
            return {k for k in range(split.num_shards) if os.path.exists(split.path(k))}
        if recorded is not None and not alone:
            raise lock.InUse("%s is being written right now by tasks of another plan "
                             "(different source, labels or options). Give this run "
                             "another output directory, or stop those tasks."
                             % split.out_dir)
        others = _finished_shards(split)
        if others:
            raise UserError("%s holds %d finished %s shards of another plan (other "
                            "source, labels, options or program version; e.g. %s). "
                            "Nothing was deleted: choose another output directory, or "
                            "remove them (rm %s) and rerun."
                            % (split.out_dir, len(others), split.prefix, others[0],
                               os.path.join(split.out_dir, split.prefix + "-*")))
        atomic_write(state, digest + "\n")
    except OSError as err:
        raise UserError("cannot prepare output directory %s: %s. Choose a writable "
                        "directory." % (split.out_dir, err.strerror or err))
    return set()
