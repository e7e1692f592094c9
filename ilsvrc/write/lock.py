"""Who may write an output directory: the run lock (an ordinary run alone, or the
tasks of one plan together), owner files that say which run owns a partial file, the
removal of partial files no live run can own, and the check before every rename that
the directory still belongs to this run's plan.

The run lock is a flock(2) lock on the output directory itself (opened read-only):
deleting a file cannot break it, and it leaves nothing behind.  The same lock is
also taken on `.ilsvrc-run.lock` in the directory, because on NFS (and other network
file systems) Linux keeps a directory's flock on the one machine, while a file's
flock becomes an NFS byte-range lock that every client sees (NFSv4, or NFSv3 with
lockd).  The last holder removes that file when it ends.  Both are taken without
waiting: an ordinary run holds them exclusively, a task shares them with the other
tasks.  `.ilsvrc-plan.lock` serialises the moment in which a starting run takes the
run lock and checks or records the plan, and is removed once the plan is recorded.
A lock file is removed only by a holder of its lock, and whoever locks one checks
that it is still the file of that name (or opens it again), so removing them is safe.
The kernel (or the NFS server) drops every lock when its holder dies.

Partial files are `.<shard>.<host>.<pid>.<token>.partial` (fsutil), and every run
holds an exclusive lock on its own `.ilsvrc-owner.<host>.<pid>.<token>.lock` (which
names the run and its machine) while it runs.  A run removes its own old partial
files and those whose owner is provably gone: the owner file is missing or can be
locked, or it names this very machine (host name, boot id and pid namespace) and its
pid is not alive.  The random token keeps two machines with one host name apart.
Names of earlier versions (`.<shard>.<host>.<pid>.partial`, `.<shard>.partial`) are
judged by their owner file alone; other partial names of a split's shards are no
live run's.
"""

import fcntl
import os
import time

from ilsvrc.errors import UserError
from ilsvrc.fsutil import (CLOEXEC, PARTIAL_SUFFIX, StaleLock, discard, host, lock_file,
                           open_dir, partial_owner, run_tag, try_lock, unlock_file)

RUN_LOCK = ".ilsvrc-run.lock"
PLAN_LOCK = ".ilsvrc-plan.lock"
OWNER_LOCK = ".ilsvrc-owner.%s.lock"
_OWNER_HEAD, _OWNER_TAIL = OWNER_LOCK.split("%s")
PLAN_WAIT_S = 120


class InUse(UserError):
    """The directory is being written by a run that may not share it."""


class TakenOver(UserError):
    """The directory no longer belongs to this run's plan."""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # exists, owned by someone else
    return True


def _machine():
    """This machine and pid namespace, as owner files record it (None off Linux):
    a pid means the same process only where all three agree."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return "%s boot %s %s" % (host(), boot, os.readlink("/proc/self/ns/pid"))
    except OSError:
        return None


# --------------------------------------------------------------------------- owners

_OWNED = {}   # owner file -> [fd, claims of this process using it]


def _owner_files(directory):
    """[(path, tag)] of the owner files in `directory`."""
    found = []
    for entry in os.scandir(directory):
        n = entry.name
        if n.startswith(_OWNER_HEAD) and n.endswith(_OWNER_TAIL):
            found.append((entry.path, n[len(_OWNER_HEAD):-len(_OWNER_TAIL)]))
    return sorted(found)


def _hold_owner(d, note):
    """Hold this process's owner file in `d` (shared by its claims there)."""
    path = os.path.join(d, OWNER_LOCK % run_tag())
    held = _OWNED.get(path)
    if held is None:
        try:
            fd = lock_file(path, fcntl.LOCK_EX)
            if fd is None:   # the token is random: no other run has this name
                raise InUse("%s is locked by another run" % path)
            os.ftruncate(fd, 0)
            os.write(fd, ("%s pid %d, %s, since %s\nmachine %s\n" % (
                host(), os.getpid(), note, time.strftime("%Y-%m-%d %H:%M:%S"),
                _machine())).encode("utf-8"))
        except OSError as err:
            raise UserError("cannot create %s: %s" % (path, err.strerror or err))
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
        unlock_file(held[0], path)   # removed while still locked: never taken for dead


def _sweep_owners(d, alone):
    """Remove the owner files of runs that ended without removing theirs (killed).
    Those of earlier versions only when `alone` (no run of theirs can be starting)."""
    for path, tag in _owner_files(d):
        if path in _OWNED or not (alone or _current(tag)):
            continue
        try:
            fd = os.open(path, os.O_RDWR | CLOEXEC)
        except OSError:
            continue
        try:
            dead = try_lock(fd, fcntl.LOCK_EX)
        except (UserError, StaleLock):
            dead = False
        if dead:
            unlock_file(fd, path)
        else:
            os.close(fd)


