"""File-system helpers every writer shares: the hidden `.NAME.<host>.<pid>.partial`
file (named so that a run can tell its own partial files from those of other runs)
that is renamed into place only when complete, the one write-temp-fsync-rename helper
(`atomic_write`), discarding a file, and the one rule for archive member names that
could escape a directory."""

import contextlib
import os
import re
import socket

PARTIAL_SUFFIX = ".partial"


def host():
    """This machine's name as it appears in partial-file names (no dots lost)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname() or "host")


def run_tag():
    return "%s.%d" % (host(), os.getpid())


def partial_path(path, tag=None):
    """`.<name>.<host>.<pid>.partial` next to `path`."""
    d, name = os.path.split(path)
    return os.path.join(d, ".%s.%s.partial" % (name, tag or run_tag()))


def parse_partial(name):
    """(shard name, host, pid) of a partial file name; host/pid None for the
    unowned `.<name>.partial` of earlier versions; None if not a partial name."""
    if not (name.startswith(".") and name.endswith(".partial")):
        return None
    core = name[1:-len(".partial")]
    shard, _, owner = core.partition(".")
    h, _, pid = owner.rpartition(".")
    if not owner:
        return shard, None, None
    if not h or not pid.isdigit():
        return None
    return shard, h, int(pid)


def fsync_path(path):
    """Flush a closed file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(path):
    """Remove `path` if it is there; never raises."""
    try:
        os.remove(path)
    except OSError:
        pass


def atomic_write(path, data, sync=True):
    """Write `data` (bytes or str) to `path` through its partial file: written, flushed
    to disk (unless sync is False) and renamed into place, so that `path` is either the
    old file or the whole new one.  The partial file is removed on any error (OSError
    is re-raised for the caller to name the file and the fix)."""
    tmp = partial_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise


@contextlib.contextmanager
def partial_file(path, mode="wb", **open_args):
    """Write `path` through its partial file: yields the open partial file, renames it
    to `path` when the block ends normally, removes it when the block raises."""
    tmp = partial_path(path)
    try:
        with open(tmp, mode, **open_args) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def discard_partials(path):
    """Remove every partial file of `path` left by any earlier run (for writers that
    never share their output directory with a live run, e.g. metalhead/prepare.py)."""
    d, name = os.path.split(path)
    prefix = "." + name + "."
    try:
        entries = os.listdir(d or ".")
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.startswith(prefix) and entry.endswith(PARTIAL_SUFFIX):
            discard(os.path.join(d, entry))


def strip_dot_slash(name):
    """An archive member name without its leading './' (tar's relative prefix)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def escapes(name):
    """True when member `name` could land outside the directory it is unpacked into:
    an absolute or Windows-style path, or a '..' component."""
    return (name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":")
            or ".." in name.split("/"))


class Positioned:
    """A read-only, seekable file object over `_extent` bytes read with
    `pread(n, offset)`, at position `_pos`: what tarfile, gzip and pyarrow need of
    a tar window, a split tar or an object in a bucket."""

    def read(self, n=-1):
        if n is None or n < 0:
            n = self._extent - self._pos
        data = self.pread(n, self._pos)
        self._pos += len(data)
        return data

    def seek(self, pos, whence=0):
        base = {0: 0, 1: self._pos, 2: self._extent}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self):
        return self._pos

    def seekable(self):
        return True

    def readable(self):
        return True
