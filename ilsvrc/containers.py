"""One read interface for every place image bytes lie: a whole file, a slice of an
archive read in place (the release tars), or a member of a zip archive.

A container is a small picklable description (its kind and path) that travels with
the planned images to the workers; `Reader` opens it where the bytes are read.
Archives are opened once per process and kept open (checked against the file on
disk once per batch), so a worker opens the 155 GB Kaggle zip once, not per image.
"""

import os
import struct
import zlib

from ilsvrc.errors import UserError


def _short_read(path, offset, got, size):
    return UserError("%s: file ends at byte %d, inside a member that should run "
                     "to byte %d (truncated?). Get a complete copy of the file."
                     % (path, offset + got, offset + size))


def zip_damaged(path, what):
    """The error for a damaged Kaggle zip: what is wrong and how to get a good one."""
    return UserError("%s: %s. The download is incomplete or damaged: rerun "
                     "metalhead/download.sh to finish it." % (path, what))


class Container:
    """Where image bytes lie.  `read(handle, offset, size)` reads one image from a
    handle that `open()` returned; `identity()` names the container in a way that
    survives moving it (its base name and size)."""

    shared = True        # keep one open handle per process

    def __init__(self, path):
        self.path = path
        self._identity = None

    def __str__(self):
        return self.path

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.path)

    def __eq__(self, other):
        return type(self) is type(other) and self.path == other.path

    def __hash__(self):
        return hash((type(self).__name__, self.path))

    def __getstate__(self):
        return self.path

    def __setstate__(self, path):
        self.path, self._identity = path, None

    def identity(self):
        if self._identity is None:
            self._identity = (os.path.basename(self.path), os.path.getsize(self.path))
        return self._identity

    def open(self):
        return os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def close(self, handle):
        os.close(handle)


class File(Container):
    """An image that is a file of its own (an extracted tree): read whole."""

    shared = False

    def identity(self):
        return ()        # the image is named by its relpath alone

    def read(self, handle, offset, size):
        with open(self.path, "rb") as f:
            return f.read()


class Slices(Container):
    """An uncompressed archive (a release tar) whose members are read at their
    offsets."""

    def read(self, handle, offset, size):
        data = os.pread(handle, size, offset)
        if len(data) != size:
            raise _short_read(self.path, offset, len(data), size)
        return data


_LOCAL = b"PK\x03\x04"


class ZipMembers(Container):
    """A zip archive: `offset` is a member's local header, `size` its compressed size;
    a member is inflated if it is deflated and checked against its CRC-32."""

    def read(self, handle, offset, csize):
        path = self.path
        head = os.pread(handle, 30, offset)
        if len(head) < 30 or head[:4] != _LOCAL:
            raise zip_damaged(path, "no member header at byte %d" % offset)
        flags, method, _, _, crc = struct.unpack_from("<HHHHI", head, 6)
        nlen, xlen = struct.unpack_from("<HH", head, 26)
        raw = os.pread(handle, csize, offset + 30 + nlen + xlen)
        if len(raw) < csize:
            raise zip_damaged(path, "truncated inside the member at byte %d" % offset)
        if method == 0:
            data = raw
        elif method == 8:
            try:
                data = zlib.decompress(raw, -15)
            except zlib.error as err:
                raise zip_damaged(path, "member at byte %d does not inflate (%s)"
                                  % (offset, err))
        else:
            raise UserError("%s: member at byte %d uses compression method %d; only "
                            "stored and deflated members are supported"
                            % (path, offset, method))
        if not flags & 0x08 and zlib.crc32(data) != crc:
            raise zip_damaged(path, "CRC mismatch in the member at byte %d" % offset)
        return data


_OPEN = {}   # container -> (what the file on disk was, handle): this process's archives
_KEEP_OPEN = 8


def _shared_handle(container):
    st = os.stat(container.path)
    seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    held = _OPEN.get(container)
    if held is not None and held[0] == seen:
        return held[1]
    if held is not None:
        container.close(held[1])
        del _OPEN[container]
    handle = container.open()
    if held is None and len(_OPEN) >= _KEEP_OPEN:          # oldest first
        old = next(iter(_OPEN))
        old.close(_OPEN.pop(old)[1])
    _OPEN[container] = (seen, handle)
    return handle


class Reader:
    """Reads the images of one batch (a shard, an extraction job).  Archives are
    looked up once per batch and stay open for the process's life; use as a context
    manager or call close() at the end of the batch."""

    def __init__(self):
        self._handles = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._handles = {}

    def _handle(self, container):
        handle = self._handles.get(container)
        if handle is None:
            handle = self._handles[container] = _shared_handle(container)
        return handle

    def prefetch(self, container, offset, size):
        """Hint that these bytes of an archive read in place will be read soon
        (POSIX_FADV_WILLNEED: the kernel queues the read and returns); a no-op for
        other containers and where the hint does not exist."""
        if type(container) is not Slices or size <= 0 or \
                not hasattr(os, "posix_fadvise"):
            return
        try:
            os.posix_fadvise(self._handle(container), offset, size,
                             os.POSIX_FADV_WILLNEED)
        except OSError:
            pass          # the read itself will report a real problem

    def read(self, container, offset, size):
        if not container.shared:
            return container.read(None, offset, size)
        return container.read(self._handle(container), offset, size)
