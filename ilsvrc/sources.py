"""Where images are read from: the release tars in place, or an extracted tree.

A source yields a `Listing` per split: for every image its name, its group (the
synset directory for training images, '' for the flat validation set) and where its
bytes are (a file, an offset, a size).  Nothing here holds image bytes.  Tar members
are indexed by offset from their headers only (the outer training tar's 1000 inner
tars are indexed in parallel by the worker pool) and read later with os.pread.

Member rules, same as the upstream globs: training images are `*.JPEG` members at the
top of each inner `<synset>.tar` (the synset is the inner tar's name without `.tar`),
validation images are `*.JPEG` members at the top of the validation tar.  Other
members are ignored.  Links, absolute names and names with `..` are refused, as are
duplicates and members that run past the end of the file.
"""

import fnmatch
import os
import stat
import tarfile
from array import array

from ilsvrc.errors import UserError

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
IMAGE_PATTERN = "*.JPEG"


class ZipArchive(str):
    """A path known to be a zip archive: image offsets are local-header offsets and
    sizes are compressed sizes (read_at hands such members to ilsvrc.kaggle)."""

    __slots__ = ()


class Listing:
    """Images of one split, in columns: names, groups and locations."""

    def __init__(self, split):
        self.split = split
        self.names = []
        self.group_names = []
        self._group_ids = {}
        self.group = array("I")
        self.container = array("i")   # index into .containers, -1 = own file
        self.offset = array("Q")
        self.size = array("q")        # -1 = whole file
        self.containers = []          # tar paths
        self.inner_tars = False       # members sit in '<group>.tar' inside the container
        self.root = None              # tree sources: directory holding the images
        self.files_flat = False       # tree sources: files at root/<name> whatever the group

    def __len__(self):
        return len(self.names)

    def group_id(self, group):
        gid = self._group_ids.get(group)
        if gid is None:
            gid = self._group_ids[group] = len(self.group_names)
            self.group_names.append(group)
        return gid

    def add(self, name, group, container=-1, offset=0, size=-1):
        self.names.append(name)
        self.group.append(self.group_id(group))
        self.container.append(container)
        self.offset.append(offset)
        self.size.append(size)

    def like(self):
        """An empty listing of the same split that reads from the same places."""
        other = Listing(self.split)
        other.containers, other.root = self.containers, self.root
        other.inner_tars, other.files_flat = self.inner_tars, self.files_flat
        return other

    def group_of(self, i):
        return self.group_names[self.group[i]]

    def relpath(self, i):
        g = self.group_of(i)
        return g + "/" + self.names[i] if g else self.names[i]

    def locate(self, i):
        """(path, offset, size, where) for reading image i; `where` names it for errors."""
        c = self.container[i]
        if c < 0:
            path = os.path.join(self.root,
                                self.names[i] if self.files_flat else self.relpath(i))
            return path, 0, -1, path
        inner = self.group_of(i) + ".tar/" if self.inner_tars else ""
        where = "%s: %s%s" % (self.containers[c], inner, self.names[i])
        return self.containers[c], self.offset[i], self.size[i], where


def _short_read(path, offset, got, size):
    return UserError("%s: file ends at byte %d, inside a member that should run "
                     "to byte %d (truncated?). Get a complete copy of the file."
                     % (path, offset + got, offset + size))


def read_at(path, offset, size):
    """Bytes of one image: a whole file (size -1), a slice of a tar, or a zip member."""
    if isinstance(path, ZipArchive):
        from ilsvrc import kaggle
        return kaggle.read_member(path, offset, size)
    with open(path, "rb") as f:
        if size < 0:
            return f.read()
        data = os.pread(f.fileno(), size, offset)
    if len(data) != size:
        raise _short_read(path, offset, len(data), size)
    return data


class Reader:
    """`read_at` for a batch of images (one shard): each tar is opened once per
    batch, not once per image.  Use as a context manager; closes what it opened."""

    def __init__(self):
        self._fds = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def read(self, path, offset, size):
        if size < 0 or type(path) is not str:   # whole files, other containers
            return read_at(path, offset, size)
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise _short_read(path, offset, len(data), size)
        return data


# --------------------------------------------------------------------------- tar files

