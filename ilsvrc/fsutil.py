"""File-system helpers every writer shares: the hidden `.NAME.<host>.<pid>.partial`
file that is renamed into place only when complete, flushing it to disk, and
discarding it."""

import os


def partial_path(path):
    """Where this process writes the unfinished version of `path`:
    `.NAME.<host>.<pid>.partial` beside it, so that a run can tell its own partial
    files from those of other runs (lock.remove_orphans)."""
    from ilsvrc import lock
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
