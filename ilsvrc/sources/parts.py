"""Release tars published byte-split (`NAME.001`, `NAME.002`, ... or from `.000`, any
fixed width of two digits or more, as `split -d` writes them): finding the parts of a
tar and reading their concatenation in place as one file.

A split tar keeps its logical path (DIR/ILSVRC2012_img_train.tar), which does not
exist on disk: everything that names the tar as a whole uses it, and errors about
bytes (a short read, a damaged header) name the part and the byte within it.
Nothing is copied or joined on disk.
"""

import bisect
import collections
import os
import re
import stat
import threading

from ilsvrc.errors import UserError
from ilsvrc.fsutil import Positioned

_NUMBERED = re.compile(r"\.(\d{2,})$")
MAX_OPEN = 8          # parts of one split tar held open at once (least recently used go)
FIX = "Download the missing or damaged part again."


def numbered(directory, name):
    """[(number, width, path)] of the files `name`.<2+ digits> in `directory`."""
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    out = []
    for entry in entries:
        if entry.startswith(name + "."):
            m = _NUMBERED.match(entry, len(name))
            if m:
                digits = m.group(1)
                out.append((int(digits), len(digits), os.path.join(directory, entry)))
    return sorted(out)


def part_range(paths):
    """'DIR/NAME.001-.012' for an ordered list of part paths."""
    if len(paths) == 1:
        return paths[0]
    return "%s-%s" % (paths[0], paths[-1][paths[-1].rfind("."):])


def order(found, whole):
    """The paths of `found` ((number, width, path), sorted) as the parts of `whole`,
    in order; UserError for mixed widths, a missing first part, a gap, or a part that
    is empty or not a regular file."""
    widths = sorted({w for _, w, _ in found})
    if len(widths) > 1:
        a = next(p for _, w, p in found if w == widths[0])
        b = next(p for _, w, p in found if w == widths[1])
        raise UserError("%s and %s number the parts of %s with different widths: two "
                        "sets of parts are mixed. Keep one set." % (a, b, whole))
    width, first = widths[0], found[0][0]
    if first > 1:
        raise UserError("%s.%0*d is missing: the parts of %s start at %s. %s"
                        % (whole, width, 1, whole, found[0][2], FIX))
    for (num, _, path), (nxt, _, _) in zip(found, found[1:]):
        if nxt != num + 1:
            raise UserError("%s.%0*d is missing: the parts of %s jump from %s to %s. %s"
                            % (whole, width, num + 1, whole, path, whole + ".%0*d"
                               % (width, nxt), FIX))
    for _, _, path in found:
        try:
            st = os.stat(path)
        except OSError as err:
            raise UserError("cannot read %s: %s" % (path, err.strerror))
        if not stat.S_ISREG(st.st_mode):
            raise UserError("%s is not a regular file (a part of %s)" % (path, whole))
        if st.st_size == 0:
            raise UserError("%s is empty (0 bytes): that part of %s did not download. "
                            "%s" % (path, whole, FIX))
    return [p for _, _, p in found]


def find(whole):
    """The parts of the local tar `whole` (its path as if it were one file), in
    order; [] when there are none.  UserError when both the tar and parts of it are
    there, or the parts are not a clean sequence (see `order`)."""
    found = numbered(os.path.dirname(whole), os.path.basename(whole))
    if not found:
        return []
    if os.path.lexists(whole):
        raise UserError("both %s and its parts %s are there: keep either the whole tar "
                        "or its parts, and remove the other."
                        % (whole, part_range([p for _, _, p in found])))
    return order(found, whole)


def present(whole):
    """True when the tar `whole` is there, as one file or as parts (UserError for
    parts that are not a clean sequence)."""
    return bool(find(whole)) or os.path.isfile(whole)


def stamps(paths):
    """(dev, inode, size, mtime_ns) of each path: what the files on disk are."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class Joined(Positioned):
    """The parts of a split tar as one read-only file: read/seek/tell,
    pread(n, offset), size, as tarindex reads a tar (and remote.RemoteFile).  Parts
    are opened when first read and at most MAX_OPEN stay open; safe to share
    between threads."""

    def __init__(self, whole, paths=None):
        self.path = whole
        self.parts = list(paths) if paths is not None else find(whole)
        if not self.parts:
            raise UserError("missing %s (no parts of it either)" % whole)
        self.stamp = stamps(self.parts)
        self.sizes = [s[2] for s in self.stamp]
        self.starts = [0]
        for size in self.sizes:
            self.starts.append(self.starts[-1] + size)
        self.size = self.starts[-1]
        self._open = collections.OrderedDict()
        self._lock = threading.Lock()
        self._pos = 0

    # ---------------------------------------------------------------- where

    def part_of(self, offset):
        """(index of the part holding byte `offset`, offset within that part); an
        offset at or past the end falls in the last part."""
        k = min(bisect.bisect_right(self.starts, offset) - 1, len(self.parts) - 1)
        return k, offset - self.starts[k]

    def where(self, offset):
        """'DIR/NAME.007 byte N': byte `offset` of the whole, named for a user."""
        k, inner = self.part_of(offset)
        return "%s byte %d" % (self.parts[k], inner)

    @property
    def last(self):
        return self.parts[-1]

    def first_hint(self):
        """Why a split tar may not start with a tar header: a part is missing before
        its first one."""
        return ("%s, the first part found, does not start a tar: is a part before it "
                "missing (or is it not a part of %s)?" % (self.parts[0], self.path))

    def incomplete(self, what):
        """The error for a split tar that ends too soon: its last part is short (or
        parts after it are missing)."""
        return UserError("%s (the last of the %d parts of %s, %d bytes): %s. The copy "
                         "is incomplete: download %s again (and any parts after it)."
                         % (self.last, len(self.parts), self.path, self.sizes[-1], what,
                            os.path.basename(self.last)))

    # ---------------------------------------------------------------- reads

    def _fd(self, k):
        with self._lock:
            fd = self._open.get(k)
            if fd is not None:
                self._open.move_to_end(k)
                return fd
            try:
                fd = os.open(self.parts[k], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as err:
                raise UserError("cannot open %s: %s" % (self.parts[k], err.strerror))
            self._open[k] = fd
            while len(self._open) > MAX_OPEN:
                os.close(self._open.popitem(last=False)[1])
            return fd

    def pread(self, n, offset):
        """Up to n bytes at `offset` of the whole; fewer only at its end, or where a
        part is shorter on disk than when it was found."""
        n = max(0, min(n, self.size - offset))
        chunks = []
        while n > 0:
            k, inner = self.part_of(offset)
            want = min(n, self.sizes[k] - inner)
            data = os.pread(self._fd(k), want, inner)
            chunks.append(data)
            if len(data) < want:
                break
            n -= want
            offset += want
        return b"".join(chunks)

    def advise(self, offset, size):
        """POSIX_FADV_WILLNEED for bytes [offset, offset+size) of the whole."""
        end = min(offset + size, self.size)
        while offset < end:
            k, inner = self.part_of(offset)
            length = min(end - offset, self.sizes[k] - inner)
            os.posix_fadvise(self._fd(k), inner, length, os.POSIX_FADV_WILLNEED)
            offset += length

    @property
    def _extent(self):
        return self.size

    def close(self):
        with self._lock:
            while self._open:
                os.close(self._open.popitem()[1])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
