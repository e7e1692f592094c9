"""The source index: one compact, versioned file holding every image's container,
offset, size and name plus the sizes and mtimes of the source files, written once
and read by every task instead of walking 1.33 M tar headers again.

API (the same for local sources and for buckets; nothing here reads image bytes):

    save(path, listings, source_stats, meta=None, base=None)
    listings = load(path, expected_source_stats, meta=None, base=None)
    data = dumps(listings, source_stats, meta=None, base=None)      # bytes
    listings = loads(data, expected_source_stats, meta=None, base=None, where=path)

* `listings`: a sequence of `listing.Listing` (for the release: train, validation),
  returned in the same order with every column, container and flag restored.
* `source_stats`: {key: [size, stamp]} of what the listings were read from; for
  local files key = path, stamp = st_mtime_ns (see `local_stats`); a bucket uses the
  object name and its generation.  `expected_source_stats` is the same for the
  source as it is now: a dict, or a callable taking the recorded keys and
  returning {key: [size, stamp] or None (gone)}.  Any difference is `StaleIndex`
  (a UserError: one line naming the first changed key and the fix).
* `meta`: a small JSON-able dict (e.g. which source kind); when `load` is given
  one, the recorded meta must be equal or the index is refused as another source's.
* `base`: container paths, tree roots and stat keys under `base` are stored
  relative to it and joined (os.path.join) with the `base` given to `load`, so an
  index survives the source directory being mounted elsewhere.

File layout (version 1): the line `ILSVRC-SOURCE-INDEX 1`, an 8-byte little-endian
header length, a JSON header (version, meta, stats, per-listing flags, containers
and column lengths, the body's SHA-256), then one zlib-compressed body: per listing
the names and group names (JSON arrays) and four little-endian columns: group ids
(u32), container ids (i32), offset deltas (i64: offset minus the previous member's
end, small for tars) and sizes (i64).

For local sources, `listings_for(found, runner, path)` reads the index at `path`
when it exists (checking it is this source's and not stale) and otherwise walks the
source as before; `write_for(found, runner, path)` walks and writes it.
`python -m ilsvrc.sources.index SOURCE_DIR [-o FILE]` does the latter from the shell.
"""

import hashlib
import json
import os
import socket
import struct
import sys
import time
import zlib
from array import array

from ilsvrc import storage
from ilsvrc.sources import containers, listing
from ilsvrc.errors import UserError
from ilsvrc.storage import cache
from ilsvrc.sources import remote

MAGIC = b"ILSVRC-SOURCE-INDEX "
VERSION = 1
DEFAULT_NAME = "ilsvrc-source.index"
_LITTLE = sys.byteorder == "little"


# container classes by the name stored in the index
_KINDS = {cls.__name__: cls for cls in (containers.Slices, containers.ZipMembers,
                                        containers.File, remote.ObjectSlices)}


class StaleIndex(UserError):
    """The source changed since the index was written."""


class BadIndex(UserError):
    """Not an index file, an unknown version, or damaged."""


# --------------------------------------------------------------------------- paths

def _rel(path, base):
    if base is None or path is None:
        return path, False
    full = os.path.abspath(path)
    root = os.path.abspath(base)
    if full == root or full.startswith(root.rstrip("/") + "/"):
        return os.path.relpath(full, root), True
    return path, False


def _join(path, relative, base):
    if not relative or path is None:
        return path
    if base is None:
        raise ValueError("index stores paths relative to a base: load it with base=")
    return os.path.join(base, path)


# --------------------------------------------------------------------------- columns

def _le(arr, code):
    """Bytes of an array in little-endian order, checking the item size."""
    a = array(code, arr)
    if a.itemsize != {"I": 4, "i": 4, "q": 8}[code]:
        raise RuntimeError("unexpected array item size for '%s'" % code)
    if not _LITTLE:
        a.byteswap()
    return a.tobytes()


