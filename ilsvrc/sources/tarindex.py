"""Indexing the release tars by offset: members found from their headers only, read
later in place.

The outer training tar's 1000 inner tars are indexed in parallel by the worker pool.
Member rules, same as the upstream globs: training images are `*.JPEG` members at the
top of each inner `<synset>.tar` (the synset is the inner tar's name without `.tar`),
validation images are `*.JPEG` members at the top of the validation tar.  Anything
else is refused rather than ignored (ilsvrc.contract: nothing drops silently): other
members, members in sub-folders, sparse members, non-synset inner tars, links,
absolute names and names with `..`, duplicates and members that run past the end of
the file.  A tar published in parts (ilsvrc/sources/parts.py) is read through them in
place; its truncation and damage are reported at the part and the byte within it.
"""

import fnmatch
import os
import stat
import tarfile
from concurrent.futures import ThreadPoolExecutor

from ilsvrc import contract, fsutil, storage
from ilsvrc.fsutil import Positioned
from ilsvrc.progress import Progress
from ilsvrc.sources.containers import Slices
from ilsvrc.errors import UserError
from ilsvrc.sources.listing import IMAGE_PATTERN, Listing
from ilsvrc.sources import parts, remote

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
# Indexing a tar in a bucket: N = stream it in reads of N bytes (default 8 MB: one
# pass, ~1 request per 8 MB; cheaper than header reads in bench/gcs.py and in
# requests), 0 = one exact ranged read per member header (~1 request per image).
# The outer training tar is always walked by header reads (1,000 inner tars).
TAR_READ_BLOCK = int(os.environ.get("ILSVRC_GS_INDEX_BLOCK", str(8 << 20)))


class _Window(Positioned):
    """A read-only file object over bytes [start, start+length) of an open file."""

    def __init__(self, f, start, length):
        self._f, self._start, self._len, self._pos = f, start, length, 0

    def read(self, n=-1):
        left = self._len - self._pos
        n = left if n is None or n < 0 else min(n, left)
        data = _pread(self._f, n, self._start + self._pos) if n > 0 else b""
        self._pos += len(data)
        return data

    @property
    def _extent(self):
        return self._len

    def joined(self):
        """The split tar under this window, else None."""
        return self._f if isinstance(self._f, parts.Joined) else None

    def reaches_end(self):
        return self._start + self._len >= _size(self._f)


def _truncated(fileobj, where, what):
    """The archive read through `fileobj` ends too soon: for a split tar whose window
    runs to its end, that is its last part."""
    joined = getattr(fileobj, "joined", lambda: None)()
    if joined is not None and fileobj.reaches_end():
        return joined.incomplete("truncated: %s" % what)
    return UserError("%s: truncated: %s. Get a complete copy." % (where, what))


def _at(fileobj, pos):
    """' at DIR/NAME.007 byte N' for position `pos` of a window over a split tar."""
    joined = getattr(fileobj, "joined", lambda: None)()
    return "" if joined is None else " at %s" % joined.where(fileobj._start + pos)


def _unreadable(fileobj, where, err):
    """tarfile refused the archive; for a split tar, say at which part and byte."""
    joined = getattr(fileobj, "joined", lambda: None)()
    if joined is None:
        return UserError("%s: not a readable tar file (%s). Get a complete copy."
                         % (where, err))
    pos = fileobj._start + fileobj.tell()
    if pos <= 512:
        return UserError("%s: not a readable tar file (%s). %s"
                         % (where, err, joined.first_hint()))
    return UserError("%s: not a readable tar file (%s) at %s. %s"
                     % (where, err, joined.where(pos), parts.FIX))


def _no_end_marker(fileobj, where, end, total_size):
    """No end-of-archive marker where the members stop: truncated, or (a split tar,
    bytes left) a damaged header, named at its part and byte."""
    if end + 1024 > total_size or not _at(fileobj, end):
        return _truncated(fileobj, where, "the archive has no end-of-archive marker")
    return UserError("%s: no tar header or end-of-archive marker%s (damaged part?). %s"
                     % (where, _at(fileobj, end), parts.FIX))


def _clean_name(name, where):
    """Member name without a leading './'; refuse names that could escape a directory."""
    name = fsutil.strip_dot_slash(name)
    if fsutil.escapes(name):
        raise UserError("%s: member '%s' has an absolute path or '..'; refusing to read "
                        "an archive that writes outside its directory." % (where, name))
    return name


_HOLDS = {"*.tar": "only <synset>.tar class tars", IMAGE_PATTERN: "only *.JPEG images"}


def _check_member(info, name, where, want):
    """Every member is either what the release tar holds or refused, never skipped."""
    holds = _HOLDS.get(want, "only %s members" % want)
    if info.sparse is not None or info.type == tarfile.GNUTYPE_SPARSE:
        raise UserError("%s: member '%s' is stored sparse (tar -S); sparse members cannot "
                        "be read in place. Repack it without -S (or use the original "
                        "release tar)." % (where, name))
    if not info.isreg():
        raise UserError("%s: member '%s' is not a regular file; the release tar holds %s. "
                        "Use the original release tar." % (where, name, holds))
    if "/" in name:
        raise UserError("%s: member '%s' is in a sub-folder, but the release tar holds %s "
                        "at its top level (re-packed?). Use the original release tar, or "
                        "extract it and convert the directory." % (where, name, holds))
    if not fnmatch.fnmatchcase(name, want):
        raise UserError("%s: member '%s' is not part of the release: the tar holds %s. "
                        "Remove it from the tar (or use the original release tar)."
                        % (where, name, holds))
    if want == IMAGE_PATTERN:
        contract.check_member_size(info.size, "%s: member '%s'" % (where, name))


