"""File-system helpers every writer shares: the hidden `.NAME.<host>.<pid>.partial`
file that is renamed into place only when complete (flushed to disk where that
matters), discarding it, and the one rule for archive member names that could escape
a directory."""

import contextlib
import os

PARTIAL_SUFFIX = ".partial"


def partial_path(path):
    """Where this process writes the unfinished version of `path`:
    `.NAME.<host>.<pid>.partial` beside it, so that a run can tell its own partial
    files from those of other runs (lock.remove_orphans)."""
    from ilsvrc.write import lock
    return lock.partial_path(path)


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