def _from_le(data, code):
    a = array(code)
    a.frombytes(data)
    if not _LITTLE:
        a.byteswap()
    return a


def _offset_deltas(lst):
    out = array("q", bytes(8 * len(lst)))
    end = 0
    offs, sizes = lst.offset, lst.size
    for i in range(len(lst)):
        out[i] = offs[i] - end
        end = offs[i] + max(sizes[i], 0)
    return out


def _offsets(deltas, sizes):
    out = array("Q", bytes(8 * len(deltas)))
    end = 0
    for i in range(len(deltas)):
        o = end + deltas[i]
        out[i] = o
        end = o + max(sizes[i], 0)
    return out


# --------------------------------------------------------------------------- bytes

def dumps(listings, source_stats, meta=None, base=None):
    """The index file's bytes (see the module docstring)."""
    body, entries = [], []
    pos = 0

    def column(data):
        nonlocal pos
        body.append(data)
        pos += len(data)
        return len(data)

    for lst in listings:
        places = []
        for c in lst.containers:
            p, rel = _rel(str(c), base)
            places.append([p, rel, type(c).__name__])
        root, root_rel = _rel(lst.root, base)
        entries.append({
            "split": lst.split, "count": len(lst), "inner_tars": bool(lst.inner_tars),
            "files_flat": bool(lst.files_flat), "root": root, "root_relative": root_rel,
            "containers": places,
            "columns": [
                column(json.dumps(lst.names).encode("ascii")),
                column(json.dumps(lst.group_names).encode("ascii")),
                column(_le(lst.group, "I")),
                column(_le(lst.container, "i")),
                column(_le(_offset_deltas(lst), "q")),
                column(_le(lst.size, "q")),
            ],
        })
    raw = b"".join(body)
    packed = zlib.compress(raw, 6)
    stats = {}
    for key, value in source_stats.items():
        k, rel = _rel(key, base)
        stats[("rel:" if rel else "abs:") + k] = [int(v) for v in value]
    header = {
        "format": "ilsvrc-source-index", "version": VERSION, "meta": meta or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(), "stats": stats, "listings": entries,
        "body": {"raw_bytes": len(raw), "bytes": len(packed),
                 "sha256": hashlib.sha256(packed).hexdigest()},
    }
    head = json.dumps(header, sort_keys=True).encode("ascii")
    return b"".join([MAGIC, b"%d\n" % VERSION, struct.pack("<Q", len(head)), head,
                     packed])


