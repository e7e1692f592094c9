"""Reading the bytes of one image from where it lies: a whole file, a slice of a tar,
or a member of a zip archive."""

import os

from ilsvrc.errors import UserError


class ZipArchive(str):
    """A path known to be a zip archive: image offsets are local-header offsets and
    sizes are compressed sizes (read_at hands such members to ilsvrc.kagglezip)."""

    __slots__ = ()


def _short_read(path, offset, got, size):
    return UserError("%s: file ends at byte %d, inside a member that should run "
                     "to byte %d (truncated?). Get a complete copy of the file."
                     % (path, offset + got, offset + size))


def read_at(path, offset, size):
    """Bytes of one image: a whole file (size -1), a slice of a tar, or a zip member."""
    if isinstance(path, ZipArchive):
        from ilsvrc import kagglezip
        return kagglezip.read_member(path, offset, size)
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
