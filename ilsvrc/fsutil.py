"""File-system helpers every writer shares: the hidden partial file
`.NAME.<host>.<pid>.<token>.partial` (named after the run that writes it, so that a
run can tell its own partial files from those of other runs) that is renamed into
place only when complete, the one write-temp-fsync-rename helper (`atomic_write`),
discarding a file, and the one rule for archive member names that could escape a
directory; and flock(2) on lock files that may be removed, and on directories."""

import contextlib
import errno
import fcntl
import os
import re
import socket
import time
from typing import NamedTuple, Optional

from ilsvrc.errors import UserError

PARTIAL_SUFFIX = ".partial"

_TOKEN = {}   # pid -> this process's run token
# .NAME.<host>.<pid>.<token>.partial (a host has no dots here, so NAME may have some)
_OWNED_NAME = re.compile(r"\.(?P<shard>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)"
                         r"\.(?P<token>r[0-9a-f]{12})\.partial")
# names of earlier versions: .NAME.<host>.<pid>.partial (dotted host), .NAME.partial
_OLD_NAME = re.compile(r"\.(?P<shard>[^.]+)\.(?P<host>.+)\.(?P<pid>\d+)\.partial")
_UNOWNED_NAME = re.compile(r"\.(?P<shard>[^.]+)\.partial")


_HOST = {}   # pid -> host(), asked of the system once per process


def host():
    """This machine's name as it appears in partial-file names (any character but
    letters, digits, '_' and '-' made '-', dots included)."""
    pid = os.getpid()
    if pid not in _HOST:   # a name is needed for every shard: ~70 us a system call
        _HOST[pid] = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname() or "host")
    return _HOST[pid]


def run_token():
    """A random token of this process, made once per process: two machines with the
    same host name (cloned VMs, containers) and even the same pid still differ."""
    pid = os.getpid()     # a forked child is another run: it makes its own
    if pid not in _TOKEN:
        _TOKEN[pid] = "r" + os.urandom(6).hex()
    return _TOKEN[pid]


def run_tag():
    """`<host>.<pid>.<token>`: this run in partial-file and owner-file names."""
    return "%s.%d.%s" % (host(), os.getpid(), run_token())


class Partial(NamedTuple):
    """What a partial file's name says: the final file's name and its owner (host,
    pid and token; token None for a name of an earlier version, all three None for
    the unowned `.NAME.partial` of still earlier ones)."""
    shard: str
    host: Optional[str]
    pid: Optional[int]
    token: Optional[str]

    @property
    def tag(self):
        """The owner as in its owner file's name, or None."""
        if self.host is None:
            return None
        return ".".join([self.host, str(self.pid)] + ([self.token] if self.token else []))


def partial_owner(name):
    """The Partial of file name `name`, or None if it is not a partial-file name this
    program (or an earlier version) makes."""
    for pattern in (_OWNED_NAME, _OLD_NAME, _UNOWNED_NAME):
        m = pattern.fullmatch(name)
        if m:
            d = m.groupdict()
            return Partial(d["shard"], d.get("host"),
                           int(d["pid"]) if d.get("pid") else None, d.get("token"))
    return None


def partial_path(path, tag=None):
    """`.<name>.<host>.<pid>.<token>.partial` next to `path` (`tag`: another run's
    `<host>.<pid>.<token>`)."""
    d, name = os.path.split(path)
    return os.path.join(d, ".%s.%s.partial" % (name, tag or run_tag()))


def parse_partial(name):
    """(shard name, host, pid) of a partial file name; host/pid None for the
    unowned `.<name>.partial` of earlier versions; None if not a partial name."""
    p = partial_owner(name)
    return None if p is None else (p.shard, p.host, p.pid)


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


# --------------------------------------------------------------------------- locks

CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class StaleLock(Exception):
    """A lock file was removed on another NFS client while it was being locked."""


def try_lock(fd, mode):
    """Take flock `mode` on `fd` without waiting: True, or False while another holds
    it.  StaleLock for a file removed on another NFS client; UserError when the file
    system has no locks."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        if err.errno == errno.ESTALE:
            raise StaleLock()
        raise UserError("cannot lock a file in the output directory (%s): the file "
                        "system does not support locks (an NFS mount without a lock "
                        "service?). Mount it with locking, or write to a local disk."
                        % (err.strerror or err))


def same_file(fd, path):
    """True while the open file `fd` is still the file named `path`."""
    try:
        st, fst = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def lock_file(path, mode, wait_s=0.0):
    """Open (or create) lock file `path` and flock it: the fd, or None while another
    holds it (after waiting up to wait_s).  A file removed between open and lock (by
    its last holder, `unlock_file`) is opened again, so lock files may be removed."""
    deadline = time.monotonic() + wait_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | CLOEXEC, 0o666)
        try:
            got = try_lock(fd, mode)
            if got and same_file(fd, path):
                return fd
        except StaleLock:
            got = True
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if not got:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def unlock_file(fd, path):
    """Close lock file `fd`, removing `path` first when no one else holds it."""
    try:
        if try_lock(fd, fcntl.LOCK_EX) and same_file(fd, path):
            os.remove(path)
    except (OSError, UserError, StaleLock):
        pass
    finally:
        os.close(fd)


def open_dir(path):
    """A read-only fd of directory `path` (to flock the directory itself)."""
    return os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | CLOEXEC)


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
