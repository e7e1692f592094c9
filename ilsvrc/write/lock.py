"""Who may write an output directory: the run lock (an ordinary run alone, or the
tasks of one plan together), partial-file names that say which run owns them, and
the removal of partial files no live run can own.

Locks are flock(2) locks on `.ilsvrc-run.lock` in each output directory, taken
without waiting: an ordinary run holds it exclusively, a task shares it with the
other tasks.  The kernel (or the NFS server) drops a lock when its holder dies, so
kill -9 never leaves a directory stuck; the file's content only names the last
holders for the message.  `.ilsvrc-plan.lock` serialises the few milliseconds in
which a starting run takes the run lock and checks or records the plan, so two
tasks of different plans cannot both start on an empty directory.  On NFS, Linux
turns flock into NFS byte-range locks that every client sees (NFSv4, or NFSv3
with lockd); a mount with `nolock` or `local_lock=flock|all` makes them local to
each machine.

Partial files are `.<shard>.<host>.<pid>.partial` (the main process's pid), and
every run holds an exclusive lock on its own `.ilsvrc-owner.<host>.<pid>.lock` while
it runs.  A run removes its own partial files and those whose owner is provably
gone: the owner's lock file is missing or can be locked (its holder died), or the
owner is on this host and its pid is not alive.  So a rerun after kill -9, or a
retried pod on another node, cleans up after the dead run and never touches the
files of a live one.
"""

import errno
import fcntl
import os
import time

from ilsvrc.errors import UserError
from ilsvrc.fsutil import host, parse_partial, run_tag

RUN_LOCK = ".ilsvrc-run.lock"
PLAN_LOCK = ".ilsvrc-plan.lock"
OWNER_LOCK = ".ilsvrc-owner.%s.lock"
PLAN_WAIT_S = 120


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # exists, owned by someone else
    return True


def _owner_gone(directory, h, p, dead):
    """True if the run host h, pid p can own nothing any more.  `dead` caches the
    answer and holds the locks taken on dead owners' files until the caller ends."""
    tag = "%s.%d" % (h, p)
    if tag in dead:
        return dead[tag] is not None
    if h == host() and p != os.getpid() and not _alive(p):
        dead[tag] = ()
        return True
    if h == host() and p == os.getpid():
        dead[tag] = ()     # an earlier life of this pid (container restart)
        return True
    path = os.path.join(directory, OWNER_LOCK % tag)
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        dead[tag] = ()     # never ran with owner files, or ended
        return True
    except OSError:
        dead[tag] = None
        return False
    if _try(fd, fcntl.LOCK_EX):
        dead[tag] = (fd, path)
        return True
    os.close(fd)
    dead[tag] = None
    return False


def remove_orphans(directory, prefix, alone=None):
    """Remove partial files of shards `prefix-*` in `directory` whose owner is gone
    (see the module docstring); return how many partial files of live runs were
    left.  Never touches finished shards.  (`alone` is accepted for callers that
    know no other run holds the directory; the rule does not need it.)"""
    dead, kept = {}, 0
    try:
        for entry in os.scandir(directory):
            parsed = parse_partial(entry.name)
            if parsed is None or not parsed[0].startswith(prefix + "-"):
                continue
            _, h, p = parsed
            if h is None or _owner_gone(directory, h, p, dead):
                try:
                    os.remove(entry.path)
                except FileNotFoundError:
                    pass
            else:
                kept += 1
    finally:
        for held in dead.values():
            if held:
                fd, path = held
                try:
                    os.remove(path)     # a dead run's owner file
                except OSError:
                    pass
                os.close(fd)
    return kept


# --------------------------------------------------------------------------- locks