def _current(tag):
    """True for an owner tag of this version (`<host>.<pid>.<token>`)."""
    p = partial_owner(".x.%s%s" % (tag, PARTIAL_SUFFIX))
    return p is not None and p.token is not None


def _dead_here(fd, pid):
    """The owner file `fd` names this machine and pid namespace, and `pid` is gone."""
    try:
        lines = os.pread(fd, 4096, 0).decode("utf-8", "replace").splitlines()
    except OSError:
        return False
    here = _machine()
    return here is not None and "machine " + here in lines and not _alive(pid)


def _owner_gone(owner_dir, p, dead):
    """True if the run of partial name `p` can own nothing any more.  `dead` caches
    the answer by owner and holds the locks taken on dead owners' files."""
    tag = p.tag
    if tag not in dead:
        dead[tag] = _judge(owner_dir, p)
    return dead[tag] is not None


def _judge(owner_dir, p):
    """None if the owner of `p` may be alive; else () or (fd, path) of its owner file,
    locked by this process for removal."""
    if p.tag == run_tag():
        return ()          # an earlier run of this process
    path = os.path.join(owner_dir, OWNER_LOCK % p.tag)
    try:
        fd = os.open(path, os.O_RDWR | CLOEXEC)
    except FileNotFoundError:
        return ()          # ended (or never ran with owner files)
    except OSError:
        return None
    try:
        if try_lock(fd, fcntl.LOCK_EX):
            return (fd, path)
        if p.token and _dead_here(fd, p.pid):
            os.close(fd)
            return ()
    except (UserError, StaleLock):
        pass
    os.close(fd)
    return None


def remove_orphans(directory, prefix, alone=None, owners=None):
    """Remove the partial files of `prefix`'s files (`.<prefix>-*.partial`) in
    `directory` that no live run owns (module docstring); return how many partial
    files of live runs were left.  Never touches finished shards.  `owners`: the
    directory holding the owner files (default `directory`).  (`alone` is accepted
    for callers that know no other run holds the directory; the rule needs it not.)"""
    dead, kept = {}, 0
    try:
        entries = [e for e in os.scandir(directory)
                   if e.name.startswith("." + prefix + "-")
                   and e.name.endswith(PARTIAL_SUFFIX)]
    except FileNotFoundError:
        return 0
    try:
        for entry in entries:
            p = partial_owner(entry.name)
            if p is not None and p.tag is not None and \
                    not _owner_gone(owners or directory, p, dead):
                kept += 1
            else:
                discard(entry.path)
    finally:
        for held in dead.values():
            if held:
                unlock_file(*held)    # a dead run's owner file
    return kept


def _holders(d):
    """The live runs named by the owner files in `d` (earlier versions: by the run
    lock file's lines), for a message."""
    lines = []
    for path, tag in _owner_files(d):
        try:
            fd = os.open(path, os.O_RDONLY | CLOEXEC)
        except OSError:
            continue
        try:
            if not try_lock(fd, fcntl.LOCK_SH):
                first = os.pread(fd, 4096, 0).decode("utf-8", "replace").split("\n")[0]
                lines.append(first.strip() or "run %s" % tag)
        except (OSError, UserError, StaleLock):
            pass
        finally:
            os.close(fd)
    if not lines:
        try:
            with open(os.path.join(d, RUN_LOCK), encoding="utf-8", errors="replace") as f:
                lines = [x.strip() for x in f if x.strip()][-3:]
        except OSError:
            pass
    if len(lines) > 3:
        lines = lines[:3] + ["%d more" % (len(lines) - 3)]
    return "; ".join(lines) or "holder unknown"


# --------------------------------------------------------------------------- claims

