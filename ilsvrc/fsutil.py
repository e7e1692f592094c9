"""File-system helpers every writer shares: the hidden `.NAME.partial` file that is
renamed into place only when complete, flushing it to disk, and discarding it."""

import os


def partial_path(path):
    """Where the unfinished version of `path` is written: `.NAME.partial` beside it."""
    d, name = os.path.split(path)
    return os.path.join(d, "." + name + ".partial")


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