class _Window:
    """A read-only file object over bytes [start, start+length) of an open file."""

    def __init__(self, f, start, length):
        self._f, self._start, self._len, self._pos = f, start, length, 0

    def read(self, n=-1):
        left = self._len - self._pos
        n = left if n is None or n < 0 else min(n, left)
        data = os.pread(self._f.fileno(), n, self._start + self._pos) if n > 0 else b""
        self._pos += len(data)
        return data

    def seek(self, pos, whence=0):
        base = {0: 0, 1: self._pos, 2: self._len}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self):
        return self._pos

    def seekable(self):
        return True

    def readable(self):
        return True


def _clean_name(name, where):
    """Member name without a leading './'; refuse names that could escape a directory."""
    while name.startswith("./"):
        name = name[2:]
    if name.startswith("/") or ".." in name.split("/"):
        raise UserError("%s: member '%s' has an absolute path or '..'; refusing to read "
                        "an archive that writes outside its directory." % (where, name))
    return name


def scan_tar(fileobj, where, total_size, want):
    """Yield (name, data_offset, size) of regular top-level members matching `want`.

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
            if not info.isreg() or info.sparse is not None:
                continue
            if "/" in name or not fnmatch.fnmatchcase(name, want):
                continue
            if info.offset_data + info.size > total_size:
                raise UserError("%s: truncated: member '%s' runs past the end of the "
                                "file. Get a complete copy." % (where, name))
            if name in seen:
                raise UserError("%s: member '%s' appears twice; the archive is not a "
                                "clean release copy." % (where, name))
            seen.add(name)
            yield name, info.offset_data, info.size
        end = tar.offset
    except tarfile.TarError as err:
        raise UserError("%s: not a readable tar file (%s). Get a complete copy."
                        % (where, err))
    fileobj.seek(end)
    if fileobj.read(1024) != bytes(1024):
        raise UserError("%s: truncated: the archive has no end-of-archive marker. Get "
                        "a complete copy." % where)


def _open_tar_file(path):
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
        members = [(name, start + off, size) for name, off, size in
                   scan_tar(_Window(f, start, length), where, length, IMAGE_PATTERN)]
    if not members:
        raise UserError("%s: holds no *.JPEG images (empty class tar). Get a complete "
                        "copy of %s." % (where, os.path.basename(path)))
    return members


def index_train_tar(path, runner):
    """Listing of the training tar: outer members `<synset>.tar`, each indexed in place."""
    listing = Listing("train")
    with _open_tar_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        inner = list(scan_tar(_Window(f, 0, size), path, size, "*.tar"))
    if not inner:
        raise UserError("%s holds no <synset>.tar members; is it the ILSVRC2012 "
                        "training tar?" % path)
    jobs = [(path, name, off, length) for name, off, length in inner]
    results = {}
    for job, members in runner.run(_index_inner, jobs):
        results[job[1]] = members
    listing.containers = [path]
    listing.inner_tars = True
    for name, _, _ in inner:                  # keep the tar's own order
        group = name[:-len(".tar")]
        for member, off, length in results[name]:
            listing.add(member, group, 0, off, length)
    return listing


def index_flat_tar(path, split="validation"):
    """Listing of a flat tar of `*.JPEG` members (the validation tar)."""
    listing = Listing(split)
    with _open_tar_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        for name, off, length in scan_tar(_Window(f, 0, size), path, size, IMAGE_PATTERN):
            listing.add(name, "", 0, off, length)
    listing.containers = [path]
    return listing


# --------------------------------------------------------------------------- trees

def _jpegs_in(directory):
    """Names in `directory` matching *.JPEG (dot-files included, like tf glob)."""
    try:
        entries = list(os.scandir(directory))
    except OSError as err:
        raise UserError("cannot list %s: %s" % (directory, err.strerror))
    return [e.name for e in entries
            if fnmatch.fnmatchcase(e.name, IMAGE_PATTERN) and e.is_file()]


def list_tree_train(train_dir):
    """`train/*/*.JPEG`: one level of class directories, any name."""
    listing = Listing("train")
    listing.root = train_dir
    try:
        subdirs = [e.name for e in os.scandir(train_dir) if e.is_dir()]
    except OSError as err:
        raise UserError("cannot list %s: %s" % (train_dir, err.strerror))
    for group in subdirs:
        for name in _jpegs_in(os.path.join(train_dir, group)):
            listing.add(name, group)
    return listing


def list_tree_flat(directory, split="validation"):
    """`validation/*.JPEG`: a flat directory of images."""
    listing = Listing(split)
    listing.root = directory
    for name in _jpegs_in(directory):
        listing.add(name, "")
    return listing