def _header(data, where):
    fix = "Rebuild it with --index-only (or delete it)."
    if not data.startswith(MAGIC):
        raise BadIndex("%s is not an ilsvrc source index. %s" % (where, fix))
    nl = data.find(b"\n", len(MAGIC))
    try:
        version = int(data[len(MAGIC):nl])
    except ValueError:
        raise BadIndex("%s: unreadable index version line. %s" % (where, fix))
    if version != VERSION:
        raise BadIndex("%s is an index of version %d; this program reads version %d. "
                       "%s" % (where, version, VERSION, fix))
    at = nl + 1
    if len(data) < at + 8:
        raise BadIndex("%s: truncated index. %s" % (where, fix))
    (hlen,) = struct.unpack_from("<Q", data, at)
    try:
        header = json.loads(data[at + 8:at + 8 + hlen].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadIndex("%s: damaged index header. %s" % (where, fix))
    return header, data[at + 8 + hlen:]


def _stats_of(header, base):
    out = {}
    for key, value in header["stats"].items():
        kind, k = key[:4], key[4:]
        out[_join(k, kind == "rel:", base)] = value
    return out


def recorded_stats(data, base=None, where="index"):
    """{key: [size, stamp]} recorded in an index's bytes (no staleness check)."""
    return _stats_of(_header(data, where)[0], base)


def loads(data, expected_source_stats, meta=None, base=None, where="index"):
    """The listings stored in `data`; StaleIndex if the source changed since."""
    header, packed = _header(data, where)
    fix = "Rebuild it with --index-only (or delete it)."
    if meta is not None and header.get("meta") != meta:
        raise StaleIndex("%s describes another source (%s), not this one (%s). %s"
                         % (where, _describe(header.get("meta")), _describe(meta), fix))
    stats = _stats_of(header, base)
    current = expected_source_stats(sorted(stats)) if callable(expected_source_stats) \
        else expected_source_stats
    for key in sorted(set(stats) | set(current)):
        was, now = stats.get(key), current.get(key)
        if was is None or now is None or list(was) != list(now):
            if was is None:
                what = "is not recorded in it"
            elif now is None:
                what = "is gone"
            elif was[0] != now[0]:
                what = "changed size (%d -> %d bytes)" % (was[0], now[0])
            else:
                what = "was modified"
            raise StaleIndex("%s is stale: %s %s since the index was written %s. "
                             "Rebuild it with --index-only (or delete it)."
                             % (where, key, what, header.get("created", "")))
    body = header["body"]
    if len(packed) != body["bytes"] or \
            hashlib.sha256(packed).hexdigest() != body["sha256"]:
        raise BadIndex("%s is damaged (checksum mismatch; truncated copy?). %s"
                       % (where, fix))
    raw = zlib.decompress(packed)
    listings, pos = [], 0
    for entry in header["listings"]:
        parts = []
        for n in entry["columns"]:
            parts.append(raw[pos:pos + n])
            pos += n
        names, groups, gid, cid, deltas, sizes = parts
        lst = listing.Listing(entry["split"])
        lst.names = json.loads(names.decode("ascii"))
        for g in json.loads(groups.decode("ascii")):
            lst.group_id(g)
        lst.group = _from_le(gid, "I")
        lst.container = _from_le(cid, "i")
        lst.size = _from_le(sizes, "q")
        lst.offset = _offsets(_from_le(deltas, "q"), lst.size)
        n = entry["count"]
        if not (len(lst.names) == len(lst.group) == len(lst.container) ==
                len(lst.size) == len(lst.offset) == n):
            raise BadIndex("%s is damaged (column lengths differ). %s" % (where, fix))
        lst.containers = []
        for path, rel, kind in entry["containers"]:
            if kind not in _KINDS:
                raise BadIndex("%s: unknown container kind %r. %s" % (where, kind, fix))
            lst.containers.append(_KINDS[kind](_join(path, rel, base)))
        lst.root = _join(entry["root"], entry["root_relative"], base)
        lst.inner_tars, lst.files_flat = entry["inner_tars"], entry["files_flat"]
        listings.append(lst)
    return listings


def _describe(meta):
    if not meta:
        return "unknown"
    return ", ".join("%s=%s" % kv for kv in sorted(meta.items()))


def save(path, listings, source_stats, meta=None, base=None):
    """Write the index to `path` atomically (temporary file, fsync, rename)."""
    data = dumps(listings, source_stats, meta, base)
    tmp = "%s.%s.%d.tmp" % (path, socket.gethostname(), os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise UserError("cannot write the index %s: %s. Choose a writable place "
                        "(--index FILE)." % (path, err.strerror or err))
    return len(data)


def load(path, expected_source_stats, meta=None, base=None):
    """The listings of the index file at `path` (see `loads`)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise UserError("cannot read the index %s: %s" % (path, err.strerror or err))
    return loads(data, expected_source_stats, meta, base, where=path)


# --------------------------------------------------------------------------- local

def local_stats(keys):
    """{path: [size, st_mtime_ns] or None} for local paths."""
    out = {}
    for key in keys:
        try:
            st = os.stat(key)
        except OSError:
            out[key] = None
            continue
        out[key] = [st.st_size, st.st_mtime_ns]
    return out


def stat_keys(listings):
    """The local paths a listing depends on: its container files, its tree root
    and (grouped trees) every group directory, whose mtime changes when files are
    added or removed."""
    keys = []
    for lst in listings:
        keys.extend(str(c) for c in lst.containers)
        if lst.root is not None:
            keys.append(lst.root)
            if not lst.files_flat:
                keys.extend(os.path.join(lst.root, g) for g in lst.group_names if g)
    return sorted(set(keys))


def _source_meta(found):
    base = source_base(found)
    return {"kind": found[0],
            "paths": [os.path.relpath(os.path.abspath(p), base) for p in found[1:]]}


def source_base(found):
    """The directory the source's paths are stored relative to, spelled as the
    caller spelled it, so that loaded paths are the very strings a walk gives (the
    plan fingerprint includes them)."""
    return os.path.dirname(found[1])


def write_for(found, runner, path, log=None):
    """Walk the source `found` (discover.find_source) and write its index to `path`."""
    log = log or sys.stderr
    from ilsvrc.sources import discover
    if found[0] == "tar" and storage.is_remote(found[1]):
        raise UserError("--index-only is for local sources: a gs:// source's index is "
                        "built on its first conversion and kept in %s (or "
                        "$ILSVRC_INDEX_DIR)" % cache.index_dir(cache.index_hint))
    t = time.monotonic()
    listings = discover.list_source(found, runner)
    stats = local_stats(stat_keys(listings))
    size = save(path, listings, stats, _source_meta(found), source_base(found))
    log.write("index: %s images of %s written to %s (%.1f MB, %.1f s)\n"
              % ("{:,}".format(sum(len(x) for x in listings)), source_base(found),
                 path, size / 1e6, time.monotonic() - t))
    return listings


def listings_for(found, runner, path, log=None):
    """(train, validation) listings: from the index at `path` when it exists,
    else by walking the source, as without an index."""
    log = log or sys.stderr
    from ilsvrc.sources import discover
    if path and os.path.exists(path) and found[0] == "tar" and \
            storage.is_remote(found[1]):
        log.write("index: %s is for a local source; a gs:// source keeps its own index "
                  "(in %s)\n" % (path, cache.index_dir(cache.index_hint)))
    elif path and os.path.exists(path):
        t = time.monotonic()
        listings = load(path, local_stats, _source_meta(found), source_base(found))
        log.write("index: read %s images from %s (%.1f s; source unchanged)\n"
                  % ("{:,}".format(sum(len(x) for x in listings)), path,
                     time.monotonic() - t))
        return tuple(listings)
    return discover.list_source(found, runner)


def default_path(out_dir):
    return os.path.join(out_dir, DEFAULT_NAME)


# --------------------------------------------------------------------------- command

def main(argv=None):
    import argparse
    from ilsvrc import pool
    from ilsvrc.sources import discover
    from ilsvrc.cli import options
    from ilsvrc.errors import main_guard
    prog = "python -m ilsvrc.sources.index"

    def run():
        p = argparse.ArgumentParser(prog=prog, description="Walk the ILSVRC2012 source "
                                    "in DIR once and write its index file, which every "
                                    "task of a multi-machine run then reads.")
        p.add_argument("dir", metavar="DIR", help="the source directory (as given to "
                       "build.sh or the slim driver)")
        p.add_argument("-o", "--output", metavar="FILE", required=True,
                       help="where to write the index: the conversion's output "
                       "directory/%s is where the front ends look" % DEFAULT_NAME)
        p.add_argument("--source", choices=discover.SOURCES, default="auto")
        options.add_run_options(p, check=False)
        a = p.parse_args(sys.argv[1:] if argv is None else argv)
        found = discover.find_source(a.dir, a.source)
        with pool.Pool(options.workers(a.workers, "--workers")) as runner:
            write_for(found, runner, a.output)
        return 0

    return main_guard(run, prog)


if __name__ == "__main__":
    sys.exit(main())
