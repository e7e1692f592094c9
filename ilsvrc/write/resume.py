"""Resume state: a fingerprint of each split's plan, kept beside its shards, and which
shards of an earlier run with the same plan are already done.

A rerun with the same plan skips the shards that are there (resume after a kill);
a run with a different plan never deletes them: it stops and names the directory.
The fingerprint covers only what decides the records' bytes -- each image's
container (base name and size), offset, size, relpath and features -- so moving the
input directory, or rewording a message, keeps the finished shards.
"""

import hashlib
import json
import os
import re
from typing import NamedTuple, Optional

from ilsvrc.write import lock
from ilsvrc.errors import UserError
from ilsvrc.fsutil import atomic_write

STATE_VERSION = "ilsvrc-write-2"


def fingerprint(split, settings):
    """A digest of everything that decides the bytes of `split`'s shards."""
    return survey(split, settings)[0]


class Inputs(NamedTuple):
    """What the inputs of a split are now: a digest of every container's state
    (containers.Container.state), and {path: state} when there are few (the
    release tars, a zip, a copy's files: named when one changes)."""
    digest: str
    files: Optional[dict]


MAX_NAMED = 64


def survey(split, settings):
    """(fingerprint, Inputs) of `split` in one pass over its planned images.

    The fingerprint hashes, image after image, repr((container identity, offset,
    size, relpath, sorted features)); that text is put together from the repr of
    each part, the container's and the features' remembered per object (images
    share them: one container per tar, one feature dict per class), and hashed in
    chunks: the same bytes, the same digest, at a fraction of the cost."""
    h = hashlib.sha256(repr((STATE_VERSION, settings, split.prefix, split.ranges)).encode())
    states, idents, feats, chunk = {}, {}, {}, []
    for j in range(split.count):
        item = split.item(j)
        c, f = item.container, item.features
        ident = idents.get(id(c))
        if ident is None or ident[0] is not c:
            ident = _remember(idents, c, repr(c.identity()))
            key = (type(c).__name__, c.path)
            if key not in states:
                states[key] = c.state()
        known = feats.get(id(f))
        if known is None or known[0] is not f:
            known = _remember(feats, f, repr(sorted(f.items())))
        chunk.append("(%s, %r, %r, %r, %s)" % (ident[1], item.offset, item.size,
                                              item.relpath, known[1]))
        if len(chunk) >= 4096:
            h.update("".join(chunk).encode())
            chunk = []
    h.update("".join(chunk).encode())
    files = sorted((path, state) for (_, path), state in states.items())
    digest = hashlib.sha256(repr(files).encode()).hexdigest()
    return h.hexdigest(), Inputs(digest, dict(files) if len(files) <= MAX_NAMED else None)


def _remember(cache, obj, text):
    """(obj, text) kept in `cache` by id(obj) (the object held, so that its id is
    not reused while there); at most 4,096 kept."""
    if len(cache) >= 4096:
        cache.clear()
    entry = cache[id(obj)] = (obj, text)
    return entry


INPUTS_LINE = "inputs "
KEEP_INPUTS = 8


def _state_lines(split):
    try:
        with open(_state_path(split)) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def known_inputs(split):
    """The Inputs recorded in `split`'s resume state: those its finished shards
    were written from (or checked against)."""
    known = []
    for line in _state_lines(split)[1:]:
        if line.startswith(INPUTS_LINE):
            try:
                rec = json.loads(line[len(INPUTS_LINE):])
                known.append(Inputs(rec["digest"], rec.get("files")))
            except (ValueError, KeyError, TypeError):
                continue          # an unreadable record: as if unknown (re-checked)
    return known


def record_inputs(split, inputs):
    """Add `inputs` to `split`'s resume state (its first line, the plan, stays)."""
    lines = _state_lines(split)
    if not lines or any(i.digest == inputs.digest for i in known_inputs(split)):
        return
    rest = [ln for ln in lines[1:] if ln.startswith(INPUTS_LINE)][-(KEEP_INPUTS - 1):]
    rec = INPUTS_LINE + json.dumps({"digest": inputs.digest, "files": inputs.files},
                                   sort_keys=True)
    atomic_write(_state_path(split), "\n".join([lines[0]] + rest + [rec]) + "\n")


def what_changed(split, inputs):
    """None when `inputs` are among those recorded for `split`; else a phrase naming
    what changed."""
    known = known_inputs(split)
    if any(i.digest == inputs.digest for i in known):
        return None
    if not known:
        return "no record of the inputs they were written from"
    last = known[-1]
    if last.files and inputs.files:
        for path in sorted(set(last.files) | set(inputs.files)):
            if last.files.get(path) != inputs.files.get(path):
                return "%s changed (size, mtime or ctime)" % path
    return "an input changed (size, mtime or ctime)"


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
                recorded = f.readline().strip()   # later lines: known_inputs
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