def scan_tar(fileobj, where, total_size, want):
    """Yield (name, data_offset, size) of the members: regular, top-level, matching
    `want` (directory entries aside, anything else is refused, see _check_member).

    Offsets are relative to the start of `fileobj`.  Raises UserError for unsafe,
    duplicate or truncated members and for a missing end-of-archive marker.
    """
    seen = set()
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:")
        for info in tar:
            name = _clean_name(info.name, where)
            if info.isdir():
                continue
            if info.issym() or info.islnk():
                raise UserError("%s: member '%s' is a link; refusing it (a release tar "
                                "holds plain files only)." % (where, name))
            _check_member(info, name, where, want)
            if info.offset_data + info.size > total_size:
                raise _truncated(fileobj, where, "member '%s' runs past the end of the "
                                 "file" % name)
            if name in seen:
                raise UserError("%s: member '%s' appears twice; the archive is not a "
                                "clean release copy." % (where, name))
            seen.add(name)
            yield name, info.offset_data, info.size
        end = tar.offset
    except tarfile.TarError as err:
        raise _unreadable(fileobj, where, err)
    fileobj.seek(end)
    if fileobj.read(1024) != bytes(1024):
        raise _no_end_marker(fileobj, where, end, total_size)


def _pread(f, n, offset):
    pread = getattr(f, "pread", None)   # remote.RemoteFile: a tar in a bucket
    return pread(n, offset) if pread else os.pread(f.fileno(), n, offset)


def _size(f):
    return f.size if hasattr(f, "pread") else os.fstat(f.fileno()).st_size


def _container(path):
    """How the workers read this tar's members: in place, from disk or a bucket."""
    return remote.ObjectSlices(path) if storage.is_remote(path) else Slices(path)


def _open_tar_file(path, block=None):
    if storage.is_remote(path):
        return remote.RemoteFile(path, block=TAR_READ_BLOCK if block is None else block)
    found = [] if os.path.lexists(path) else parts.find(path)
    if found:
        return parts.Joined(path, found)
    try:
        f = open(path, "rb")
    except OSError as err:
        raise UserError("cannot open %s: %s" % (path, err.strerror))
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise UserError("%s is not a regular file" % path)
    return f


def _index_inner(job):
    """Worker: index one inner tar of the training tar."""
    path, inner_name, start, length = job
    where = "%s: %s" % (path, inner_name)
    with _open_tar_file(path) as f:
        if hasattr(f, "limit"):
            f.limit = start + length   # read ahead within this inner tar only
        members = [(name, start + off, size) for name, off, size in
                   scan_tar(_Window(f, start, length), where, length, IMAGE_PATTERN)]
    if not members:
        raise UserError("%s: holds no *.JPEG images (empty class tar). Get a complete "
                        "copy of %s." % (where, os.path.basename(path)))
    return members


# Inner tars indexed at once by each worker, on threads: reading a tar's headers is a
# chain of small reads that each wait on the disk, so several chains at a time keep
# it busy when the tars are not in the page cache.
INDEX_THREADS = 8


def _index_batch(batch):
    """Worker: index a few inner tars concurrently; their member lists, in order."""
    if len(batch) == 1:
        return [_index_inner(batch[0])]
    with ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix="index") as ex:
        return list(ex.map(_index_inner, batch))


def _class_tars(path, log):
    """[(name, offset, size)] of the training tar's class tars, found by walking its
    headers (in a bucket, one ranged read each: progress through the tar's bytes)."""
    with _open_tar_file(path, block=0) as f:
        size = _size(f)
        progress = Progress(size, "listing the class tars of %s" % os.path.basename(path),
                            stream=log, unit="bytes")
        inner = []
        for name, off, length in scan_tar(_Window(f, 0, size), path, size, "*.tar"):
            inner.append((name, off, length))
            progress.update(off + length - progress.done)
        progress.finish(always=False)
    return inner


def index_train_tar(path, runner, log=None):
    """Listing of the training tar: outer members `<synset>.tar`, each indexed in
    place; a progress line (class tars done, ETA) every few seconds on `log`
    (stderr)."""
    listing = Listing("train")
    inner = _class_tars(path, log)
    if not inner:
        raise UserError("%s holds no <synset>.tar members; is it the ILSVRC2012 "
                        "training tar?" % path)
    for name, _, _ in inner:
        contract.check_class_name(name[:-len(".tar")], "%s: %s" % (path, name))
    jobs = [(path, name, off, length) for name, off, length in inner]
    batches = [jobs[i:i + INDEX_THREADS] for i in range(0, len(jobs), INDEX_THREADS)]
    results = {}
    progress = Progress(len(jobs), "indexing %s" % os.path.basename(path), stream=log,
                        unit="class tars")
    for batch, lists in runner.run(_index_batch, batches):
        for job, members in zip(batch, lists):
            results[job[1]] = members
        progress.update(len(batch))
    progress.finish()
    listing.containers = [_container(path)]
    listing.inner_tars = True
    for name, _, _ in inner:                  # keep the tar's own order
        group = name[:-len(".tar")]
        for member, off, length in results[name]:
            listing.add(member, group, 0, off, length)
    return listing


def index_flat_tar(path):
    """Listing of a flat tar of `*.JPEG` members (the validation tar)."""
    listing = Listing("validation")
    with _open_tar_file(path) as f:
        size = _size(f)
        for name, off, length in scan_tar(_Window(f, 0, size), path, size, IMAGE_PATTERN):
            listing.add(name, "", 0, off, length)
    listing.containers = [_container(path)]
    return listing


