"""The one read-or-walk policy: a source's listings from its index file when that is
valid, else walked (local sources and gs:// alike), and where the index lives.

A local source's index is the file a front end names (--index, default
OUT/ilsvrc-source.index), written by --index-only; a gs:// source's index is kept in
the local cache directory (storage.cache.index_dir) and built on the first walk.
"""

import hashlib
import os
import sys
import time

from ilsvrc import storage
from ilsvrc.errors import UserError
from ilsvrc.sources import discover, hfcopy, indexfile, parts, spool
from ilsvrc.sources.remote import object_stats
from ilsvrc.storage.cache import index_dir

DEFAULT_NAME = indexfile.DEFAULT_NAME


# --------------------------------------------------------------------------- where

def index_path(given, out_dir, cache_dir=None):
    """The index file to read or write: `given` (--index), else
    OUT/ilsvrc-source.index (for a gs:// OUT: in index_dir(cache_dir), a local
    directory)."""
    if given:
        return given
    if storage.is_remote(out_dir):
        return os.path.join(index_dir(cache_dir), DEFAULT_NAME)
    return os.path.join(out_dir, DEFAULT_NAME)


# --------------------------------------------------------------------------- local

def local_stats(keys):
    """{path: [size, st_mtime_ns, st_ctime_ns] or None} for local paths (ctime:
    what a same-size edit with the mtime put back, `touch -r`, cannot keep the
    same).  A tar that is there
    as parts (parts.py) stands as [their total size, their number]: parts added or
    removed change it (each part is a key of its own, see stat_keys)."""
    out = {}
    for key in keys:
        try:
            st = os.stat(key)
        except OSError:
            out[key] = _split_stat(key)
            continue
        out[key] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    return out


def _split_stat(path):
    """[total size, number of parts] of the parts of the absent file `path`, or
    None when it has none (or they are no clean sequence any more, or vanish)."""
    try:
        found = parts.find(path)
        stamps = parts.stamps(found)
    except (UserError, OSError):
        return None
    if not found:
        return None
    return [sum(s[2] for s in stamps), len(found)]


def _container_keys(path):
    """A container's path, and for a tar there as parts each part as well."""
    if os.path.lexists(path):
        return [path]
    return [path] + parts.find(path)


def stat_keys(listings):
    """The local paths a listing depends on: its container files (a split tar: its
    own path and each part), its tree root and (grouped trees) every group
    directory, whose mtime changes when files are added or removed."""
    keys = []
    for lst in listings:
        for c in lst.containers:
            keys.extend(_container_keys(str(c)))
        if lst.root is not None:
            keys.append(lst.root)
            if not lst.files_flat:
                keys.extend(os.path.join(lst.root, g) for g in lst.group_names if g)
    return sorted(set(keys))


def source_base(source):
    """The directory the source's paths are stored relative to, spelled as the
    caller spelled it, so that loaded paths are the very strings a walk gives (the
    plan fingerprint includes them)."""
    return os.path.dirname(source.train)


def source_meta(source):
    """What an index records of the source it describes (checked on reading)."""
    base = source_base(source)
    return {"kind": source.kind,
            "paths": [os.path.relpath(os.path.abspath(p), base)
                      for p in (source.train, source.val)]}


def write_index(source, runner, path, cache_dir=None, log=None):
    """--index-only: walk the local `source` and write its index to `path` (its
    directory created); the listings."""
    log = log or sys.stderr
    if source.kind in hfcopy.KINDS:     # its "index" is the spool, made by reading it
        return spool.listings(source, spool.place(path, source.root, cache_dir), log,
                              runner=runner)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise UserError("cannot create %s: %s" % (parent, err.strerror or err))
    if source.remote:
        raise UserError("--index-only is for local sources: a gs:// source's index is "
                        "built on its first conversion and kept in %s (or "
                        "$ILSVRC_INDEX_DIR)" % index_dir(cache_dir))
    t = time.monotonic()
    listings = discover.list_source(source, runner)
    stats = local_stats(stat_keys(listings))
    size = indexfile.save(path, listings, stats, source_meta(source), source_base(source))
    log.write("index: %s images of %s written to %s (%.1f MB, %.1f s)\n"
              % ("{:,}".format(sum(len(x) for x in listings)), source_base(source),
                 path, size / 1e6, time.monotonic() - t))
    return listings


def load_index(source, path):
    """The listings recorded in the index file at `path` for the local `source`
    (StaleIndex when the source changed, BadIndex when it is not a good index)."""
    return indexfile.load(path, local_stats, source_meta(source), source_base(source))


# --------------------------------------------------------------------------- policy

def listings(source, runner, index_file=None, cache_dir=None, log=None, fill=True):
    """(train, validation) listings of `source`: a local source's from `index_file`
    when it exists, a bucket's from its cached index when it matches; else walked.
    A copy that cannot be read at an offset (the Hugging Face copy) is unpacked into
    its spool beside the index file (fill False: refused when not done yet)."""
    log = log or sys.stderr
    if source.kind in hfcopy.KINDS:
        return spool.listings(source, spool.place(index_file, source.root, cache_dir),
                              log, fill, runner)
    if source.remote:
        if index_file and os.path.exists(index_file):
            log.write("index: %s is for a local source; a gs:// source keeps its own "
                      "index (in %s)\n" % (index_file, index_dir(cache_dir)))
        return cached_listings([source.train, source.val],
                               lambda: discover.list_source(source, runner), cache_dir)
    if index_file and os.path.exists(index_file):
        t = time.monotonic()
        got = load_index(source, index_file)
        log.write("index: read %s images from %s (%.1f s; source unchanged)\n"
                  % ("{:,}".format(sum(len(x) for x in got)), index_file,
                     time.monotonic() - t))
        return tuple(got)
    return discover.list_source(source, runner)


def cached_listings(paths, build, cache_dir=None, log=None):
    """(train, validation) listings of the bucket tars `paths`: from the index file
    in index_dir(cache_dir) when it matches the objects' sizes and generations (a
    stale or damaged index is rebuilt, not trusted), else build() them (reading the
    tars' headers from the bucket) and save the index."""
    log = log or sys.stderr
    stats = object_stats(paths)
    meta = {"source": "gs", "objects": list(paths)}
    path = os.path.join(index_dir(cache_dir), "gs-%s.index" % hashlib.sha256(
        repr(list(paths)).encode()).hexdigest()[:16])
    if os.path.exists(path):
        try:
            got = tuple(indexfile.load(path, stats, meta=meta))
            log.write("index of %s from %s\n" % (", ".join(paths), path))
            return got
        except UserError as err:
            log.write("note: %s; indexing the bucket again\n" % err)
    t0 = time.monotonic()
    got = tuple(build())
    log.write("indexed %s in %.1f s (%d images); index saved to %s\n"
              % (", ".join(paths), time.monotonic() - t0, sum(map(len, got)), path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    indexfile.save(path, got, stats, meta=meta)
    return got
