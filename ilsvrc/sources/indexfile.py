"""The source index file's format: one compact, versioned file holding every image's
container, offset, size and name plus the sizes and stamps of the source files,
written once and read by every task instead of walking 1.33 M tar headers again.

API (the same for local sources and for buckets; nothing here reads image bytes,
walks a source or decides when an index is used: that is ilsvrc/sources/cached.py):

    save(path, listings, source_stats, meta=None, base=None)
    listings = load(path, expected_source_stats, meta=None, base=None)
    data = dumps(listings, source_stats, meta=None, base=None)      # bytes
    listings = loads(data, expected_source_stats, meta=None, base=None, where=path)

* `listings`: a sequence of `listing.Listing` (for the release: train, validation),
  returned in the same order with every column, container and flag restored, and
  (when the walk recorded them: a Kaggle zip) its `side_files`.
* `source_stats`: {key: [size, stamp]} of what the listings were read from; for
  local files key = path, stamp = st_mtime_ns; a bucket uses the object name and
  its generation.  `expected_source_stats` is the same for the source as it is now:
  a dict, or a callable taking the recorded keys and returning {key: [size, stamp]
  or None (gone)}.  Any difference is `StaleIndex` (a UserError: one line naming
  the first changed key and the fix).
* `meta`: a small JSON-able dict (e.g. which source kind); when `load` is given
  one, the recorded meta must be equal or the index is refused as another source's.
* `base`: container paths, tree roots and stat keys under `base` are stored
  relative to it and joined (os.path.join) with the `base` given to `load`, so an
  index survives the source directory being mounted elsewhere.

File layout (version 1): the line `ILSVRC-SOURCE-INDEX 1`, an 8-byte little-endian
header length, a JSON header (version, meta, stats, per-listing flags, containers,
side files when recorded, and column lengths, the body's SHA-256), then one
zlib-compressed body: per listing the names and group names (JSON arrays) and four
little-endian columns: group ids (u32), container ids (i32), offset deltas (i64:
offset minus the previous member's end, small for tars) and sizes (i64).
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

from ilsvrc import fsutil
from ilsvrc.errors import UserError
from ilsvrc.sources import containers, indexcheck, listing, remote
from ilsvrc.sources.indexcheck import Invalid

MAGIC = b"ILSVRC-SOURCE-INDEX "
VERSION = 1
DEFAULT_NAME = "ilsvrc-source.index"
FIX = "Rebuild it with --index-only (or delete it)."
_LITTLE = sys.byteorder == "little"


# container classes by the name stored in the index
_KINDS = {cls.__name__: cls for cls in (containers.Slices, containers.ZipMembers,
                                        containers.File, remote.ObjectSlices)}


class StaleIndex(UserError):
    """The source changed since the index was written."""


class BadIndex(UserError):
    """Not an index file, an unknown version, or damaged."""


def _bad(where, why):
    return BadIndex("%s is not a valid index (%s): rebuild it with --index-only (or "
                    "delete it)." % (where, why))


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
        raise Invalid("%s is stored relative to a source directory, which this index "
                      "has none of" % indexcheck.show(path))
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
            **({} if lst.side_files is None else {"side_files": lst.side_files}),
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
    fix = FIX
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
    try:
        indexcheck.header(header, VERSION, _KINDS)
    except Invalid as err:
        raise _bad(where, err)
    return header, data[at + 8 + hlen:]


def _stats_of(header, base):
    out = {}
    for key, value in header["stats"].items():
        kind, k = key[:4], key[4:]
        out[_join(k, kind == "rel:", base)] = value
    return out


def recorded_stats(data, base=None, where="index"):
    """{key: [size, stamp]} recorded in an index's bytes (no staleness check)."""
    try:
        return _stats_of(_header(data, where)[0], base)
    except Invalid as err:
        raise _bad(where, err)


def loads(data, expected_source_stats, meta=None, base=None, where="index"):
    """The listings stored in `data`; StaleIndex if the source changed since."""
    header, packed = _header(data, where)
    if meta is not None and header["meta"] != meta:
        raise StaleIndex("%s describes another source (%s), not this one (%s). %s"
                         % (where, _describe(header["meta"]), _describe(meta), FIX))
    try:
        _check_fresh(header, expected_source_stats, base, where)
        return _body(header, packed, base, where)
    except Invalid as err:
        raise _bad(where, err)


def _body(header, packed, base, where):
    """The listings of the (checksummed) body, cut by the header's column lengths."""
    body = header["body"]
    if len(packed) != body["bytes"] or \
            hashlib.sha256(packed).hexdigest() != body["sha256"]:
        raise BadIndex("%s is damaged (checksum mismatch; truncated copy?). %s"
                       % (where, FIX))
    try:
        raw = zlib.decompress(packed)
    except zlib.error as err:
        raise Invalid("its body does not inflate: %s" % err)
    cut = sum(sum(entry["columns"]) for entry in header["listings"])
    if len(raw) != body["raw_bytes"] or cut != len(raw):
        raise Invalid("its columns add up to %d bytes, its body holds %d" % (cut, len(raw)))
    listings, pos = [], 0
    for i, entry in enumerate(header["listings"]):
        parts = []
        for n in entry["columns"]:
            parts.append(raw[pos:pos + n])
            pos += n
        listings.append(_listing(entry, parts, base, "header.listings[%d]" % i))
    return listings


def _check_fresh(header, expected_source_stats, base, where):
    """StaleIndex unless the recorded stats are those of the source now."""
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
            raise StaleIndex("%s is stale: %s %s since the index was written %s. %s"
                             % (where, key, what, header["created"], FIX))


def _listing(entry, parts, base, name):
    """One Listing from its header entry and its six body columns (Invalid when the
    header's column lengths or counts do not cut them as they were written)."""
    names, groups, gid, cid, deltas, sizes = parts
    try:
        names = json.loads(names.decode("ascii"))
        groups = json.loads(groups.decode("ascii"))
        size = _from_le(sizes, "q")
        cols = [_from_le(gid, "I"), _from_le(cid, "i"), size,
                _offsets(_from_le(deltas, "q"), size)]
    except (ValueError, OverflowError, TypeError):
        raise Invalid("%s.columns do not cut its columns where they were written"
                      % name)
    indexcheck.columns(entry, names, groups, cols, name)
    lst = listing.Listing(entry["split"])
    lst.names = names
    for g in groups:
        lst.group_id(g)
    lst.group, lst.container, lst.size, lst.offset = cols
    lst.containers = [_KINDS[kind](_join(path, rel, base))
                      for path, rel, kind in entry["containers"]]
    lst.root = _join(entry["root"], entry["root_relative"], base)
    lst.inner_tars, lst.files_flat = entry["inner_tars"], entry["files_flat"]
    side = entry.get("side_files")
    lst.side_files = None if side is None else {k: tuple(v) for k, v in side.items()}
    return lst


def _describe(meta):
    if not meta:
        return "unknown"
    return ", ".join("%s=%s" % kv for kv in sorted(meta.items()))


def save(path, listings, source_stats, meta=None, base=None):
    """Write the index to `path` atomically (partial file, fsync, rename); its size."""
    data = dumps(listings, source_stats, meta, base)
    try:
        fsutil.atomic_write(path, data)
    except OSError as err:
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