def _plan_lock_for_release(d):
    """The plan lock of `d` within a few seconds, else None (on any error too)."""
    try:
        return lock_file(os.path.join(d, PLAN_LOCK), fcntl.LOCK_EX, 10)
    except (OSError, UserError):
        return None


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
        self._dir, self._run, self._plan, self._owner = {}, {}, {}, {}
        try:
            for d in sorted(set(directories)):
                self._take(d, note)
        except BaseException:
            self.release()
            raise

    def _take(self, d, note):
        try:
            os.makedirs(d, exist_ok=True)
            self._plan[d] = lock_file(os.path.join(d, PLAN_LOCK), fcntl.LOCK_EX,
                                      PLAN_WAIT_S)
            if self._plan[d] is None:
                del self._plan[d]
                raise InUse("%s: another run has been starting for %d s (it holds "
                            "%s); if none is running, the file system's locks are "
                            "stuck: check the NFS lock service." % (d, PLAN_WAIT_S,
                                                                      PLAN_LOCK))
            alone = self._lock_run(d)
        except OSError as err:
            raise UserError("cannot prepare output directory %s: %s. Choose a writable "
                            "directory." % (d, err.strerror or err))
        if alone is None:
            raise InUse("%s is being written by another run (%s). Wait for it to "
                        "finish or stop it (a killed run holds nothing), or choose "
                        "another output directory%s." % (
                            d, _holders(d), "" if self.shared else
                            "; tasks of one run share a directory with --task-index/"
                            "--task-count"))
        self.alone[d] = alone
        self._owner[d] = _hold_owner(d, note)
        _sweep_owners(d, alone)

    def _lock_run(self, d):
        """Lock directory `d` and its run lock file, both in one mode: True when
        exclusively (alone), False when shared, None when another run holds them."""
        fd = self._dir[d] = open_dir(d)
        for mode in (fcntl.LOCK_EX, fcntl.LOCK_SH) if self.shared else (fcntl.LOCK_EX,):
            if try_lock(fd, mode):
                run_fd = lock_file(os.path.join(d, RUN_LOCK), mode)
                if run_fd is not None:
                    self._run[d] = run_fd
                    return mode == fcntl.LOCK_EX
        return None

    def ready(self):
        """The plan is checked and recorded: tasks go shared, plan locks go."""
        for d in self._run:
            if self.shared and self.alone.get(d):
                fcntl.flock(self._dir[d], fcntl.LOCK_SH)   # under the plan lock
                fcntl.flock(self._run[d], fcntl.LOCK_SH)
        for d, fd in self._plan.items():
            unlock_file(fd, os.path.join(d, PLAN_LOCK))
        self._plan = {}

    def release(self):
        """Unlock everything.  The last holder removes the run lock file, under the
        plan lock: no starting run is then between opening and locking it."""
        for d in list(self._dir):
            start = self._plan.pop(d, None) or _plan_lock_for_release(d)
            if d in self._run:
                unlock_file(self._run.pop(d), os.path.join(d, RUN_LOCK))
            os.close(self._dir.pop(d))
            if start is not None:
                unlock_file(start, os.path.join(d, PLAN_LOCK))
        for d, fd in self._plan.items():
            unlock_file(fd, os.path.join(d, PLAN_LOCK))
        for path in self._owner.values():
            _drop_owner(path)
        self._plan, self._owner = {}, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def busy(directory):
    """A line naming the live run that holds `directory`, or None."""
    try:
        fd = open_dir(directory)
    except OSError:
        return None
    try:
        held = not try_lock(fd, fcntl.LOCK_EX)
        path = os.path.join(directory, RUN_LOCK)
        if not held and os.path.exists(path):
            # read-write: on NFS an exclusive lock needs a file open for writing
            run_fd = os.open(path, os.O_RDWR | CLOEXEC)
            try:
                held = not try_lock(run_fd, fcntl.LOCK_EX)
            finally:
                os.close(run_fd)
    except (OSError, UserError, StaleLock):
        return None     # gone meanwhile, or not ours to lock: no warning
    finally:
        os.close(fd)
    if not held:
        return None
    return "%s is being written right now (%s)" % (directory, _holders(directory))


# --------------------------------------------------------------------------- plan

def check_plan(directory, state_path, digest):
    """Before a shard is renamed to its final name: the plan record `state_path`
    of `directory` still names this run's plan (its first line is `digest`), else
    TakenOver.  Another run can only have got in where the run lock does not hold
    (a deleted lock file on NFS); then this run stops, before touching its files."""
    try:
        with open(state_path, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except FileNotFoundError:
        first = None
    except OSError as err:
        raise UserError("cannot read %s: %s" % (state_path, err.strerror or err))
    if first == digest:
        return
    now = ("its plan record %s is gone" % state_path if first is None else
           "its plan record %s names plan %s, this run's is %s"
           % (state_path, first[:16] or "(none)", digest[:16]))
    raise TakenOver("%s was taken over by another run/plan: %s; this run stops, "
                    "nothing of the other run was touched. Give each plan its own "
                    "output directory." % (directory, now))