def _open(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    return fd


def _try(fd, mode):
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise UserError("cannot lock a file in the output directory (%s): the file "
                        "system does not support locks (an NFS mount without a lock "
                        "service?). Mount it with locking, or write to a local disk."
                        % (err.strerror or err))


def _holders(fd):
    try:
        data = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [x.strip() for x in data.splitlines() if x.strip()]
    return "; ".join(lines[-3:]) if lines else "holder unknown"


_OWNED = {}   # owner lock file -> [fd, claims of this process using it]


def _hold_owner(d):
    """Hold this process's owner lock file in `d` (shared by its claims there)."""
    path = os.path.join(d, OWNER_LOCK % run_tag())
    held = _OWNED.get(path)
    if held is None:
        try:
            fd = _open(path)
        except OSError as err:
            raise UserError("cannot create %s: %s" % (path, err.strerror or err))
        if not _try(fd, fcntl.LOCK_EX):
            os.close(fd)
            raise InUse("%s is locked by another run with this host name and pid "
                        "(the same host name on two machines?)" % path)
        held = _OWNED[path] = [fd, 0]
    held[1] += 1
    return path


def _drop_owner(path):
    held = _OWNED.get(path)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _OWNED[path]
        try:
            os.remove(path)   # while still locked: nobody takes the run for dead
        except OSError:
            pass
        os.close(held[0])


class InUse(UserError):
    """The directory is being written by a run that may not share it."""


class Claim:
    """The run locks of a set of output directories, for the duration of a run.

    claim = Claim(dirs, shared, note)      # takes plan + run locks, or InUse
    claim.alone[d]                         # no other run holds d
    claim.ready()                          # after the plan checks: drop plan locks
    claim.release()
    """

    def __init__(self, directories, shared, note):
        self.shared = shared
        self.alone = {}
        self.holders = {}
        self._run, self._plan, self._owner = {}, {}, {}
        try:
            for d in sorted(set(directories)):
                self._take(d, note)
        except BaseException:
            self.release()
            raise

    def _take(self, d, note):
        try:
            os.makedirs(d, exist_ok=True)
            plan_fd = self._plan[d] = _open(os.path.join(d, PLAN_LOCK))
            deadline = time.monotonic() + PLAN_WAIT_S
            while not _try(plan_fd, fcntl.LOCK_EX):
                if time.monotonic() > deadline:
                    raise InUse("%s: another run has been starting for %d s (it holds "
                                "%s); if none is running, the file system's locks are "
                                "stuck: check the NFS lock service."
                                % (d, PLAN_WAIT_S, PLAN_LOCK))
                time.sleep(0.05)
            run_fd = self._run[d] = _open(os.path.join(d, RUN_LOCK))
        except OSError as err:
            raise UserError("cannot prepare output directory %s: %s. Choose a writable "
                            "directory." % (d, err.strerror or err))
        if _try(run_fd, fcntl.LOCK_EX):
            self.alone[d] = True
            os.ftruncate(run_fd, 0)
        elif self.shared and _try(run_fd, fcntl.LOCK_SH):
            self.alone[d] = False
        else:
            who = _holders(run_fd)
            raise InUse("%s is being written by another run (%s). Wait for it to "
                        "finish or stop it (a killed run holds nothing), or choose "
                        "another output directory%s." % (
                            d, who, "" if self.shared else
                            "; tasks of one run share a directory with --task-index/"
                            "--task-count"))
        self.holders[d] = _holders(run_fd) if not self.alone[d] else ""
        self._owner[d] = _hold_owner(d)
        line = "%s pid %d, %s, since %s\n" % (host(), os.getpid(), note,
                                              time.strftime("%Y-%m-%d %H:%M:%S"))
        os.lseek(run_fd, 0, os.SEEK_END)
        os.write(run_fd, line.encode("utf-8"))

    def ready(self):
        """The plan is checked and recorded: tasks go shared, plan locks go."""
        for d, fd in self._run.items():
            if self.shared and self.alone.get(d):
                fcntl.flock(fd, fcntl.LOCK_SH)   # converting under the plan lock
        for fd in self._plan.values():
            os.close(fd)
        self._plan = {}

    def release(self):
        for fds in (self._plan, self._run):
            for fd in fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            fds.clear()
        for path in self._owner.values():
            _drop_owner(path)
        self._owner.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def busy(directory):
    """A line naming the live run that holds `directory`, or None."""
    path = os.path.join(directory, RUN_LOCK)
    try:
        # read-write: on NFS an exclusive lock needs a file open for writing
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None     # no run ever locked it, or not ours to lock: no warning
    try:
        if _try(fd, fcntl.LOCK_EX):
            return None
        return "%s is being written right now (%s)" % (directory, _holders(fd))
    except UserError:
        return None
    finally:
        os.close(fd)
